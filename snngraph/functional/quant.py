"""Quantisation-aware training of neuron states (snnTorch's ``state_quant``)."""

from __future__ import annotations

import math
import operator

import torch
from torch import Tensor

__all__ = ["StateQuant", "state_quant"]

# snnTorch's default base of the exponential level spacing, by bit width (8 and above: 0.95)
_MULTIPLIERS = {1: 0.05, 2: 0.1, 3: 0.3, 4: 0.5, 5: 0.7, 6: 0.9, 7: 0.925}


def _nearest_index(value: Tensor, grid: Tensor) -> Tensor:
    """``argmin_i |grid[i] - value|`` for ascending ``grid``, first index on ties, computed
    without the ``(numel, len(grid))`` distance matrix.

    The minimum is at one of the two neighbours of ``value``; rounded distances can tie it
    with more levels further left (e.g. far outside the grid), and the first of those lies in
    a suffix of ``[0, best]`` found by bisection.
    """
    upper = torch.bucketize(value, grid).clamp(max=grid.numel() - 1)
    lower = (upper - 1).clamp(min=0)
    d_upper, d_lower = torch.abs(grid[upper] - value), torch.abs(grid[lower] - value)
    best = torch.where(d_upper < d_lower, upper, lower)
    least = torch.minimum(d_upper, d_lower)
    low, high = torch.zeros_like(best), best
    for _ in range(grid.numel().bit_length()):
        mid = (low + high) // 2
        ties = torch.abs(grid[mid] - value) <= least
        high, low = torch.where(ties, mid, high), torch.where(ties, low, mid + 1)
    return high


class StateQuant(torch.autograd.Function):
    """snnTorch's ``StateQuant``: ``StateQuant.apply(x, levels)`` rounds ``x`` to the nearest of the
    ascending ``levels`` (the first on ties, as snnTorch's ``argmin``), with a straight-through gradient.

    Differs from snnTorch: the result keeps ``x``'s dtype (snnTorch returns ``levels``' dtype) and no
    ``(numel, len(levels))`` distance matrix is built; ``levels`` must be ascending (``state_quant``'s are).
    """

    @staticmethod
    def forward(ctx, x: Tensor, levels: Tensor) -> Tensor:
        dtype = torch.promote_types(x.dtype, levels.dtype)
        value, grid = x.to(dtype), levels.to(device=x.device, dtype=dtype)
        return grid[_nearest_index(value, grid)].to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad.clone(), None


def _ramp(start: float, span: float, count: int, multiplier: float, ascending: bool) -> list[float]:
    """``count`` levels from ``start`` covering ``span``, spaced by powers of ``multiplier``.

    The lower side (``ascending``) starts at ``start`` with the widest gap first; the upper
    side steps past ``start`` with the narrowest gap first. Same float operations as snnTorch.
    """
    if count == 0:
        return []
    room = sum(multiplier**j for j in reversed(range(count))) / span
    levels, value = [], start
    for j in range(count) if ascending else reversed(range(count)):
        if ascending:
            levels.append(value)
        value += multiplier**j / room
        if not ascending:
            levels.append(value)
    return levels


def _levels(num_bits, uniform, thr_centered, threshold, lower_limit, upper_limit, multiplier):
    num_levels = 2 << num_bits - 1
    low = -threshold - threshold * lower_limit
    high = threshold + threshold * upper_limit
    if uniform:
        return torch.linspace(low, high, num_levels)
    if multiplier is None:
        multiplier = _MULTIPLIERS.get(num_bits, 0.95)
    pivot = threshold if thr_centered else 0
    max_val, min_val = threshold + threshold * upper_limit, -(threshold + threshold * lower_limit)
    lower_bits = math.floor(num_levels * ((pivot - min_val) / (max_val - min_val)))
    levels = _ramp(min_val, pivot - min_val, lower_bits, multiplier, ascending=True)
    levels += _ramp(pivot, max_val - pivot, num_levels - lower_bits, multiplier, ascending=False)
    return torch.tensor(levels)


class _StateQuantizer:
    """Callable returned by ``state_quant``; ``levels`` holds the valid states."""

    def __init__(self, levels: Tensor) -> None:
        self.levels = levels

    def __call__(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"state_quant expects a torch.Tensor, got {type(x).__name__}")
        return StateQuant.apply(x, self.levels)

    def __repr__(self) -> str:
        return f"state_quant(levels={self.levels.numel()})"


def state_quant(
    num_bits=8, uniform=True, thr_centered=True, threshold=1, lower_limit=0, upper_limit=0.2, multiplier=None
):
    """Quantiser of neuron states for quantisation-aware training.

    The returned callable maps a state to the nearest of ``2 ** num_bits`` levels between
    ``-threshold * (1 + lower_limit)`` and ``threshold * (1 + upper_limit)``, with a
    straight-through gradient. Pass it as ``state_quant=`` to a neuron.

    Args:
        num_bits: Bits per state.
        uniform: Evenly spaced levels; otherwise exponentially spaced, densest around the
            threshold (``thr_centered``) or around 0.
        thr_centered: For non-uniform levels, cluster them at the threshold instead of 0.
        threshold: The neuron threshold the levels are scaled to.
        lower_limit: How far the lowest level goes below ``-threshold``, as a fraction of it.
        upper_limit: How far the highest level goes above ``threshold``, as a fraction of it.
        multiplier: Base of the exponential spacing; by default chosen from ``num_bits``.

    Returns:
        A callable ``x -> quantised x`` (in ``x``'s dtype) with a ``levels`` attribute.

    Differs from snnTorch: the result keeps the input's dtype (snnTorch returns float32) and
    does not build a ``(numel, 2 ** num_bits)`` distance matrix.
    """
    try:
        bits = operator.index(num_bits)
    except TypeError:
        raise TypeError(f"`num_bits` must be an integer, got {num_bits!r}") from None
    if bits < 1:
        raise ValueError(f"`num_bits` must be at least 1, got {bits}")
    if threshold <= 0:
        raise ValueError(f"`threshold` must be positive, got {threshold}")
    if lower_limit < 0 or upper_limit < 0:
        raise ValueError(f"`lower_limit` ({lower_limit}) and `upper_limit` ({upper_limit}) must not be negative")
    if multiplier is not None and multiplier <= 0:
        raise ValueError(f"`multiplier` must be positive, got {multiplier}")
    return _StateQuantizer(_levels(bits, uniform, thr_centered, threshold, lower_limit, upper_limit, multiplier))
