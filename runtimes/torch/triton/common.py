"""Helpers shared by the Triton scans: on the host, flat parameters and gradient reduction; inside the
kernels (``@triton.jit``, inlined), a program's block of neurons, parameter loads, the reset, the
stored membrane and its spikes, and the spike's adjoint."""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from snngraph.runtimes.torch.scan import _reduce
from snngraph.runtimes.torch.triton.surrogate import BLOCK, grid, surrogate_grad

RESETS = ("subtract", "zero", "none")


def flat(t: Tensor) -> Tensor:
    return t.contiguous().reshape(-1)


def flat_param(p: Tensor, like: Tensor) -> tuple[Tensor, int]:
    """``p`` broadcast against one step ``like`` (B, ...) as a flat vector the kernels read at
    ``offset % period``: a scalar (period 1), a per-neuron tensor matching ``like``'s trailing dims
    (period its size, nothing copied), else expanded to ``like``'s shape."""
    if p.numel() == 1:
        return p.reshape(1), 1
    q = p
    while q.dim() and q.shape[0] == 1:
        q = q[0]
    if tuple(q.shape) == tuple(like.shape[like.dim() - q.dim():]):
        return flat(q), q.numel()
    return flat(p.expand(like.shape)), like.numel()


def flat_params(like: Tensor, *params: Tensor) -> tuple[list[Tensor], list[int]]:
    """Each of ``params`` as :func:`flat_param`: the flat vectors, then their periods (the kernels take
    the pointers and the periods apart)."""
    pairs = [flat_param(p, like) for p in params]
    return [q for q, _ in pairs], [period for _, period in pairs]


def given(grad: Tensor | None, stand_in: Tensor) -> Tensor:
    """An incoming gradient as the kernel reads it; ``stand_in`` (never read: its HAS_ flag is off) for ``None``."""
    return grad.contiguous() if grad is not None else stand_in


def launch(kernel, n: int, *args, reset: str | None = None, **constexprs) -> None:
    """Run ``kernel`` over ``n`` neurons, BLOCK per program, the reset (if the kernel takes one) by index, with
    no fused multiply-adds (see ``surrogate.BLOCK``)."""
    if reset is not None:
        constexprs["RESET"] = RESETS.index(reset)
    kernel[grid(n)](*args, BLOCK=BLOCK, enable_fp_fusion=False, **constexprs)


def param_grad(acc: Tensor, param: Tensor, like: Tensor, clamped: bool = False) -> Tensor:
    """A per-neuron float32 accumulator (N,) summed to ``param``'s shape and dtype; ``clamped``: zero
    outside [0, 1] (the gradient of ``clamp(0, 1)``, as the torch scans)."""
    grad = _reduce(acc.view(like.shape), param)
    if clamped:
        grad = grad * ((param >= 0) & (param <= 1)).to(grad.dtype)
    return grad.to(param.dtype)


def f32_zeros(n: int, like: Tensor) -> Tensor:
    return torch.zeros(n, dtype=torch.float32, device=like.device)


@triton.jit
def neurons(N, BLOCK: tl.constexpr):
    """This program's neuron offsets and their mask (``offs < N``)."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    return offs, offs < N


@triton.jit
def load_f32(ptr, m):
    """``ptr`` (a block of addresses) read as float32, 0 where masked."""
    return tl.load(ptr, mask=m, other=0.0).to(tl.float32)


@triton.jit
def load_param(ptr, offs, m, period, other):
    """A :func:`flat_param` at each neuron, as float32 (``other`` where masked)."""
    return tl.load(ptr + offs % period, mask=m, other=other).to(tl.float32)


@triton.jit
def load_decay(ptr, offs, m, period):
    """A decay factor at each neuron, clamped to [0, 1] as the torch scans clamp it."""
    d = load_param(ptr, offs, m, period, 0.0)
    return tl.minimum(tl.maximum(d, 0.0), 1.0)


@triton.jit
def load_neuron(beta_ptr, thr_ptr, g_ptr, offs, m, PB, PT, PG, G_OTHER: tl.constexpr):
    """``(beta clamped, threshold, graded amplitude)``; ``G_OTHER`` for the amplitude where masked (1 in the
    backward kernels, which divide by it)."""
    return (load_decay(beta_ptr, offs, m, PB), load_param(thr_ptr, offs, m, PT, 0.0),
            load_param(g_ptr, offs, m, PG, G_OTHER))


@triton.jit
def store_as(ptr, value, m):
    """Store ``value`` at ``ptr`` (a block of addresses) in the pointer's dtype."""
    tl.store(ptr, value.to(ptr.dtype.element_ty), mask=m)


@triton.jit
def apply_reset(mem, above, thr, RESET: tl.constexpr):
    """The delayed reset of a membrane whose previous stored value was ``above`` threshold: subtract
    (``RESET == 0``), zero (1) or none (2)."""
    if RESET == 0:
        mem = mem - above * thr
    elif RESET == 1:
        mem = mem - above * mem
    return mem


@triton.jit
def store_spiking(pm, ps, mem, thr, g, m):
    """Store ``mem`` at ``pm`` in the state dtype and its spikes ``g * H(stored - thr)`` at ``ps``; the spike
    is decided on the stored value (the backward recomputes it from the saved membranes). Returns ``H``."""
    dt = pm.dtype.element_ty
    stored = mem.to(dt)
    tl.store(pm, stored, mask=m)
    above = (stored.to(tl.float32) > thr).to(tl.float32)
    tl.store(ps, (above * g).to(dt), mask=m)
    return above


@triton.jit
def spike_adjoint(u, thr, g, d_spk, SURR: tl.constexpr, p1, p2):
    """Through the spike ``g * H(u - thr)`` given its gradient ``d_spk``: ``(the membrane's gradient, the
    amplitude's d_spk * H)``; the threshold's is minus the first."""
    return surrogate_grad(u - thr, d_spk * g, SURR, p1, p2), d_spk * (u > thr).to(tl.float32)
