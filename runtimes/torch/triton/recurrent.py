r"""Triton kernels of the RLeaky scan (``scan_recurrent.py``, delayed reset).

A dense recurrent term :math:`W S_{t-1} + b` stays a torch GEMM per step; the rest of each step, leak,
input, reset, spike, is one Triton kernel, and so is each backward step (surrogate, reset, adjoint and
the per-neuron parameter gradients, in float32 accumulators). An element-wise :math:`V = v \odot S_{t-1}`
needs no GEMM: the whole loop, forward and backward, is one kernel each (``_forward_elementwise``).
The membrane carried between steps is float32 for any state dtype; spikes are decided on the stored
(state dtype) membrane, as in ``leaky.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from torch import Tensor

from snngraph.runtimes.torch.scan_recurrent import _dense_weight_grad, _transpose
from snngraph.runtimes.torch.triton.common import (
    apply_reset,
    f32_zeros,
    flat,
    flat_param,
    flat_params,
    given,
    launch,
    load_f32,
    load_neuron,
    load_param,
    neurons,
    param_grad,
    spike_adjoint,
    store_as,
    store_spiking,
)
from snngraph.runtimes.torch.triton.surrogate import encode


@triton.jit
def _forward_step(x_ptr, rec_ptr, prev_ptr, state_ptr, beta_ptr, thr_ptr, g_ptr, spk_ptr, mem_ptr, N, PB, PT, PG,
                  RESET: tl.constexpr, BLOCK: tl.constexpr):
    offs, m = neurons(N, BLOCK)
    b, thr, g = load_neuron(beta_ptr, thr_ptr, g_ptr, offs, m, PB, PT, PG, 0.0)
    above = (load_f32(prev_ptr + offs, m) > thr).to(tl.float32)
    mem = b * tl.load(state_ptr + offs, mask=m, other=0.0) + load_f32(x_ptr + offs, m)
    mem = apply_reset(mem + load_f32(rec_ptr + offs, m), above, thr, RESET)
    tl.store(state_ptr + offs, mem, mask=m)
    store_spiking(mem_ptr + offs, spk_ptr + offs, mem, thr, g, m)


@triton.jit
def _backward_step(gs_ptr, back_ptr, gm_ptr, mu_next_ptr, u_ptr, prev_ptr, beta_ptr, thr_ptr, g_ptr, mu_ptr,
                   acc_b_ptr, acc_t_ptr, acc_g_ptr, N, PB, PT, PG, p1, p2, RESET: tl.constexpr,
                   HAS_GS: tl.constexpr, HAS_BACK: tl.constexpr, HAS_GM: tl.constexpr, SURR: tl.constexpr,
                   BLOCK: tl.constexpr):
    offs, m = neurons(N, BLOCK)
    b, thr, g = load_neuron(beta_ptr, thr_ptr, g_ptr, offs, m, PB, PT, PG, 1.0)
    u = load_f32(u_ptr + offs, m)
    prev = load_f32(prev_ptr + offs, m)
    d_spk = tl.zeros([BLOCK], tl.float32)
    if HAS_GS:
        d_spk = d_spk + load_f32(gs_ptr + offs, m)
    if HAS_BACK:
        d_spk = d_spk + load_f32(back_ptr + offs, m)
    s_term, dg = spike_adjoint(u, thr, g, d_spk, SURR, p1, p2)
    lam = s_term
    if HAS_GM:
        lam = lam + load_f32(gm_ptr + offs, m)
    if HAS_BACK:
        lam = lam + b * load_f32(mu_next_ptr + offs, m)
    reset = (prev > thr).to(tl.float32)
    acc_t = tl.load(acc_t_ptr + offs, mask=m, other=0.0) - s_term
    if RESET == 0:
        acc_t -= lam * reset
    if RESET == 1:
        lam = lam * (1 - reset)
    tl.store(acc_t_ptr + offs, acc_t, mask=m)
    store_as(mu_ptr + offs, lam, m)
    tl.store(acc_g_ptr + offs, tl.load(acc_g_ptr + offs, mask=m, other=0.0) + dg, mask=m)
    tl.store(acc_b_ptr + offs, tl.load(acc_b_ptr + offs, mask=m, other=0.0) + lam * prev, mask=m)


@triton.jit
def _forward_elementwise(x_ptr, spk0_ptr, mem0_ptr, beta_ptr, thr_ptr, g_ptr, v_ptr, spk_ptr, mem_ptr, T, N, PB, PT,
                         PG, PV, RESET: tl.constexpr, BLOCK: tl.constexpr):
    offs, m = neurons(N, BLOCK)
    dt = mem_ptr.dtype.element_ty
    b, thr, g = load_neuron(beta_ptr, thr_ptr, g_ptr, offs, m, PB, PT, PG, 0.0)
    v = load_param(v_ptr, offs, m, PV, 0.0)
    mem = load_f32(mem0_ptr + offs, m)
    spk = load_f32(spk0_ptr + offs, m)
    above = (mem > thr).to(tl.float32)
    px, pm, ps = x_ptr + offs, mem_ptr + offs, spk_ptr + offs
    for _ in range(T):
        mem = b * mem + load_f32(px, m)
        mem = mem + (v * spk).to(dt).to(tl.float32)  # V(S) in the state dtype, as the torch op computes it
        mem = apply_reset(mem, above, thr, RESET)
        above = store_spiking(pm, ps, mem, thr, g, m)
        spk = (above * g).to(dt).to(tl.float32)
        px += N
        pm += N
        ps += N


@triton.jit
def _backward_elementwise(gs_ptr, gm_ptr, spk0_ptr, mem0_ptr, beta_ptr, thr_ptr, g_ptr, v_ptr, mems_ptr, mu_ptr,
                          gspk0_ptr, gmem0_ptr, acc_b_ptr, acc_t_ptr, acc_g_ptr, acc_v_ptr, T, N, last, PB, PT, PG,
                          PV, p1, p2, RESET: tl.constexpr, HAS_GS: tl.constexpr, HAS_GM: tl.constexpr,
                          SURR: tl.constexpr, BLOCK: tl.constexpr):
    offs, m = neurons(N, BLOCK)
    b, thr, g = load_neuron(beta_ptr, thr_ptr, g_ptr, offs, m, PB, PT, PG, 1.0)
    v = load_param(v_ptr, offs, m, PV, 0.0)
    mem0 = load_f32(mem0_ptr + offs, m)
    spk0 = load_f32(spk0_ptr + offs, m)
    mu_next = tl.zeros([BLOCK], tl.float32)
    acc_b = tl.zeros([BLOCK], tl.float32)
    acc_t = tl.zeros([BLOCK], tl.float32)
    acc_g = tl.zeros([BLOCK], tl.float32)
    acc_v = tl.zeros([BLOCK], tl.float32)
    start = last + offs
    pu, pmu, pgs, pgm = mems_ptr + start, mu_ptr + start, gs_ptr + start, gm_ptr + start
    for i in range(T):
        t = T - 1 - i
        u = load_f32(pu, m)
        if t > 0:
            prev = load_f32(pu - N, m)
            prev_spk = (prev > thr).to(tl.float32) * g
        else:
            prev = mem0
            prev_spk = spk0
        d_spk = v * mu_next  # zero at the last step: adding it changes nothing
        if HAS_GS:
            d_spk = load_f32(pgs, m) + d_spk
        s_term, dg = spike_adjoint(u, thr, g, d_spk, SURR, p1, p2)
        lam = s_term
        if HAS_GM:
            lam = lam + load_f32(pgm, m)
        lam = lam + b * mu_next
        reset = (prev > thr).to(tl.float32)
        acc_t -= s_term
        if RESET == 0:
            acc_t -= lam * reset
        if RESET == 1:
            lam = lam * (1 - reset)
        store_as(pmu, lam, m)
        acc_g += dg
        acc_b += lam * prev
        acc_v += lam * prev_spk
        mu_next = lam
        pu -= N
        pmu -= N
        pgs -= N
        pgm -= N
    store_as(gspk0_ptr + offs, v * mu_next, m)
    store_as(gmem0_ptr + offs, b * mu_next, m)
    tl.store(acc_b_ptr + offs, acc_b, mask=m)
    tl.store(acc_t_ptr + offs, acc_t, mask=m)
    tl.store(acc_g_ptr + offs, acc_g, mask=m)
    tl.store(acc_v_ptr + offs, acc_v, mask=m)


def _recurrent(spk: Tensor, weight: Tensor, bias: Tensor | None, dense: bool) -> Tensor:
    return F.linear(spk, weight, bias) if dense else weight * spk


def forward(x: Tensor, spk0: Tensor, mem0: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor, weight: Tensor,
            bias: Tensor | None, reset: str, all_to_all: bool, out: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``(spk, mem)`` over ``x`` of shape (T, B, N), as ``_RecurrentLeakyScan``; ``mem`` in ``out`` if given
    (contiguous, ``x`` itself allowed: each step reads ``x[t]`` before writing ``mem[t]``)."""
    steps, n = x.shape[0], x[0].numel()
    xf = x.contiguous()
    spk, mem = torch.empty_like(xf), (torch.empty_like(xf) if out is None else out)
    state = flat(mem0).to(torch.float32, copy=True)
    flats, periods = flat_params(x[0], beta, threshold, graded)
    if not all_to_all:
        v, pv = flat_param(weight, x[0])
        launch(_forward_elementwise, n, xf, flat(spk0), flat(mem0), *flats, v, spk, mem, steps, n, *periods, pv,
               reset=reset)
        return spk, mem
    prev_spk, prev_mem = spk0, mem0.contiguous()
    for step in range(steps):
        rec = _recurrent(prev_spk, weight, bias, all_to_all).contiguous()
        launch(_forward_step, n, xf[step], rec, prev_mem, state, *flats, spk[step], mem[step], n, *periods,
               reset=reset)
        prev_spk, prev_mem = spk[step], mem[step]
    return spk, mem


