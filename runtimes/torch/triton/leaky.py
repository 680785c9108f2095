r"""Triton kernels of the Leaky / IF / LI scans (``scan.py``), one program per block of neurons,
looping over all T steps inside the kernel.

The same updates as the torch scans (module docstring of ``scan.py``), computed in float32 for any
state dtype (float32, float16, bfloat16): the membrane carried from step to step stays float32,
each stored membrane is rounded to the state dtype, and spikes are decided on the stored value
(so the backward recomputes them exactly from the saved membranes, as the torch scans do).
Saved for the backward: the membranes (and, with ``reset_delay=False``, the pre-reset membranes).
"""

# ruff: noqa: SIM108 (Triton kernels: if-blocks compile to structured control flow; ternaries on runtime values may not)
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from snngraph.runtimes.torch.triton.common import (
    f32_zeros,
    flat,
    flat_params,
    given,
    launch,
    load_f32,
    load_neuron,
    neurons,
    param_grad,
    spike_adjoint,
    store_as,
    store_spiking,
)
from snngraph.runtimes.torch.triton.surrogate import encode, surrogate_grad


@triton.jit
def _forward(x_ptr, mem0_ptr, beta_ptr, thr_ptr, g_ptr, spk_ptr, mem_ptr, pre_ptr, T, N, PB, PT, PG,
             RESET: tl.constexpr, DELAY: tl.constexpr, SPIKING: tl.constexpr, BLOCK: tl.constexpr):
    offs, m = neurons(N, BLOCK)
    dt = mem_ptr.dtype.element_ty
    b, thr, g = load_neuron(beta_ptr, thr_ptr, g_ptr, offs, m, PB, PT, PG, 0.0)
    mem = load_f32(mem0_ptr + offs, m)
    above = (mem > thr).to(tl.float32)  # the reset of the first step
    px, pm, ps, pp = x_ptr + offs, mem_ptr + offs, spk_ptr + offs, pre_ptr + offs
    for _ in range(T):
        x = load_f32(px, m)
        if not SPIKING:
            mem = b * mem + x
            tl.store(pm, mem.to(dt), mask=m)
        else:
            if RESET == 0:
                mem = b * mem + x - above * thr
            elif RESET == 1:
                mem = b * ((1 - above) * mem) + x
            else:
                mem = b * mem + x
            if DELAY:
                above = store_spiking(pm, ps, mem, thr, g, m)
            else:  # reset in the step of the spike: the spike is decided on the stored pre-reset membrane
                fired = store_spiking(pp, ps, mem, thr, g, m)
                do_reset = fired - above
                if RESET == 0:
                    mem = mem - do_reset * thr
                else:
                    mem = mem - do_reset * mem
                stored = mem.to(dt)
                tl.store(pm, stored, mask=m)
                above = (stored.to(tl.float32) > thr).to(tl.float32)
            ps += N
            pp += N
        px += N
        pm += N


