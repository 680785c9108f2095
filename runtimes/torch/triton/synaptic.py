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

from snngraph.runtimes.torch.triton.common import RESETS, f32_zeros, flat, flat_param, param_grad
from snngraph.runtimes.torch.triton.surrogate import BLOCK, encode, grid, surrogate_grad


@triton.jit
def _forward(x_ptr, syn0_ptr, mem0_ptr, alpha_ptr, beta_ptr, thr_ptr, g_ptr, spk_ptr, syn_ptr, mem_ptr, T, N,
             PA, PB, PT, PG, RESET: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < N
    dt = mem_ptr.dtype.element_ty
    a = tl.load(alpha_ptr + offs % PA, mask=m, other=0.0).to(tl.float32)
    a = tl.minimum(tl.maximum(a, 0.0), 1.0)
    b = tl.load(beta_ptr + offs % PB, mask=m, other=0.0).to(tl.float32)
    b = tl.minimum(tl.maximum(b, 0.0), 1.0)
    thr = tl.load(thr_ptr + offs % PT, mask=m, other=0.0).to(tl.float32)
    g = tl.load(g_ptr + offs % PG, mask=m, other=0.0).to(tl.float32)
    syn = tl.load(syn0_ptr + offs, mask=m, other=0.0).to(tl.float32)
    mem = tl.load(mem0_ptr + offs, mask=m, other=0.0).to(tl.float32)
    above = (mem > thr).to(tl.float32)
    px, pi, pm, ps = x_ptr + offs, syn_ptr + offs, mem_ptr + offs, spk_ptr + offs
    for _ in range(T):
        x = tl.load(px, mask=m, other=0.0).to(tl.float32)
        syn = a * syn + x
        base = b * mem + syn
        if RESET == 0:
            mem = base - above * thr
        elif RESET == 1:
            mem = base - base * above
        else:
            mem = base
        stored = mem.to(dt)
        tl.store(pi, syn.to(dt), mask=m)
        tl.store(pm, stored, mask=m)
        above = (stored.to(tl.float32) > thr).to(tl.float32)
        tl.store(ps, (above * g).to(dt), mask=m)
        px += N
        pi += N
        pm += N
        ps += N


@triton.jit
def _backward(gs_ptr, gi_ptr, gm_ptr, syn0_ptr, mem0_ptr, alpha_ptr, beta_ptr, thr_ptr, g_ptr, syns_ptr, mems_ptr,
              gx_ptr, gsyn0_ptr, gmem0_ptr, galpha_ptr, gbeta_ptr, gthr_ptr, gg_ptr, T, N, last, PA, PB, PT, PG,
              p1, p2, RESET: tl.constexpr, HAS_GS: tl.constexpr, HAS_GI: tl.constexpr, HAS_GM: tl.constexpr,
              NEED_ALPHA: tl.constexpr, SURR: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < N
    a = tl.load(alpha_ptr + offs % PA, mask=m, other=0.0).to(tl.float32)
    a = tl.minimum(tl.maximum(a, 0.0), 1.0)
    b = tl.load(beta_ptr + offs % PB, mask=m, other=0.0).to(tl.float32)
    b = tl.minimum(tl.maximum(b, 0.0), 1.0)
    thr = tl.load(thr_ptr + offs % PT, mask=m, other=0.0).to(tl.float32)
    g = tl.load(g_ptr + offs % PG, mask=m, other=1.0).to(tl.float32)
    syn0 = tl.load(syn0_ptr + offs, mask=m, other=0.0).to(tl.float32)
    mem0 = tl.load(mem0_ptr + offs, mask=m, other=0.0).to(tl.float32)
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
        u = tl.load(pu, mask=m, other=0.0).to(tl.float32)
        if t > 0:
            prev = tl.load(pu - N, mask=m, other=0.0).to(tl.float32)
        else:
            prev = mem0
        if HAS_GM:
            lam = tl.load(pgm, mask=m, other=0.0).to(tl.float32)
        else:
            lam = tl.zeros([BLOCK], tl.float32)
        if HAS_GS:
            gs = tl.load(pgs, mask=m, other=0.0).to(tl.float32)
            sg = surrogate_grad(u - thr, gs * g, SURR, p1, p2)
            lam = lam + sg
            acc_t -= sg
            acc_g += gs * (u > thr).to(tl.float32)
        lam = lam + mu_next * b
        reset = (prev > thr).to(tl.float32)
        if RESET == 1:
            lam = lam * (1 - reset)
        if RESET == 0:
            acc_t -= lam * reset
        if HAS_GI:
            nu = tl.load(pgi, mask=m, other=0.0).to(tl.float32)
        else:
            nu = tl.zeros([BLOCK], tl.float32)
        nu = nu + lam
        nu = nu + nu_next * a
        if NEED_ALPHA:
            if t > 0:
                prev_syn = tl.load(pi - N, mask=m, other=0.0).to(tl.float32)
            else:
                prev_syn = syn0
            acc_a += nu * prev_syn
        acc_b += lam * prev
        tl.store(pgx, nu.to(gx_ptr.dtype.element_ty), mask=m)
        mu_next = lam
        nu_next = nu
        pu -= N
        pi -= N
        pgx -= N
        pgs -= N
        pgi -= N
        pgm -= N
    tl.store(gsyn0_ptr + offs, (a * nu_next).to(gsyn0_ptr.dtype.element_ty), mask=m)
    tl.store(gmem0_ptr + offs, (b * mu_next).to(gmem0_ptr.dtype.element_ty), mask=m)
    tl.store(galpha_ptr + offs, acc_a, mask=m)
    tl.store(gbeta_ptr + offs, acc_b, mask=m)
    tl.store(gthr_ptr + offs, acc_t, mask=m)
    tl.store(gg_ptr + offs, acc_g, mask=m)


def forward(x: Tensor, syn0: Tensor, mem0: Tensor, alpha: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor,
            reset: str) -> tuple[Tensor, Tensor, Tensor]:
    """``(spk, syn, mem)`` over ``x`` of shape (T, B, ...), as ``_SynapticScan``."""
    steps, n = x.shape[0], x[0].numel()
    xf = x.contiguous()
    spk, syn, mem = torch.empty_like(xf), torch.empty_like(xf), torch.empty_like(xf)
    (a, pa), (b, pb), (t, pt), (g, pg) = (flat_param(p, x[0]) for p in (alpha, beta, threshold, graded))
    _forward[grid(n)](xf, flat(syn0), flat(mem0), a, b, t, g, spk, syn, mem, steps, n, pa, pb, pt, pg,
                      RESET=RESETS.index(reset), BLOCK=BLOCK, enable_fp_fusion=False)
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
    (a, pa), (b, pb), (t, pt), (g, pg) = (flat_param(p, mems[0]) for p in (alpha, beta, threshold, graded))
    given = [grad.contiguous() if grad is not None else mems for grad in (grad_spk, grad_syn, grad_mem)]
    _backward[grid(n)](*given, flat(syn0), flat(mem0), a, b, t, g, syns if need_alpha else mems, mems, gx, gsyn0,
                       gmem0, *acc, steps, n, (steps - 1) * n, pa, pb, pt, pg, p1, p2, RESET=RESETS.index(reset),
                       HAS_GS=grad_spk is not None, HAS_GI=grad_syn is not None, HAS_GM=grad_mem is not None,
                       NEED_ALPHA=need_alpha, SURR=kind, BLOCK=BLOCK, enable_fp_fusion=False)
    like = mems[0]
    return (gx, gsyn0, gmem0, param_grad(acc[0], alpha, like, clamped=True),
            param_grad(acc[1], beta, like, clamped=True), param_grad(acc[2], threshold, like),
            param_grad(acc[3], graded, like))
