r"""Triton kernels of the Synaptic scan (``scan_synaptic.py``, delayed reset): one program per block
of neurons, all T steps inside the kernel, float32 arithmetic for any state dtype (see ``leaky.py``).

Backward: :math:`\lambda_t = \bar U_t + g\sigma'_t\bar S_t + \beta\mu_{t+1}`, :math:`\mu_t = \lambda_t`
(or :math:`(1-R_t)\lambda_t` for zero), :math:`\nu_t = \bar I_t + \mu_t + \alpha\nu_{t+1}`.
"""

# ruff: noqa: SIM108 (Triton kernels: if-blocks compile to structured control flow; ternaries on runtime values may not)
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from snngraph.runtimes.torch.triton.common import (
    apply_reset,
    f32_zeros,
    flat,
    flat_params,
    given,
    launch,
    load_decay,
    load_f32,
    load_neuron,
    neurons,
    param_grad,
    spike_adjoint,
    store_as,
    store_spiking,
)
from snngraph.runtimes.torch.triton.surrogate import encode


@triton.jit
def _forward(x_ptr, syn0_ptr, mem0_ptr, alpha_ptr, beta_ptr, thr_ptr, g_ptr, spk_ptr, syn_ptr, mem_ptr, T, N,
             PA, PB, PT, PG, RESET: tl.constexpr, BLOCK: tl.constexpr):
    offs, m = neurons(N, BLOCK)
    dt = mem_ptr.dtype.element_ty
    a = load_decay(alpha_ptr, offs, m, PA)
    b, thr, g = load_neuron(beta_ptr, thr_ptr, g_ptr, offs, m, PB, PT, PG, 0.0)
    syn = load_f32(syn0_ptr + offs, m)
    mem = load_f32(mem0_ptr + offs, m)
    above = (mem > thr).to(tl.float32)
    px, pi, pm, ps = x_ptr + offs, syn_ptr + offs, mem_ptr + offs, spk_ptr + offs
    for _ in range(T):
        syn = a * syn + load_f32(px, m)
        mem = apply_reset(b * mem + syn, above, thr, RESET)
        tl.store(pi, syn.to(dt), mask=m)
        above = store_spiking(pm, ps, mem, thr, g, m)
        px += N
        pi += N
        pm += N
        ps += N


@triton.jit
def _backward(gs_ptr, gi_ptr, gm_ptr, syn0_ptr, mem0_ptr, alpha_ptr, beta_ptr, thr_ptr, g_ptr, syns_ptr, mems_ptr,
              gx_ptr, gsyn0_ptr, gmem0_ptr, galpha_ptr, gbeta_ptr, gthr_ptr, gg_ptr, T, N, last, PA, PB, PT, PG,
              p1, p2, RESET: tl.constexpr, HAS_GS: tl.constexpr, HAS_GI: tl.constexpr, HAS_GM: tl.constexpr,
              NEED_ALPHA: tl.constexpr, SURR: tl.constexpr, BLOCK: tl.constexpr):
    offs, m = neurons(N, BLOCK)
    a = load_decay(alpha_ptr, offs, m, PA)
    b, thr, g = load_neuron(beta_ptr, thr_ptr, g_ptr, offs, m, PB, PT, PG, 1.0)
    syn0 = load_f32(syn0_ptr + offs, m)
    mem0 = load_f32(mem0_ptr + offs, m)
    mu_next = tl.zeros([BLOCK], tl.float32)
    nu_next = tl.zeros([BLOCK], tl.float32)
    acc_a = tl.zeros([BLOCK], tl.float32)
    acc_b = tl.zeros([BLOCK], tl.float32)
    acc_t = tl.zeros([BLOCK], tl.float32)
    acc_g = tl.zeros([BLOCK], tl.float32)
    start = last + offs
    pu, pi, pgx = mems_ptr + start, syns_ptr + start, gx_ptr + start
    pgs, pgi, pgm = gs_ptr + start, gi_ptr + start, gm_ptr + start
    for i in range(T):
        t = T - 1 - i
        u = load_f32(pu, m)
        if t > 0:
            prev = load_f32(pu - N, m)
        else:
            prev = mem0
        if HAS_GM:
            lam = load_f32(pgm, m)
        else:
            lam = tl.zeros([BLOCK], tl.float32)
        if HAS_GS:
            sg, dg = spike_adjoint(u, thr, g, load_f32(pgs, m), SURR, p1, p2)
            lam = lam + sg
            acc_t -= sg
            acc_g += dg
        lam = lam + mu_next * b
        reset = (prev > thr).to(tl.float32)
        if RESET == 1:
            lam = lam * (1 - reset)
        if RESET == 0:
            acc_t -= lam * reset
        if HAS_GI:
            nu = load_f32(pgi, m)
        else:
            nu = tl.zeros([BLOCK], tl.float32)
        nu = nu + lam
        nu = nu + nu_next * a
        if NEED_ALPHA:
            if t > 0:
                prev_syn = load_f32(pi - N, m)
            else:
                prev_syn = syn0
            acc_a += nu * prev_syn
        acc_b += lam * prev
        store_as(pgx, nu, m)
        mu_next = lam
        nu_next = nu
        pu -= N
        pi -= N
        pgx -= N
        pgs -= N
        pgi -= N
        pgm -= N
    store_as(gsyn0_ptr + offs, a * nu_next, m)
    store_as(gmem0_ptr + offs, b * mu_next, m)
    tl.store(galpha_ptr + offs, acc_a, mask=m)
    tl.store(gbeta_ptr + offs, acc_b, mask=m)
    tl.store(gthr_ptr + offs, acc_t, mask=m)
    tl.store(gg_ptr + offs, acc_g, mask=m)


