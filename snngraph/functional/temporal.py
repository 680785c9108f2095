"""Spike-time losses (snnTorch's ``mse_temporal_loss`` and ``ce_temporal_loss``).

A recording ``(T, B, C)`` is turned into each output's first spike time (step index; an output
that never fires gets ``T - 1``). Spike times are not differentiable, so the gradient uses
snnTorch's sign estimator: ``d time / d spike = -1`` at the spike step, 0 elsewhere.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from snngraph.functional._common import (
    check_labels,
    check_output,
    check_reduction,
    check_weight,
    class_weight,
    reduce,
)

__all__ = ["ce_temporal_loss", "first_spike_time", "mse_temporal_loss"]


def _first_index(fired: Tensor) -> Tensor:
    """Index of the first ``True`` along dim 0 of ``fired``; ``T - 1`` where there is none."""
    first = fired.to(torch.uint8).argmax(0)
    return torch.where(fired.any(0), first, fired.size(0) - 1)


class _FirstSpikes(torch.autograd.Function):
    """``(T, ...)`` spikes to the times of the first ``count`` spikes, ``(count, ...)``."""

    @staticmethod
    def forward(ctx, spk: Tensor, count: int) -> Tensor:
        remaining = spk != 0
        times = []
        for _ in range(count):
            time = _first_index(remaining)
            times.append(time)
            remaining.scatter_(0, time.unsqueeze(0), False)  # this spike is taken
        index = torch.stack(times)
        ctx.save_for_backward(index)
        ctx.num_steps = spk.size(0)
        return index.to(spk.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (index,) = ctx.saved_tensors
        out = grad.new_zeros((ctx.num_steps, *index.shape[1:]))
        return out.scatter_add_(0, index, -grad), None


class _Tolerance(torch.autograd.Function):
    """Times within ``tolerance`` of the target count as on target; the gradient passes."""

    @staticmethod
    def forward(ctx, time: Tensor, target: Tensor, tolerance: float) -> Tensor:
        return torch.where(torch.abs(time - target) < tolerance, target.to(time.dtype), time)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad, None, None


def first_spike_time(spk_out: Tensor, num_spikes: int = 1) -> Tensor:
    """Step of each output's first spike (or first ``num_spikes`` spikes).

    Any nonzero entry counts as a spike; an output without (enough) spikes gets ``T - 1``.

    Args:
        spk_out: Recording of shape ``(T, ...)``.
        num_spikes: How many spike times per output; 1 drops the leading dimension.

    Returns:
        ``(...)`` for one spike, ``(num_spikes, ...)`` otherwise, in ``spk_out``'s dtype, with
        the sign-estimator gradient.
    """
    if not isinstance(spk_out, Tensor) or spk_out.dim() == 0 or spk_out.size(0) == 0:
        raise ValueError("`spk_out` must be a tensor with a non-empty leading time dimension")
    if isinstance(num_spikes, bool) or not isinstance(num_spikes, int) or num_spikes < 1:
        raise ValueError(f"`num_spikes` must be a positive integer, got {num_spikes!r}")
    times = _FirstSpikes.apply(spk_out, num_spikes)
    return times[0] if num_spikes == 1 else times


def set_label_times(obj: Any, target_is_time: bool, on_target: Any, off_target: Any, tolerance: Any,
                    multi_spike: bool) -> None:
    """The target-time options as ``obj``'s attributes (read by ``mse_temporal_loss._times``), checked: with
    ``multi_spike`` and class-label targets, ``on_target`` and ``off_target`` are sequences of spike times
    of one nonzero length."""
    if multi_spike and not target_is_time:
        try:
            same = len(on_target) == len(off_target)
        except TypeError:
            raise TypeError("with multi_spike=True, `on_target` and `off_target` must be sequences of "
                            "spike times") from None
        if not same or len(on_target) == 0:
            raise ValueError("`on_target` and `off_target` must have the same, nonzero length")
    obj.target_is_time = target_is_time
    obj.on_target = on_target
    obj.off_target = off_target
    obj.tolerance = tolerance
    obj.multi_spike = multi_spike


class mse_temporal_loss:
    """Mean square error between spike times and target times, both divided by ``T``.

    Args:
        target_is_time: ``targets`` are spike times (negative counts back from ``T``) instead
            of class indices.
        on_target: Spike time of the correct class (class-index targets); a sequence of times
            with ``multi_spike``.
        off_target: Spike time of the other classes; ``-1`` is the last step.
        tolerance: Spike times closer than this to the target add no loss.
        multi_spike: Compare the first ``F`` spikes, ``F = len(on_target)`` (or
            ``targets.size(0)`` with ``target_is_time``).
        reduction: ``'mean'``, ``'sum'`` or ``'none'``.
        weight: Per-class weights, scaling every output of a sample by its target class.

    Differs from snnTorch: the default target really is "correct class at step 0, the others at
    the last step" (snnTorch's ``clamp`` turns ``off_target=-1`` into 0, so every class is
    pushed to fire at step 0); with ``multi_spike`` each output's own spikes are consumed
    (snnTorch zeroes a whole time step of every output); coinciding times add their gradients;
    any nonzero value counts as a spike at its step (snnTorch multiplies graded values into the
    time); ``targets`` is never modified in place; ``weight`` scales per sample and ``'sum'``
    sums (see ``snngraph.functional.loss``).
    """

    __name__ = "mse_temporal_loss"

    def __init__(
        self,
        target_is_time=False,
        on_target=0,
        off_target=-1,
        tolerance=0,
        multi_spike=False,
        reduction="mean",
        weight=None,
    ):
        self.reduction = check_reduction(reduction)
        self.weight = check_weight(weight)
        if target_is_time and self.weight is not None:
            raise ValueError("`weight` needs class-index targets; it cannot be used with target_is_time=True")
        set_label_times(self, target_is_time, on_target, off_target, tolerance, multi_spike)

    def _label_times(self, labels: Tensor, like: Tensor) -> Tensor:
        hot = F.one_hot(labels, like.size(-1)).bool()
        pairs = (
            zip(self.on_target, self.off_target, strict=True)
            if self.multi_spike
            else [(self.on_target, self.off_target)]
        )
        times = [
            torch.where(
                hot,
                torch.as_tensor(on, dtype=like.dtype, device=like.device),
                torch.as_tensor(off, dtype=like.dtype, device=like.device),
            )
            for on, off in pairs
        ]
        return torch.stack(times) if self.multi_spike else times[0]

    def _times(self, spk: Tensor, targets: Any) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(first spike times, target times, class labels or None)`` of ``spk`` (T, B, ..., N)."""
        steps = spk.size(0)
        labels = None
        if self.target_is_time:
            if not isinstance(targets, Tensor):
                raise TypeError("with target_is_time=True, `targets` must be a tensor of times")
            target = targets.to(device=spk.device, dtype=spk.dtype)
            count = target.size(0) if self.multi_spike else 1
        else:
            labels = check_labels(targets, spk.size(1), spk.size(-1))
            target = self._label_times(labels, spk)
            count = len(self.on_target) if self.multi_spike else 1
        target = torch.where(target < 0, steps + target, target)
        time = _FirstSpikes.apply(spk, count)
        time = time if self.multi_spike else time[0]
        if self.tolerance:
            time = _Tolerance.apply(time, target.expand_as(time), self.tolerance)
        return time, target, labels

    def __call__(self, spk_rec: Tensor, targets: Tensor) -> Tensor:
        spk = check_output("spk_rec", spk_rec)
        steps = spk.size(0)
        time, target, labels = self._times(spk, targets)
        loss = (time / steps - target / steps) ** 2
        weight = class_weight(self.weight, loss, spk.size(-1))
        if weight is not None:
            loss = loss * weight[labels].unsqueeze(-1)
        return reduce(loss, self.reduction)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"mse_temporal_loss({fields})"


