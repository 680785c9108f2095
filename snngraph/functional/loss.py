"""Spike-count, spike-rate and membrane losses with snnTorch 1.0.0's names and arguments.

Each loss is a callable class: ``loss_fn = ce_rate_loss(); loss = loss_fn(spk_out, targets)``
with ``spk_out`` (or ``mem_out``) recorded time-first, ``(T, B, C)``, and ``targets`` class
indices ``(B,)``. Values and gradients match snnTorch's; the places where snnTorch is wrong are
listed under "Differs from snnTorch". The temporal losses live in
``snngraph.functional.temporal`` and are re-exported here.

Common to all: the loss is a 0-d tensor (snnTorch returns shape ``(1,)`` from
``ce_rate_loss`` and ``mse_membrane_loss``) in the input's dtype (snnTorch accumulates those two
in float32); with ``weight``, ``reduction='sum'`` sums (snnTorch returns the unreduced loss) and
``'mean'`` is the plain mean of the weighted per-sample losses (as snnTorch).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from snngraph.functional._common import (
    check_labels,
    check_num_classes,
    check_output,
    check_reduction,
    check_weight,
    class_weight,
    population_steps,
    reduce,
)
from snngraph.functional.spike_time import SpikeTime  # snnTorch keeps it in functional.loss
from snngraph.functional.temporal import ce_temporal_loss, mse_temporal_loss

__all__ = [
    "SpikeTime",
    "ce_count_loss",
    "ce_max_membrane_loss",
    "ce_rate_loss",
    "ce_temporal_loss",
    "mse_count_loss",
    "mse_membrane_loss",
    "mse_temporal_loss",
]


class _Loss:
    """Holds ``reduction`` and per-class ``weight``; subclasses define ``__call__``."""

    __name__ = "loss"

    def __init__(self, reduction: str = "mean", weight: Tensor | None = None) -> None:
        self.reduction = check_reduction(reduction)
        self.weight = check_weight(weight)

    def _weighted(self, loss: Tensor, labels: Tensor, num_classes: int) -> Tensor:
        """Scale each sample's loss (batch in dim 0) by the weight of its target class."""
        weight = class_weight(self.weight, loss, num_classes)
        if weight is None:
            return loss
        return loss * weight[labels].reshape(-1, *([1] * (loss.dim() - 1)))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "__name__")
        return f"{type(self).__name__}({fields})"


