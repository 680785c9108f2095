r"""Triton kernels of the fused Norse scans (``scan_norse.py``): ``LIFCell``, ``LICell``, ``LIFBoxCell`` (value
and subtract resets) and ``LIFRecurrentCell`` (dense or diagonal), one program per block of neurons looping
over all T steps inside the kernel.

The updates and adjoints are ``scan_norse``'s (its module docstring), with :math:`a = \Delta t\,\tau_{mem}^{-1}`,
:math:`c = -\Delta t\,\tau_{syn}^{-1}`:

.. math::
    W_t = V_t + a\,((v_{leak} - V_t) + I_t),\quad z_t = H(W_t - v_{th}),\quad
    \bar W_t = \lambda_t (1 - z_t) + \sigma_t \bar z_t,\quad \bar I_t = a \bar W_t + (1 + c)\,\kappa_t

computed in float32 for any state dtype: the carried state :math:`(u, i)` stays float32, every stored value
is rounded to the state dtype and the spikes are decided on the stored :math:`W` (the backward recomputes
them from the saved :math:`W`). Saved: :math:`W` and the currents :math:`I`. The backward accumulates the
five parameters' gradients per neuron in float32 (``common.param_grad`` sums them). A dense recurrence
:math:`W_{rec} z_{t-1} + b` stays a torch GEMM per step (forward and transposed in the backward), with one
kernel a step for the rest, as ``recurrent.py``; a diagonal one is inside the single kernel.
"""

# ruff: noqa: SIM108 (Triton kernels: if-blocks compile to structured control flow; ternaries on runtime values may not)
from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from torch import Tensor

from snngraph.runtimes.torch.scan_norse import NorseLifConfig, _recurrent_grads, _recurrent_transposed
from snngraph.runtimes.torch.triton.common import (
    f32_zeros,
    flat,
    flat_param,
    flat_params,
    launch,
    load_f32,
    load_param,
    neurons,
    param_grad,
    store_as,
)
from snngraph.runtimes.torch.triton.surrogate import encode, surrogate_grad

ACCUMULATORS = 6
"""Per-neuron float32 sums of the backward: tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, diagonal weight."""


@triton.jit
def _params(ts_ptr, tm_ptr, vl_ptr, vth_ptr, vr_ptr, offs, m, PS, PM, PL, PTH, PR, dt, neg_dt):
    """``(a, c, v_leak, v_th, v_reset)`` at each neuron, as the torch scan forms ``a`` and ``c``."""
    a = dt * load_param(tm_ptr, offs, m, PM, 0.0)
    c = neg_dt * load_param(ts_ptr, offs, m, PS, 0.0)
    return (a, c, load_param(vl_ptr, offs, m, PL, 0.0), load_param(vth_ptr, offs, m, PTH, 0.0),
            load_param(vr_ptr, offs, m, PR, 0.0))


@triton.jit
def _after(w, z, v_th, v_reset, v_leak, SPIKING: tl.constexpr, SUBTRACT: tl.constexpr):
    """The state ``u`` after the integrated membrane ``w`` and its spikes ``z``: ``((1 - z) W + z v_reset) -
    v_leak`` (subtract: ``z (W - v_th)`` for ``z v_reset``; LI: ``W - v_leak``), by the torch scan's operations."""
    if SPIKING:
        if SUBTRACT:
            u = ((1 - z) * w + (w - v_th) * z) - v_leak
        else:
            u = ((1 - z) * w + z * v_reset) - v_leak
    else:
        u = w - v_leak
    return u


@triton.jit
def _state(w, v_th, v_reset, v_leak, SPIKING: tl.constexpr, SUBTRACT: tl.constexpr):
    """The state ``u`` after the integrated membrane ``w``, spiking where ``w > v_th`` (:func:`_after`)."""
    return _after(w, (w > v_th).to(tl.float32), v_th, v_reset, v_leak, SPIKING, SUBTRACT)