class ce_temporal_loss:
    """Cross entropy of the inverted first spike times: earlier spikes mean higher scores.

    Args:
        inverse: ``'negate'`` scores ``-time``; ``'reciprocal'`` scores ``1 / (time + 1)``.
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` (as ``torch.nn.CrossEntropyLoss``).
        weight: Per-class weights (as ``torch.nn.CrossEntropyLoss``: a weighted mean).
    """

    __name__ = "ce_temporal_loss"

    def __init__(self, inverse="negate", reduction="mean", weight=None):
        if inverse not in ("negate", "reciprocal"):
            raise ValueError(f"`inverse` must be 'negate' or 'reciprocal', got {inverse!r}")
        self.inverse = inverse
        self.reduction = check_reduction(reduction)
        self.weight = check_weight(weight)

    def __call__(self, spk_rec: Tensor, targets: Tensor) -> Tensor:
        spk = check_output("spk_rec", spk_rec)
        labels = check_labels(targets, spk.size(1), spk.size(-1))
        time = _FirstSpikes.apply(spk, 1)[0]
        score = -time if self.inverse == "negate" else 1 / (time + 1)
        weight = class_weight(self.weight, score, spk.size(-1))
        return F.cross_entropy(score, labels, weight=weight, reduction=self.reduction)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"ce_temporal_loss({fields})"
