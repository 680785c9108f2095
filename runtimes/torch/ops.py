"""The torch implementation of the ``ops`` interface (see :mod:`snngraph.ir.model`).

Values are tensors or Python numbers and arithmetic is torch's own, so a model's step function runs
as plain torch code: autograd differentiates it, and ``spike`` applies the node's surrogate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from snngraph.ir.errors import GraphError


def _float(cond: Any, like: Any) -> Any:
    """A comparison's result as a 0/1 value of ``like``'s floating dtype."""
    if isinstance(cond, Tensor):
        dtype = like.dtype if isinstance(like, Tensor) and like.is_floating_point() else torch.get_default_dtype()
        return cond.to(dtype)
    return float(cond)


class TorchOps:
    """``ops`` over torch tensors.

    Args:
        spike_fn: the spike function (a surrogate: Heaviside forward, surrogate backward).
        recurrent: for recurrent models, the map applied to the previous spikes (cell models: to a state).
        quant: the state quantiser (``sg.functional.state_quant(...)``, snnTorch's, any callable);
            ``None``: ``quant`` is the identity.
        project: for cell models, the input projection (identity when the caller projected already);
            for heads models ``project(x, head)``.
        pool: for ``spike_pool`` models, the spikes' pooling (:func:`pool_fn`); ``None``: the identity.
    """

    __slots__ = ("_spike", "_recurrent", "_quant", "_project", "_pool")

    def __init__(self, spike_fn: Callable[[Tensor], Tensor] | None,
                 recurrent: Callable[[Tensor], Tensor] | None = None,
                 quant: Callable[[Tensor], Tensor] | None = None,
                 project: Callable[[Tensor], Tensor] | None = None,
                 pool: Callable[[Tensor], Tensor] | None = None):
        self._spike = spike_fn
        self._recurrent = recurrent
        self._quant = quant
        self._project = project
        self._pool = pool

    def spike(self, v: Tensor) -> Tensor:
        return self._spike(v)

    def recurrent(self, spk: Tensor) -> Tensor:
        return self._recurrent(spk)

    def quant(self, v: Any) -> Any:
        return v if self._quant is None else self._quant(v)

    @staticmethod
    def winner(v: Tensor) -> Tensor:
        """1 at each sample's (dim 0's) largest value over all its other dims, the first on ties; detached."""
        if not isinstance(v, Tensor) or v.dim() < 2:
            raise GraphError("inhibition needs batched values (B, neurons...): the winner is taken per sample, "
                             f"got shape {tuple(getattr(v, 'shape', ()))}")
        flat = v.detach().reshape(v.shape[0], -1)
        mask = torch.zeros_like(flat).scatter_(1, flat.argmax(1, keepdim=True), 1.0)
        return mask.reshape(v.shape)

    def project(self, x: Tensor, head: str | None = None) -> Tensor:
        if self._project is None:
            return x
        return self._project(x) if head is None else self._project(x, head)

    @staticmethod
    def reshape(v: Tensor, shape: tuple[int, ...]) -> Tensor:
        """Each sample's values in per-sample ``shape`` (dim 0, the batch, kept)."""
        return v.reshape(v.shape[0], *shape)

    @staticmethod
    def outer(a: Tensor, b: Tensor) -> Tensor:
        """Each sample's outer product :math:`a b^\\top` of vectors ``(B, d)`` and ``(B, n)``: ``(B, d, n)``."""
        return a.unsqueeze(-1) * b.unsqueeze(-2)

    @staticmethod
    def matmul(a: Tensor, b: Tensor) -> Tensor:
        """Each sample's matrix product ``(B, d, n) @ (B, n, m)``."""
        return torch.matmul(a, b)

    def pool(self, v: Tensor) -> Tensor:
        return v if self._pool is None else self._pool(v)

    @staticmethod
    def tanh(v: Any) -> Any:
        return torch.tanh(v) if isinstance(v, Tensor) else math.tanh(v)

    @staticmethod
    def split(v: Tensor, n: int) -> tuple[Tensor, ...]:
        """``n`` equal chunks along the feature axis (dim 1 of a batch)."""
        return torch.chunk(v, n, dim=1)

    @staticmethod
    def detach(v: Any) -> Any:
        return v.detach() if isinstance(v, Tensor) else v

    @staticmethod
    def clamp(v: Any, lo: float | None = None, hi: float | None = None) -> Any:
        if isinstance(v, Tensor):
            return v.clamp(lo, hi)
        v = v if lo is None else max(v, lo)
        return v if hi is None else min(v, hi)

    @staticmethod
    def exp(v: Any) -> Any:
        return torch.exp(v) if isinstance(v, Tensor) else math.exp(v)

    @staticmethod
    def log(v: Any) -> Any:
        if isinstance(v, Tensor):
            return torch.log(v)
        return math.log(v) if v > 0 else (-math.inf if v == 0 else math.nan)

    @staticmethod
    def sigmoid(v: Any) -> Any:
        if isinstance(v, Tensor):
            return torch.sigmoid(v)
        return 1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v))

    @staticmethod
    def abs(v: Any) -> Any:
        return torch.abs(v) if isinstance(v, Tensor) else abs(v)

    @staticmethod
    def where(cond: Any, a: Any, b: Any) -> Any:
        if not any(isinstance(v, Tensor) for v in (cond, a, b)):
            return a if cond else b
        cond = torch.as_tensor(cond) != 0
        return torch.where(cond, a, b)

    @staticmethod
    def minimum(a: Any, b: Any) -> Any:
        if isinstance(a, Tensor) or isinstance(b, Tensor):
            return torch.minimum(torch.as_tensor(a), torch.as_tensor(b))
        return min(a, b)

    @staticmethod
    def maximum(a: Any, b: Any) -> Any:
        if isinstance(a, Tensor) or isinstance(b, Tensor):
            return torch.maximum(torch.as_tensor(a), torch.as_tensor(b))
        return max(a, b)

    @staticmethod
    def gt(a: Any, b: Any) -> Any:
        return _float(a > b, a if isinstance(a, Tensor) else b)

    @staticmethod
    def ge(a: Any, b: Any) -> Any:
        return _float(a >= b, a if isinstance(a, Tensor) else b)

    @staticmethod
    def lt(a: Any, b: Any) -> Any:
        return _float(a < b, a if isinstance(a, Tensor) else b)

    @staticmethod
    def le(a: Any, b: Any) -> Any:
        return _float(a <= b, a if isinstance(a, Tensor) else b)


def pool_fn(pool: str, size: Any) -> Callable[[Tensor], Tensor] | None:
    """A ``spike_pool`` model's ``ops.pool`` (:mod:`snngraph.ir.model_pool`): 2-D max / average pooling
    with window = stride = ``size`` (an int or a pair), or ``None`` for ``"none"``."""
    if pool == "none":
        if size is not None:
            raise GraphError("pool_size given without pool ('max' or 'avg')")
        return None
    if pool not in ("max", "avg") or size is None:
        raise GraphError(f"pool must be 'none', 'max' or 'avg' (with a pool_size), got {pool!r}, {size!r}")
    size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    fn = torch.nn.functional.max_pool2d if pool == "max" else torch.nn.functional.avg_pool2d
    return lambda v: fn(v, size)