def forward(x: Tensor, syn0: Tensor, mem0: Tensor, alpha: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor,
            reset: str, syn_out: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``(spk, syn, mem)`` over ``x`` of shape (T, B, ...), as ``_SynapticScan``; ``syn`` in ``syn_out`` if given
    (contiguous, ``x`` itself allowed: each step reads ``x[t]`` before writing ``syn[t]``)."""
    steps, n = x.shape[0], x[0].numel()
    xf = x.contiguous()
    spk, mem = torch.empty_like(xf), torch.empty_like(xf)
    syn = torch.empty_like(xf) if syn_out is None else syn_out
    flats, periods = flat_params(x[0], alpha, beta, threshold, graded)
    launch(_forward, n, xf, flat(syn0), flat(mem0), *flats, spk, syn, mem, steps, n, *periods, reset=reset)
    return spk, syn, mem


def backward(grad_spk: Tensor | None, grad_syn: Tensor | None, grad_mem: Tensor | None, syn0: Tensor, mem0: Tensor,
             alpha: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor, syns: Tensor, mems: Tensor, reset: str,
             surrogate: str, params: list[float], need_alpha: bool) -> tuple[Tensor, ...]:
    """The gradients of ``(x, syn0, mem0, alpha, beta, threshold, graded)``, as ``_SynapticScan.backward``."""
    steps, n = mems.shape[0], mems[0].numel()
    kind, p1, p2 = encode(surrogate, params)
    gx = torch.empty_like(mems)
    gsyn0, gmem0 = torch.empty_like(syn0).contiguous(), torch.empty_like(mem0).contiguous()
    acc = [f32_zeros(n, mems) for _ in range(4)]
    flats, periods = flat_params(mems[0], alpha, beta, threshold, graded)
    launch(_backward, n, *(given(grad, mems) for grad in (grad_spk, grad_syn, grad_mem)), flat(syn0), flat(mem0),
           *flats, syns if need_alpha else mems, mems, gx, gsyn0, gmem0, *acc, steps, n, (steps - 1) * n, *periods,
           p1, p2, reset=reset, HAS_GS=grad_spk is not None, HAS_GI=grad_syn is not None,
           HAS_GM=grad_mem is not None, NEED_ALPHA=need_alpha, SURR=kind)
    like = mems[0]
    return (gx, gsyn0, gmem0, param_grad(acc[0], alpha, like, clamped=True),
            param_grad(acc[1], beta, like, clamped=True), param_grad(acc[2], threshold, like),
            param_grad(acc[3], graded, like))