def backward(grad_spk: Tensor | None, grad_mem: Tensor | None, spk0: Tensor, mem0: Tensor, beta: Tensor,
             threshold: Tensor, graded: Tensor, weight: Tensor, bias: Tensor | None, mems: Tensor, reset: str,
             surrogate: str, params: list[float], all_to_all: bool, needs: list[bool],
             out: Tensor | None = None) -> tuple[Tensor | None, ...]:
    """The gradients of ``(x, spk0, mem0, beta, threshold, graded, weight, bias)`` (``None`` where not needed);
    ``x``'s in ``out`` if given (``mems`` itself allowed: step t reads ``U_t`` and ``U_{t-1}`` before writing
    its gradient, and the weight's gradient takes the spikes from before the loop)."""
    steps, n = mems.shape[0], mems[0].numel()
    kind, p1, p2 = encode(surrogate, params)
    if not all_to_all:
        return _backward_elementwise_call(grad_spk, grad_mem, spk0, mem0, beta, threshold, graded, weight, mems,
                                          reset, kind, p1, p2, needs, out)
    fired = torch.gt(mems, threshold) if needs[6] else None
    mu = torch.empty_like(mems) if out is None else out
    acc = [f32_zeros(n, mems) for _ in range(3)]
    flats, periods = flat_params(mems[0], beta, threshold, graded)
    gs = grad_spk.contiguous() if grad_spk is not None else None
    gm = grad_mem.contiguous() if grad_mem is not None else None
    mem0c = mem0.contiguous()
    for step in range(steps - 1, -1, -1):
        nxt = step + 1 < steps
        back = _transpose(mu[step + 1], weight, all_to_all).contiguous() if nxt else mems[step]
        launch(_backward_step, n, gs[step] if gs is not None else mems[step], back,
               gm[step] if gm is not None else mems[step], mu[step + 1] if nxt else mems[step], mems[step],
               mems[step - 1] if step else mem0c, *flats, mu[step], *acc, n, *periods, p1, p2, reset=reset,
               HAS_GS=gs is not None, HAS_BACK=nxt, HAS_GM=gm is not None, SURR=kind)
    like = mems[0]
    grad_w = _dense_weight_grad(mu, fired, graded, spk0) if needs[6] else None
    grad_b = mu.reshape(-1, mu.shape[-1]).sum(0) if bias is not None and needs[7] else None
    grad_spk0 = _transpose(mu[0], weight, all_to_all) if needs[1] else None
    grad_mem0 = beta.clamp(0, 1) * mu[0] if needs[2] else None
    return (mu if needs[0] else None, grad_spk0, grad_mem0, param_grad(acc[0], beta, like, clamped=True),
            param_grad(acc[1], threshold, like), param_grad(acc[2], graded, like), grad_w, grad_b)


