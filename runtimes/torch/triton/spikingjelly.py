r"""Triton kernels of SpikingJelly's IF / LIF scan (``scan_sj.py``, models ``sj_if`` / ``sj_lif``), one program per
block of neurons, looping over all T steps inside the kernel.

The updates of ``scan_sj``'s module docstring, in float32 for any state dtype (float32, float16, bfloat16):
the state carried from step to step stays float32, each stored charged membrane :math:`h_t` is rounded to
the state dtype, and the firing test :math:`S_t = 1 - [\theta' > h_t]` is made on the stored value (so the
backward's :math:`1 - S_t` and surrogate read exactly what the forward decided). Saved for the backward:
the charged membranes only. The parameters are constants; the gradients are those of ``x`` and ``u0``:

.. math::
    \partial h_t = \sigma_t\,\partial S_t + \lambda_t C_t,\qquad
    \lambda_{t-1} = \partial v_{t-1} + \partial h_t\,(1 - 1/\tau)\ \text{(LIF)},\quad \partial h_t\ \text{(IF)}

with :math:`C_t = 1 - [\neg d]\,\theta\sigma_t` (soft) or :math:`(1 - S_t) - [\neg d]\,h_t\sigma_t` (hard) and
:math:`\partial x_t = \partial h_t/\tau` (LIF with ``decay_input``), else :math:`\partial h_t`.
"""

# ruff: noqa: SIM108 (Triton kernels: if-blocks compile to structured control flow; ternaries on runtime values may not)
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from snngraph.runtimes.torch.triton.common import (
    flat,
    flat_params,
    given,
    launch,
    load_f32,
    load_param,
    neurons,
    store_as,
)
from snngraph.runtimes.torch.triton.surrogate import encode, surrogate_grad


@triton.jit
def _forward(x_ptr, u0_ptr, tau_ptr, thr_ptr, fire_ptr, spk_ptr, v_ptr, h_ptr, T, N, PTAU, PTHR, PFIRE,
             LIF: tl.constexpr, SOFT: tl.constexpr, DECAY_INPUT: tl.constexpr, KEEP_V: tl.constexpr,
             BLOCK: tl.constexpr):
    offs, m = neurons(N, BLOCK)
    dt = h_ptr.dtype.element_ty
    tau = load_param(tau_ptr, offs, m, PTAU, 1.0)
    thr = load_param(thr_ptr, offs, m, PTHR, 0.0)
    fire = load_param(fire_ptr, offs, m, PFIRE, 0.0)
    u = load_f32(u0_ptr + offs, m)
    px, ph, ps, pv = x_ptr + offs, h_ptr + offs, spk_ptr + offs, v_ptr + offs
    for _ in range(T):
        x = load_f32(px, m)
        if not LIF:
            h = u + x
        elif DECAY_INPUT:
            h = u + (x - u) / tau
        else:
            h = (u - u / tau) + x
        stored = h.to(dt)
        tl.store(ph, stored, mask=m)  # (may be x's own address: x[t] is read first)
        keep = (fire > stored.to(tl.float32)).to(tl.float32)  # 1 - S
        spike = 1 - keep
        tl.store(ps, spike.to(dt), mask=m)
        if SOFT:
            u = h - spike * thr
        else:
            u = keep * h
        if KEEP_V:
            tl.store(pv, u.to(dt), mask=m)
        px += N
        ph += N
        ps += N
        pv += N


