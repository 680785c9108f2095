"""Classification accuracy of spiking outputs (snnTorch's ``accuracy_rate``,
``accuracy_temporal``)."""

from __future__ import annotations

from torch import Tensor

from snngraph.functional._common import (
    check_labels,
    check_num_classes,
    check_output,
    population_steps,
)
from snngraph.functional.temporal import first_spike_time

__all__ = ["accuracy_rate", "accuracy_temporal"]


def _fraction_correct(predicted: Tensor, targets: Tensor, num_classes: int) -> float:
    labels = check_labels(targets, predicted.size(0), num_classes)
    return (labels == predicted.to(labels.device)).sum().item() / labels.numel()


def accuracy_rate(spk_out: Tensor, targets: Tensor, population_code=False, num_classes=False) -> float:
    """Fraction of samples whose most active output (or output group) is the target class.

    Args:
        spk_out: Output spikes ``(T, B, C)``.
        targets: Class indices ``(B,)``.
        population_code: Outputs are ``num_classes`` consecutive groups, counted per group.
        num_classes: Number of classes; required with ``population_code``.

    Returns:
        The accuracy in [0, 1].
    """
    spk = check_output("spk_out", spk_out)
    if population_code:
        spk = population_steps(spk, check_num_classes(True, num_classes))
    _, predicted = spk.sum(dim=0).max(1)
    return _fraction_correct(predicted, targets, spk.size(-1))


def accuracy_temporal(spk_out: Tensor, targets: Tensor) -> float:
    """Fraction of samples whose earliest-firing output is the target class.

    Outputs that never fire count as firing at the last step.

    Args:
        spk_out: Output spikes ``(T, B, C)``.
        targets: Class indices ``(B,)``.

    Returns:
        The accuracy in [0, 1].
    """
    spk = check_output("spk_out", spk_out)
    _, predicted = first_spike_time(spk.detach()).min(1)
    return _fraction_correct(predicted, targets, spk.size(-1))