@triton.jit
def _backward(gs_ptr, gm_ptr, mem0_ptr, beta_ptr, thr_ptr, g_ptr, mems_ptr, pre_ptr, gx_ptr, gmem0_ptr,
              gbeta_ptr, gthr_ptr, gg_ptr, T, N, last, PB, PT, PG, p1, p2,
              RESET: tl.constexpr, DELAY: tl.constexpr, SPIKING: tl.constexpr, HAS_GS: tl.constexpr,
              HAS_GM: tl.constexpr, SURR: tl.constexpr, BLOCK: tl.constexpr):
    offs, m = neurons(N, BLOCK)
    b, thr, g = load_neuron(beta_ptr, thr_ptr, g_ptr, offs, m, PB, PT, PG, 1.0)
    mem0 = load_f32(mem0_ptr + offs, m)
    carry = tl.zeros([BLOCK], tl.float32)
    acc_b = tl.zeros([BLOCK], tl.float32)
    acc_t = tl.zeros([BLOCK], tl.float32)
    acc_g = tl.zeros([BLOCK], tl.float32)
    start = last + offs
    pu, pp, pgs, pgm, pgx = mems_ptr + start, pre_ptr + start, gs_ptr + start, gm_ptr + start, gx_ptr + start
    for i in range(T):
        t = T - 1 - i
        if t > 0:
            prev = load_f32(pu - N, m)
        else:
            prev = mem0
        reset = (prev > thr).to(tl.float32)
        keep = tl.full([BLOCK], 1.0, tl.float32)
        if SPIKING and RESET == 1:
            keep = 1 - reset
        if HAS_GM:
            mu = load_f32(pgm, m)
        else:
            mu = tl.zeros([BLOCK], tl.float32)
        if HAS_GS:
            gs = load_f32(pgs, m)
        else:
            gs = tl.zeros([BLOCK], tl.float32)
        if not SPIKING:
            lam = mu + carry
        elif DELAY:
            lam = mu
            if HAS_GS:
                sg, dg = spike_adjoint(load_f32(pu, m), thr, g, gs, SURR, p1, p2)
                lam = lam + sg
                acc_t -= sg
                acc_g += dg
            lam = lam + carry
            if RESET == 0:
                acc_t -= lam * reset
        else:  # reset in the step of the spike: lam is nu, the gradient of the pre-reset update
            pre = load_f32(pp, m)
            z = pre - thr
            s = (z > 0).to(tl.float32)
            do_reset = s - reset
            mu = mu + carry
            if RESET == 0:
                d_spk = gs - mu * thr / g
                d_pre = mu
            else:
                d_spk = gs - mu * pre / g
                d_pre = mu * (1 - do_reset)
            gz = surrogate_grad(z, d_spk * g, SURR, p1, p2)
            lam = d_pre + gz
            acc_t -= gz
            if RESET == 0:
                acc_t -= mu * do_reset + lam * reset
            acc_g += gs * s
        acc_b += lam * keep * prev
        store_as(pgx, lam, m)
        carry = b * keep * lam
        pu -= N
        pp -= N
        pgs -= N
        pgm -= N
        pgx -= N
    store_as(gmem0_ptr + offs, carry, m)
    tl.store(gbeta_ptr + offs, acc_b, mask=m)
    tl.store(gthr_ptr + offs, acc_t, mask=m)
    tl.store(gg_ptr + offs, acc_g, mask=m)


def _delayed(reset: str, reset_delay: bool, spiking: bool) -> bool:
    """Whether every step's membrane is the post-reset one (no pre-reset membranes are saved)."""
    return reset_delay or reset == "none" or not spiking


def forward(x: Tensor, mem0: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor, reset: str,
            reset_delay: bool, spiking: bool, out: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``(spk, mem, pre-reset membranes or empty)`` over ``x`` of shape (T, B, ...), as ``_LeakyScan``;
    ``mem`` in ``out`` if given (contiguous, ``x`` itself allowed: each step reads ``x[t]`` first)."""
    steps, n = x.shape[0], x[0].numel()
    xf = x.contiguous()
    delay = _delayed(reset, reset_delay, spiking)
    mem = torch.empty_like(xf) if out is None else out
    spk = torch.empty_like(xf) if spiking else x.new_empty(0)
    pre = x.new_empty(0) if delay else torch.empty_like(xf)
    flats, periods = flat_params(x[0], beta, threshold, graded)
    launch(_forward, n, xf, flat(mem0), *flats, spk if spiking else mem, mem, pre if not delay else mem, steps, n,
           *periods, reset=reset, DELAY=delay, SPIKING=spiking)
    return spk, mem, pre


def backward(grad_spk: Tensor | None, grad_mem: Tensor | None, mem0: Tensor, beta: Tensor, threshold: Tensor,
             graded: Tensor, mems: Tensor, pre: Tensor, reset: str, reset_delay: bool, surrogate: str,
             params: list[float], spiking: bool,
             out: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The gradients of ``(x, mem0, beta, threshold, graded)``, as ``_LeakyScan.backward``; ``x``'s in ``out``
    if given (``mems`` itself allowed: step t reads ``U_t`` and ``U_{t-1}`` before writing its gradient)."""
    steps, n = mems.shape[0], mems[0].numel()
    delay = _delayed(reset, reset_delay, spiking)
    kind, p1, p2 = encode(surrogate, params)
    gx, gmem0 = torch.empty_like(mems) if out is None else out, torch.empty_like(mem0).contiguous()
    acc = [f32_zeros(n, mems) for _ in range(3)]
    flats, periods = flat_params(mems[0], beta, threshold, graded)
    has_gs = grad_spk is not None and spiking
    launch(_backward, n, given(grad_spk if has_gs else None, mems), given(grad_mem, mems), flat(mem0), *flats, mems,
           mems if delay else pre, gx, gmem0, *acc, steps, n, (steps - 1) * n, *periods, p1, p2, reset=reset,
           DELAY=delay, SPIKING=spiking, HAS_GS=has_gs, HAS_GM=grad_mem is not None, SURR=kind)
    like = mems[0]
    return (gx, gmem0, param_grad(acc[0], beta, like, clamped=True), param_grad(acc[1], threshold, like),
            param_grad(acc[2], graded, like))
