"""Host-side helpers shared by the Triton scans: flat parameters and gradient reduction."""

from __future__ import annotations

import torch
from torch import Tensor

from snngraph.runtimes.torch.scan import _reduce

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


def param_grad(acc: Tensor, param: Tensor, like: Tensor, clamped: bool = False) -> Tensor:
    """A per-neuron float32 accumulator (N,) summed to ``param``'s shape and dtype; ``clamped``: zero
    outside [0, 1] (the gradient of ``clamp(0, 1)``, as the torch scans)."""
    grad = _reduce(acc.view(like.shape), param)
    if clamped:
        grad = grad * ((param >= 0) & (param <= 1)).to(grad.dtype)
    return grad.to(param.dtype)


def f32_zeros(n: int, like: Tensor) -> Tensor:
    return torch.zeros(n, dtype=torch.float32, device=like.device)