@triton.jit
def _step(x, u, i, rec, a, c, v_leak, v_th, v_reset, p, m, cur_ptr, w_ptr, spk_ptr, us_ptr, is_ptr,
          SPIKING: tl.constexpr, BOX: tl.constexpr, SUBTRACT: tl.constexpr, HAS_REC: tl.constexpr,
          KEEP: tl.constexpr):
    """One step from the carried ``(u, i)``, the input ``x`` and the recurrence ``rec``: stores ``I`` (box: ``x``
    is ``I``, not stored), ``W``, the spikes and (``KEEP``) ``(u, i)`` at ``p``; returns ``(u, i, z)``."""
    v = u + v_leak
    if BOX:
        w = v + a * ((x + v_leak) - v)
    else:
        cur = i + x
        if HAS_REC:
            cur = cur + rec
        store_as(cur_ptr + p, cur, m)  # (scratch: over x, already read)
        w = v + a * ((v_leak - v) + cur)
        i = cur + c * cur
    stored = w.to(w_ptr.dtype.element_ty)
    tl.store(w_ptr + p, stored, mask=m)
    z = (stored.to(tl.float32) > v_th).to(tl.float32)
    if SPIKING:
        store_as(spk_ptr + p, z, m)
    u = _after(w, z, v_th, v_reset, v_leak, SPIKING, SUBTRACT)
    if KEEP:
        store_as(us_ptr + p, u, m)
        if not BOX:
            store_as(is_ptr + p, i, m)
    return u, i, z


@triton.jit
def _forward(x_ptr, u0_ptr, i0_ptr, spk0_ptr, ts_ptr, tm_ptr, vl_ptr, vth_ptr, vr_ptr, wr_ptr, spk_ptr, w_ptr,
             cur_ptr, us_ptr, is_ptr, T, N, PS, PM, PL, PTH, PR, PW, dt, neg_dt, SPIKING: tl.constexpr,
             BOX: tl.constexpr, SUBTRACT: tl.constexpr, DIAGONAL: tl.constexpr, KEEP: tl.constexpr,
             BLOCK: tl.constexpr):
    offs, m = neurons(N, BLOCK)
    a, c, v_leak, v_th, v_reset = _params(ts_ptr, tm_ptr, vl_ptr, vth_ptr, vr_ptr, offs, m, PS, PM, PL, PTH, PR,
                                          dt, neg_dt)
    wr = load_param(wr_ptr, offs, m, PW, 0.0)
    u = load_f32(u0_ptr + offs, m)
    i = load_f32(i0_ptr + offs, m)
    z = load_f32(spk0_ptr + offs, m)
    p = offs.to(tl.int64)
    for _ in range(T):
        u, i, z = _step(load_f32(x_ptr + p, m), u, i, wr * z, a, c, v_leak, v_th, v_reset, p, m, cur_ptr, w_ptr,
                        spk_ptr, us_ptr, is_ptr, SPIKING, BOX, SUBTRACT, DIAGONAL, KEEP)
        p += N


@triton.jit
def _forward_step(x_ptr, rec_ptr, u_ptr, i_ptr, ts_ptr, tm_ptr, vl_ptr, vth_ptr, vr_ptr, spk_ptr, w_ptr, cur_ptr,
                  us_ptr, is_ptr, N, PS, PM, PL, PTH, PR, dt, neg_dt, KEEP: tl.constexpr, BLOCK: tl.constexpr):
    """One step of a dense LIFRecurrentCell (``rec`` = the GEMM's ``W_rec z_{t-1} + b``; ``u_ptr``, ``i_ptr``:
    the float32 carried state, updated)."""
    offs, m = neurons(N, BLOCK)
    a, c, v_leak, v_th, v_reset = _params(ts_ptr, tm_ptr, vl_ptr, vth_ptr, vr_ptr, offs, m, PS, PM, PL, PTH, PR,
                                          dt, neg_dt)
    u = tl.load(u_ptr + offs, mask=m, other=0.0)
    i = tl.load(i_ptr + offs, mask=m, other=0.0)
    u, i, _ = _step(load_f32(x_ptr + offs, m), u, i, load_f32(rec_ptr + offs, m), a, c, v_leak, v_th, v_reset,
                    offs, m, cur_ptr, w_ptr, spk_ptr, us_ptr, is_ptr, True, False, False, True, KEEP)
    tl.store(u_ptr + offs, u, mask=m)
    tl.store(i_ptr + offs, i, mask=m)


