"""Pieces shared by the torch kernels and scans: the default spike function and snnTorch's clamp.

Hyper-parameters (``beta``, ``threshold``, ...) may be Python numbers, 0-d tensors or per-neuron
tensors that broadcast over the last dimensions of the state; tensors may require grad.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from snngraph.ir.model import RESET
from snngraph.ir.surrogate import DEFAULT_SURROGATE

Scalar = float | Tensor
SpikeFn = Callable[[Tensor], Tensor]

RESET_MECHANISMS = RESET.choices


def spike_fn(spike_grad: SpikeFn | None) -> SpikeFn:
    """The spike function to use: ``spike_grad``, or snnTorch's default ``atan()``."""
    return DEFAULT_SURROGATE if spike_grad is None else spike_grad


def clamp01(value: Scalar) -> Scalar:
    """snnTorch's ``beta.clamp(0, 1)``, for tensors and Python numbers alike."""
    if isinstance(value, Tensor):
        return value.clamp(0, 1)
    return min(max(value, 0.0), 1.0)
