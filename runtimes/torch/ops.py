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
        recurrent: for recurrent models, the map applied to the previous spikes.
    """

    __slots__ = ("_spike", "_recurrent")

    def __init__(self, spike_fn: Callable[[Tensor], Tensor] | None,
                 recurrent: Callable[[Tensor], Tensor] | None = None):
        self._spike = spike_fn
        self._recurrent = recurrent

    def spike(self, v: Tensor) -> Tensor:
        return self._spike(v)

    def recurrent(self, spk: Tensor) -> Tensor:
        return self._recurrent(spk)

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