@triton.jit
def _adjoint(w, lam, kappa, gs, back, a, c, v_th, v_reset, p1, p2, SPIKING: tl.constexpr, BOX: tl.constexpr,
             SUBTRACT: tl.constexpr, DETACHED: tl.constexpr, HAS_GS: tl.constexpr, HAS_BACK: tl.constexpr,
             SURR: tl.constexpr):
    """``(dW, dI, z)`` of one step given ``lam`` (reaching ``u_t``), ``kappa`` (reaching ``i_t``), the spikes'
    gradient ``gs`` and the recurrence's ``back`` (``W_rec^T dI_{t+1}``); ``DETACHED``: the reset's."""
    z = (w > v_th).to(tl.float32)
    if SPIKING:
        sig = surrogate_grad(w - v_th, tl.full(w.shape, 1.0, tl.float32), SURR, p1, p2)
        if SUBTRACT:  # du/dW = 1, du/dz = -v_th
            coeff = 1 - sig * v_th
        else:
            coeff = 1 - z
            if not DETACHED:
                coeff = coeff + sig * (v_reset - w)
        dw = lam * coeff
        if HAS_GS:
            dw = dw + sig * gs
        if HAS_BACK:
            dw = dw + sig * back
    else:
        dw = lam
    di = dw * a
    if not BOX:
        di = di + kappa * (1 + c)
    return dw, di, z


@triton.jit
def _backward(gs_ptr, gv_ptr, gi_ptr, u0_ptr, spk0_ptr, ts_ptr, tm_ptr, vl_ptr, vth_ptr, vr_ptr, wr_ptr, w_ptr,
              cur_ptr, gx_ptr, gu0_ptr, gi0_ptr, gspk0_ptr, acc_ptr, T, N, last, PS, PM, PL, PTH, PR, PW, dt,
              neg_dt, p1, p2, SPIKING: tl.constexpr, BOX: tl.constexpr, SUBTRACT: tl.constexpr,
              DIAGONAL: tl.constexpr, HAS_GS: tl.constexpr, HAS_GV: tl.constexpr, HAS_GI: tl.constexpr,
              NEED_TAUS: tl.constexpr, SURR: tl.constexpr, BLOCK: tl.constexpr):
    offs, m = neurons(N, BLOCK)
    a, c, v_leak, v_th, v_reset = _params(ts_ptr, tm_ptr, vl_ptr, vth_ptr, vr_ptr, offs, m, PS, PM, PL, PTH, PR,
                                          dt, neg_dt)
    wr = load_param(wr_ptr, offs, m, PW, 0.0)
    zero = tl.zeros([BLOCK], tl.float32)
    lam_next, di_next, kappa = zero, zero, zero
    acc_s, acc_m, acc_l, acc_th, acc_r, acc_w = zero, zero, zero, zero, zero, zero
    p = offs.to(tl.int64) + last
    if HAS_GI:
        kappa = load_f32(gi_ptr + p, m)
    for k in range(T):
        t = T - 1 - k
        lam = lam_next
        if HAS_GV:
            lam = lam + load_f32(gv_ptr + p, m)
        gs = zero
        if HAS_GS:
            gs = load_f32(gs_ptr + p, m)
        dw, di, z = _adjoint(load_f32(w_ptr + p, m), lam, kappa, gs, wr * di_next, a, c, v_th, v_reset, p1, p2,
                             SPIKING, BOX, SUBTRACT, DIAGONAL, HAS_GS, DIAGONAL, SURR)
        if t > 0:
            w_prev = load_f32(w_ptr + p - N, m)
            u_prev = _state(w_prev, v_th, v_reset, v_leak, SPIKING, SUBTRACT)
            z_prev = (w_prev > v_th).to(tl.float32)
        else:
            u_prev = load_f32(u0_ptr + offs, m)
            z_prev = load_f32(spk0_ptr + offs, m)
        if NEED_TAUS:
            cur = load_f32(cur_ptr + p, m)  # (read before x's gradient may go over it)
            acc_s += neg_dt * (cur * kappa)
            acc_m += dt * ((v_leak - (u_prev + v_leak)) + cur) * dw
        acc_l += dw - lam
        acc_th += lam * (1 - z) - dw
        acc_r += lam * z
        acc_w += di * z_prev
        store_as(gx_ptr + p, di, m)
        kappa = di
        if HAS_GI:  # noqa: SIM102 (a constexpr branch around a runtime one)
            if t > 0:
                kappa = di + load_f32(gi_ptr + p - N, m)
        lam_next = dw * (1 - a)
        di_next = di
        p -= N
    store_as(gu0_ptr + offs, lam_next, m)
    store_as(gi0_ptr + offs, kappa, m)
    store_as(gspk0_ptr + offs, wr * di_next, m)
    tl.store(acc_ptr + offs, acc_s, mask=m)
    tl.store(acc_ptr + N + offs, acc_m, mask=m)
    tl.store(acc_ptr + 2 * N + offs, acc_l, mask=m)
    tl.store(acc_ptr + 3 * N + offs, acc_th, mask=m)
    tl.store(acc_ptr + 4 * N + offs, acc_r, mask=m)
    tl.store(acc_ptr + 5 * N + offs, acc_w, mask=m)