@triton.jit
def _backward(gs_ptr, gv_ptr, h_ptr, tau_ptr, thr_ptr, fire_ptr, gx_ptr, gu0_ptr, T, N, last, PTAU, PTHR, PFIRE,
              p1, p2, LIF: tl.constexpr, SOFT: tl.constexpr, DETACH: tl.constexpr, DECAY_INPUT: tl.constexpr,
              HAS_GS: tl.constexpr, HAS_GV: tl.constexpr, SURR: tl.constexpr, BLOCK: tl.constexpr):
    offs, m = neurons(N, BLOCK)
    tau = load_param(tau_ptr, offs, m, PTAU, 1.0)
    thr = load_param(thr_ptr, offs, m, PTHR, 0.0)
    fire = load_param(fire_ptr, offs, m, PFIRE, 0.0)
    carry = tl.zeros([BLOCK], tl.float32)  # lambda: the gradient reaching the state after the step
    start = last + offs
    ph, pgs, pgv, pgx = h_ptr + start, gs_ptr + start, gv_ptr + start, gx_ptr + start
    for _ in range(T):
        h = load_f32(ph, m)
        if HAS_GV:
            lam = load_f32(pgv, m) + carry
        else:
            lam = carry
        z = fire - h
        if HAS_GS:
            gs = load_f32(pgs, m)
        else:
            gs = tl.zeros([BLOCK], tl.float32)
        if DETACH:
            gh = surrogate_grad(z, gs, SURR, p1, p2)
            if SOFT:
                gh = gh + lam
            else:
                gh = gh + lam * (z > 0).to(tl.float32)
        else:
            sg = surrogate_grad(z, tl.full([BLOCK], 1.0, tl.float32), SURR, p1, p2)
            if SOFT:
                c = 1 - sg * thr
            else:
                c = (z > 0).to(tl.float32) - h * sg
            gh = sg * gs + lam * c
        if not LIF:
            gx = gh
            carry = gh
        elif DECAY_INPUT:
            gx = gh / tau
            carry = gh - gx
        else:
            gx = gh
            carry = gh - gh / tau
        store_as(pgx, gx, m)  # (may be h's own address: h_t was read first)
        ph -= N
        pgs -= N
        pgv -= N
        pgx -= N
    store_as(gu0_ptr + offs, carry, m)


def forward(x: Tensor, u0: Tensor, tau: Tensor, threshold: Tensor, v_reset: Tensor, lif: bool, soft: bool,
            decay_input: bool, keep_v: bool, out: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``(spikes, states v or empty, charged membranes)`` over ``x`` of shape (T, B, ...), as ``scan_sj._SjScan``;
    the membranes in ``out`` if given (contiguous, ``x`` itself allowed)."""
    steps, n = x.shape[0], x[0].numel()
    xf = x.contiguous()
    charged = torch.empty_like(xf) if out is None else out
    spk, v = torch.empty_like(xf), torch.empty_like(xf) if keep_v else x.new_empty(0)
    fire_at = threshold if soft else threshold - v_reset
    flats, periods = flat_params(x[0], tau, threshold, fire_at)
    launch(_forward, n, xf, flat(u0.expand(x[0].shape)), *flats, spk, v if keep_v else charged, charged, steps, n,
           *periods, LIF=lif, SOFT=soft, DECAY_INPUT=decay_input, KEEP_V=keep_v)
    return spk, v, charged


def backward(g_spk: Tensor | None, g_v: Tensor | None, charged: Tensor, u0: Tensor, tau: Tensor, threshold: Tensor,
             v_reset: Tensor, lif: bool, soft: bool, detach: bool, decay_input: bool, surrogate: str,
             params: list[float], out: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The gradients of ``(x, u0)``, as ``scan_sj._SjScan.backward``; ``x``'s in ``out`` if given (``charged``
    itself allowed: each step reads its membrane before writing its gradient)."""
    steps, n = charged.shape[0], charged[0].numel()
    charged = charged.contiguous()
    g_v = g_v if g_v is not None and g_v.numel() else None  # a scratch scan's (empty) states
    kind, p1, p2 = encode(surrogate, params)
    gx = torch.empty_like(charged) if out is None else out
    g_u0 = torch.empty(charged.shape[1:], dtype=u0.dtype, device=charged.device)
    fire_at = threshold if soft else threshold - v_reset
    flats, periods = flat_params(charged[0], tau, threshold, fire_at)
    launch(_backward, n, given(g_spk, charged), given(g_v, charged), charged, *flats, gx, g_u0, steps, n,
           (steps - 1) * n, *periods, p1, p2, LIF=lif, SOFT=soft, DETACH=detach,
           DECAY_INPUT=decay_input, HAS_GS=g_spk is not None, HAS_GV=g_v is not None, SURR=kind)
    return gx, g_u0 if g_u0.shape == u0.shape else g_u0.sum_to_size(u0.shape)