def _backward_elementwise_call(grad_spk, grad_mem, spk0, mem0, beta, threshold, graded, weight, mems, reset, kind,
                               p1, p2, needs, out=None):
    """The backward of an element-wise V in one kernel; the gradients as ``backward`` returns them (``x``'s in
    ``out`` if given, ``mems`` allowed)."""
    steps, n = mems.shape[0], mems[0].numel()
    mu = torch.empty_like(mems) if out is None else out
    gspk0, gmem0 = torch.empty_like(spk0).contiguous(), torch.empty_like(mem0).contiguous()
    acc = [f32_zeros(n, mems) for _ in range(4)]
    like = mems[0]
    flats, periods = flat_params(like, beta, threshold, graded, weight)
    launch(_backward_elementwise, n, given(grad_spk, mems), given(grad_mem, mems), flat(spk0), flat(mem0), *flats,
           mems, mu, gspk0, gmem0, *acc, steps, n, (steps - 1) * n, *periods, p1, p2, reset=reset,
           HAS_GS=grad_spk is not None, HAS_GM=grad_mem is not None, SURR=kind)
    return (mu if needs[0] else None, gspk0 if needs[1] else None, gmem0 if needs[2] else None,
            param_grad(acc[0], beta, like, clamped=True), param_grad(acc[1], threshold, like),
            param_grad(acc[2], graded, like), param_grad(acc[3], weight, like) if needs[6] else None, None)