@triton.jit
def _accumulate(ptr, offs, m, value):
    tl.store(ptr + offs, tl.load(ptr + offs, mask=m, other=0.0) + value, mask=m)


@triton.jit
def _backward_step(gs_ptr, gv_ptr, gi_ptr, back_ptr, lam_ptr, kappa_ptr, prev_ptr, ts_ptr, tm_ptr, vl_ptr, vth_ptr,
                   vr_ptr, w_ptr, cur_ptr, gx_ptr, acc_ptr, t, N, PS, PM, PL, PTH, PR, dt, neg_dt, p1, p2,
                   HAS_GS: tl.constexpr, HAS_GV: tl.constexpr, HAS_GI: tl.constexpr, HAS_BACK: tl.constexpr,
                   NEED_TAUS: tl.constexpr, SURR: tl.constexpr, BLOCK: tl.constexpr):
    """One backward step of a dense LIFRecurrentCell: ``lam_ptr`` holds ``(1 - a) dW_{t+1}`` and ``kappa_ptr``
    the gradient reaching ``i_t`` (float32, updated for step t-1); ``gi_ptr``: ``g_i[t-1]``; ``prev_ptr``:
    ``W_{t-1}``, or ``u0`` at ``t = 0``; ``back_ptr``: ``dI_{t+1} W_rec``."""
    offs, m = neurons(N, BLOCK)
    a, c, v_leak, v_th, v_reset = _params(ts_ptr, tm_ptr, vl_ptr, vth_ptr, vr_ptr, offs, m, PS, PM, PL, PTH, PR,
                                          dt, neg_dt)
    zero = tl.zeros([BLOCK], tl.float32)
    lam = tl.load(lam_ptr + offs, mask=m, other=0.0)
    if HAS_GV:
        lam = lam + load_f32(gv_ptr + offs, m)
    kappa = tl.load(kappa_ptr + offs, mask=m, other=0.0)
    gs, back = zero, zero
    if HAS_GS:
        gs = load_f32(gs_ptr + offs, m)
    if HAS_BACK:
        back = load_f32(back_ptr + offs, m)
    dw, di, z = _adjoint(load_f32(w_ptr + offs, m), lam, kappa, gs, back, a, c, v_th, v_reset, p1, p2, True, False,
                         False, True, HAS_GS, HAS_BACK, SURR)
    if NEED_TAUS:
        if t > 0:
            u_prev = _state(load_f32(prev_ptr + offs, m), v_th, v_reset, v_leak, True, False)
        else:
            u_prev = load_f32(prev_ptr + offs, m)
        cur = load_f32(cur_ptr + offs, m)  # (read before x's gradient may go over it)
        _accumulate(acc_ptr, offs, m, neg_dt * (cur * kappa))
        _accumulate(acc_ptr + N, offs, m, dt * ((v_leak - (u_prev + v_leak)) + cur) * dw)
    _accumulate(acc_ptr + 2 * N, offs, m, dw - lam)
    _accumulate(acc_ptr + 3 * N, offs, m, lam * (1 - z) - dw)
    _accumulate(acc_ptr + 4 * N, offs, m, lam * z)
    store_as(gx_ptr + offs, di, m)
    if HAS_GI:
        di = di + load_f32(gi_ptr + offs, m)
    tl.store(kappa_ptr + offs, di, mask=m)
    tl.store(lam_ptr + offs, dw * (1 - a), mask=m)