def _nll(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross entropy of ``logits`` (..., B, K) against ``labels`` (B,), unreduced: (..., B)."""
    log_p = F.log_softmax(logits, dim=-1)
    index = labels.expand(log_p.shape[:-1]).unsqueeze(-1)
    return -log_p.gather(-1, index).squeeze(-1)


class ce_rate_loss(_Loss):
    """Cross entropy of the output spikes at every step, averaged over the steps.

    Args:
        population_code: Outputs are ``num_classes`` consecutive groups whose spike counts
            stand for the classes.
        num_classes: Number of classes; required with ``population_code``.
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` over the batch.
        weight: Per-class weights of the cross entropy.

    Differs from snnTorch: ``population_code=True`` sums each group per step before the cross
    entropy (snnTorch ignores the population code here and fails without ``weight``).
    """

    __name__ = "ce_rate_loss"

    def __init__(self, population_code=False, num_classes=False, reduction="mean", weight=None):
        super().__init__(reduction, weight)
        self.population_code = population_code
        self.num_classes = check_num_classes(population_code, num_classes) or num_classes

    def __call__(self, spk_out: Tensor, targets: Tensor) -> Tensor:
        spk = check_output("spk_out", spk_out)
        if self.population_code:
            spk = population_steps(spk, self.num_classes)
        labels = check_labels(targets, spk.size(1), spk.size(-1))
        per_sample = self._weighted(_nll(spk, labels).transpose(0, 1), labels, spk.size(-1))
        return reduce(per_sample.sum(-1) / spk.size(0), self.reduction)


class ce_count_loss(_Loss):
    """Cross entropy of the spike counts (summed over time) of the outputs.

    Args:
        population_code: Outputs are ``num_classes`` consecutive groups whose spike counts
            stand for the classes.
        num_classes: Number of classes; required with ``population_code``.
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` over the batch.
        weight: Per-class weights of the cross entropy.
    """

    __name__ = "ce_count_loss"

    def __init__(self, population_code=False, num_classes=False, reduction="mean", weight=None):
        super().__init__(reduction, weight)
        self.population_code = population_code
        self.num_classes = check_num_classes(population_code, num_classes) or num_classes

    def __call__(self, spk_out: Tensor, targets: Tensor) -> Tensor:
        spk = check_output("spk_out", spk_out)
        if self.population_code:
            spk = population_steps(spk, self.num_classes)
        count = spk.sum(0)
        labels = check_labels(targets, count.size(0), count.size(-1))
        return reduce(self._weighted(_nll(count, labels), labels, count.size(-1)), self.reduction)


class ce_max_membrane_loss(_Loss):
    """Cross entropy of each output's maximum membrane potential over time.

    Args:
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` over the batch.
        weight: Per-class weights of the cross entropy.
    """

    __name__ = "ce_max_membrane_loss"

    def __call__(self, mem_out: Tensor, targets: Tensor) -> Tensor:
        mem = check_output("mem_out", mem_out)
        peak, _ = torch.max(mem, 0)
        labels = check_labels(targets, peak.size(0), peak.size(-1))
        return reduce(self._weighted(_nll(peak, labels), labels, peak.size(-1)), self.reduction)


def _count_target(num_steps: int, rate: float, scale: float) -> int:
    """``int(num_steps * rate * scale)``, without losing a count to rounding."""
    return math.floor(round(num_steps * rate * scale, 9))


class mse_count_loss(_Loss):
    """Mean square error between spike counts and target counts, divided by the steps.

    The target count is ``int(T * correct_rate)`` for the correct class and
    ``int(T * incorrect_rate)`` for the others (times the group size with a population code).

    Args:
        correct_rate: Target firing rate of the correct class, in [0, 1].
        incorrect_rate: Target firing rate of the other classes, in [0, 1].
        population_code: Outputs are ``num_classes`` consecutive groups.
        num_classes: Number of classes; required with ``population_code``.
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` (``(B, C)``).
        weight: Per-class weights, applied to every output of a sample by its target class.

    Differs from snnTorch: with ``weight``, each sample's row is scaled by its class weight
    (snnTorch multiplies ``(B, C)`` by ``(B,)``, which fails unless B == C and then scales
    columns); target counts are not lost to rounding (snnTorch: ``int(100 * 0.29) == 28``).
    """

    __name__ = "mse_count_loss"

    def __init__(
        self, correct_rate=1, incorrect_rate=0, population_code=False, num_classes=False, reduction="mean", weight=None
    ):
        super().__init__(reduction, weight)
        for name, value in (("correct_rate", correct_rate), ("incorrect_rate", incorrect_rate)):
            if not 0 <= value <= 1:
                raise ValueError(f"`{name}` must be in [0, 1], got {value}")
        self.correct_rate = correct_rate
        self.incorrect_rate = incorrect_rate
        self.population_code = population_code
        self.num_classes = check_num_classes(population_code, num_classes) or num_classes

    def __call__(self, spk_out: Tensor, targets: Tensor) -> Tensor:
        spk = check_output("spk_out", spk_out)
        steps, num_outputs = spk.size(0), spk.size(-1)
        scale = 1.0
        if self.population_code:
            spk = population_steps(spk, self.num_classes)
            scale = num_outputs / self.num_classes
        count = spk.sum(0)
        labels = check_labels(targets, count.size(0), count.size(-1))
        on = _count_target(steps, self.correct_rate, scale)
        off = _count_target(steps, self.incorrect_rate, scale)
        hot = F.one_hot(labels, count.size(-1)).bool()
        target = torch.where(hot, count.new_tensor(on), count.new_tensor(off))
        loss = self._weighted((count - target) ** 2, labels, count.size(-1)) / steps
        return reduce(loss, self.reduction)


class mse_membrane_loss(_Loss):
    """Mean square error between the membrane potential and a target, averaged over steps.

    Args:
        time_var_targets: ``targets`` is a ``(T, B, C)`` tensor of target potentials instead of
            class indices (then ``on_target`` / ``off_target`` are unused).
        on_target: Target potential of the correct class.
        off_target: Target potential of the other classes.
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` (``(B, C)``).
        weight: Per-class weights, applied to every output of a sample by its target class
            (class-index targets only).

    Differs from snnTorch: ``time_var_targets=True`` uses the given ``(T, B, C)`` targets
    (snnTorch one-hot encodes ``targets`` anyway and then indexes the batch by time step);
    a negative ``off_target`` is kept (snnTorch's target clamps it to 0); ``weight`` scales each
    sample's row (snnTorch multiplies ``(B, C)`` by ``(B,)``); the target keeps the input's dtype.
    """

    __name__ = "mse_membrane_loss"

    def __init__(self, time_var_targets=False, on_target=1, off_target=0, reduction="mean", weight=None):
        super().__init__(reduction, weight)
        if time_var_targets and self.weight is not None:
            raise ValueError("`weight` needs class-index targets; it cannot be used with time_var_targets=True")
        self.time_var_targets = time_var_targets
        self.on_target = on_target
        self.off_target = off_target

    def __call__(self, mem_out: Tensor, targets: Tensor) -> Tensor:
        mem = check_output("mem_out", mem_out)
        if self.time_var_targets:
            if not isinstance(targets, Tensor) or targets.shape != mem.shape:
                raise ValueError(
                    f"with time_var_targets=True, `targets` must be a tensor shaped like mem_out {tuple(mem.shape)}"
                )
            target, labels = targets.to(mem.dtype), None
        else:
            labels = check_labels(targets, mem.size(1), mem.size(-1))
            hot = F.one_hot(labels, mem.size(-1)).bool()
            on, off = (
                torch.as_tensor(v, dtype=mem.dtype, device=mem.device) for v in (self.on_target, self.off_target)
            )
            target = torch.where(hot, on, off)
        loss = ((mem - target) ** 2).sum(0) / mem.size(0)
        if labels is not None:
            loss = self._weighted(loss, labels, mem.size(-1))
        return reduce(loss, self.reduction)