def _flat_state(t: Tensor, like: Tensor) -> Tensor:
    return flat(t.expand_as(like))


def forward(x: Tensor, u0: Tensor, i0: Tensor, spk0: Tensor | None, tau_syn_inv: Tensor, tau_mem_inv: Tensor,
            v_leak: Tensor, v_th: Tensor, v_reset: Tensor, weight: Tensor | None, bias: Tensor | None, dt: float,
            spiking: bool, recurrent: str, box: bool, subtract: bool,
            scratch: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``(spk, v, i, W, I)`` over ``x`` of shape (T, B, ...), as ``_NorseLifScan.forward`` (``spk`` empty for LI;
    ``I`` empty where it is ``x``: a box cell's, or with ``scratch`` written over ``x``, ``v`` and ``i`` then
    empty)."""
    steps, like = x.shape[0], x[0]
    n = like.numel()
    xf = x.contiguous()
    charged = torch.empty_like(xf)
    currents = xf if scratch or box else torch.empty_like(xf)
    spk = torch.empty_like(xf) if spiking else x.new_empty(0)
    us = torch.empty_like(xf) if not scratch else x.new_empty(0)
    is_ = torch.empty_like(xf) if not scratch and not box else x.new_empty(0)
    flats, periods = flat_params(like, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset)
    outs = (spk if spiking else charged, charged, currents, us if not scratch else charged,
            is_ if is_.numel() else charged)
    scalars = (*periods, dt, -dt)
    if recurrent == "dense":
        _dense_forward(xf, _flat_state(u0, like), _flat_state(i0, like), spk0, weight, bias, flats, outs, scalars,
                       not scratch)
    else:
        wr, pw = flat_param(weight, like) if recurrent else (flats[0], 1)
        u0f = _flat_state(u0, like)
        launch(_forward, n, xf, u0f, u0f if box else _flat_state(i0, like),
               _flat_state(spk0, like) if recurrent else u0f, *flats, wr, *outs, steps, n, *scalars[:5], pw,
               *scalars[5:], SPIKING=spiking, BOX=box, SUBTRACT=subtract, DIAGONAL=bool(recurrent), KEEP=not scratch)
    if scratch and xf is not x:
        x.copy_(xf)
    return spk, us, is_, charged, x.new_empty(0) if currents is xf else currents


def _dense_forward(xf: Tensor, u0: Tensor, i0: Tensor, spk0: Tensor, weight: Tensor, bias: Tensor | None,
                   flats: list[Tensor], outs: tuple[Tensor, ...], scalars: tuple, keep: bool) -> None:
    """A dense LIFRecurrentCell: the GEMM ``F.linear(z_{t-1}, W_rec, b)`` then one kernel a step."""
    n = xf[0].numel()
    u, i = u0.to(torch.float32, copy=True), i0.to(torch.float32, copy=True)
    spk, charged, currents, us, is_ = outs
    prev = spk0
    for t in range(xf.shape[0]):
        rec = F.linear(prev, weight, bias).contiguous()
        launch(_forward_step, n, xf[t], rec, u, i, *flats, spk[t], charged[t], currents[t], us[t], is_[t], n,
               *scalars, KEEP=keep)
        prev = spk[t]


def _given(grad: Tensor | None) -> Tensor | None:
    """An incoming gradient the kernels read (``None`` for none, or for an empty output's)."""
    return grad.contiguous() if grad is not None and grad.numel() else None


def backward(grad_spk: Tensor | None, grad_v: Tensor | None, grad_i: Tensor | None, u0: Tensor,
             spk0: Tensor | None, tau_syn_inv: Tensor, tau_mem_inv: Tensor, v_leak: Tensor, v_th: Tensor,
             v_reset: Tensor, weight: Tensor | None, bias: Tensor | None, charged: Tensor, currents: Tensor,
             dt: float, surrogate: str, params: list[float], recurrent: str, box: bool, subtract: bool,
             needs: list[bool], out: Tensor | None = None) -> tuple[Tensor | None, ...]:
    """The gradients of ``(x, u0, i0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias)``, as
    ``_NorseLifScan.backward`` (``None`` where not needed); ``x``'s in ``out`` if given (``currents`` itself
    allowed: step t reads ``I_t`` before it writes ``dI_t``)."""
    steps, like = charged.shape[0], charged[0]
    n = like.numel()
    kind, p1, p2 = encode(surrogate, params)
    spiking, taus = surrogate != "none", needs[4] or needs[5]
    given = (_given(grad_spk) if spiking else None, _given(grad_v), _given(grad_i) if not box else None)
    gs, gv, gi = (g if g is not None else charged for g in given)  # (stand-ins are never read)
    cur = currents.contiguous() if taus else charged
    gx = torch.empty_like(charged) if out is None else out
    acc, u0f = f32_zeros(ACCUMULATORS * n, charged), _flat_state(u0, like)
    flats, periods = flat_params(like, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset)
    scalars = (*periods, dt, -dt)
    flags = dict(HAS_GS=given[0] is not None, HAS_GV=given[1] is not None, NEED_TAUS=taus, SURR=kind)
    dense = NorseLifConfig(dt, None, recurrent="dense")
    if recurrent == "dense":
        lam = f32_zeros(n, charged)
        kappa = flat(gi[steps - 1]).to(torch.float32, copy=True) if given[2] is not None else f32_zeros(n, charged)
        for t in range(steps - 1, -1, -1):
            nxt = t + 1 < steps
            back = gx[t + 1].mm(weight).contiguous() if nxt else charged[t]
            launch(_backward_step, n, gs[t], gv[t], gi[t - 1] if t else gi[t], back, lam, kappa,
                   charged[t - 1] if t else u0f, *flats, charged[t], cur[t], gx[t], acc, t, n, *scalars, p1, p2,
                   HAS_GI=given[2] is not None and t > 0, HAS_BACK=nxt, **flags)
        gu0, gi0 = lam.view(like.shape).to(like.dtype), kappa.view(like.shape).to(like.dtype)
        gspk0 = _recurrent_transposed(dense, gx[0], weight) if needs[3] else None
    else:
        wr, pw = flat_param(weight, like) if recurrent else (flats[0], 1)
        gu0, gi0, gspk0 = torch.empty_like(like), torch.empty_like(like), torch.empty_like(like)
        launch(_backward, n, gs, gv, gi, u0f, _flat_state(spk0, like) if recurrent else u0f, *flats, wr, charged, cur,
               gx, gu0, gi0, gspk0, acc, steps, n, (steps - 1) * n, *scalars[:5], pw, *scalars[5:], p1, p2,
               SPIKING=spiking, BOX=box, SUBTRACT=subtract, DIAGONAL=bool(recurrent), HAS_GI=given[2] is not None,
               **flags)
    sums = acc.view(ACCUMULATORS, n)
    param_grads = [param_grad(sums[k], p, like) if need else None
                   for k, (p, need) in enumerate(zip((tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset), needs[4:9],
                                                     strict=True))]
    grad_w = grad_b = None
    if recurrent == "diagonal" and needs[9]:
        grad_w = param_grad(sums[5], weight, like)
    elif recurrent == "dense" and (needs[9] or needs[10]):
        grad_w, grad_b = _recurrent_grads(dense, needs, gx, charged, v_th, spk0, weight, bias)
    return (gx if needs[0] else None, gu0 if needs[1] else None, gi0 if needs[2] else None,
            gspk0 if recurrent and needs[3] else None, *param_grads, grad_w, grad_b)
