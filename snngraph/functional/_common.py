"""Argument checks and population coding shared by the losses and accuracy functions."""

from __future__ import annotations

import operator

import torch
from torch import Tensor

REDUCTIONS = ("mean", "sum", "none")


def check_output(name: str, value: object) -> Tensor:
    """A recorded output of shape ``(T, B, C)`` with ``T >= 1`` and ``B >= 1``."""
    if not isinstance(value, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() != 3:
        raise ValueError(f"`{name}` must have shape (num_steps, batch, outputs), got {tuple(value.shape)}")
    if value.size(0) == 0 or value.size(1) == 0:
        raise ValueError(f"`{name}` must have at least one step and one sample, got {tuple(value.shape)}")
    return value


def check_labels(targets: object, batch_size: int, num_classes: int, name: str = "targets") -> Tensor:
    """Class indices of shape ``(batch_size,)`` in ``[0, num_classes)``, as int64."""
    if not isinstance(targets, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor of class indices, got {type(targets).__name__}")
    if targets.shape != (batch_size,):
        raise ValueError(f"`{name}` must have shape ({batch_size},) to match the batch, got {tuple(targets.shape)}")
    if targets.is_floating_point() and not torch.equal(targets, targets.round()):
        raise ValueError(f"`{name}` must hold whole class indices")
    if targets.min() < 0 or targets.max() >= num_classes:
        raise ValueError(
            f"`{name}` must lie in [0, {num_classes - 1}], got [{targets.min().item()}, {targets.max().item()}]"
        )
    return targets.long()


def check_reduction(reduction: object) -> str:
    """One of ``'mean'``, ``'sum'``, ``'none'``."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction  # type: ignore[return-value]


def check_weight(weight: object) -> Tensor | None:
    """``None`` or a 1-D tensor of per-class weights."""
    if weight is None:
        return None
    if not isinstance(weight, Tensor) or weight.dim() != 1:
        raise TypeError("`weight` must be None or a 1-D torch.Tensor of per-class weights")
    return weight


def class_weight(weight: Tensor | None, like: Tensor, num_classes: int) -> Tensor | None:
    """``weight`` on ``like``'s device and dtype, checked against the number of classes."""
    if weight is None:
        return None
    if weight.numel() != num_classes:
        raise ValueError(f"`weight` must have one entry per class ({num_classes}), got {weight.numel()}")
    return weight.to(device=like.device, dtype=like.dtype)


def check_num_classes(population_code: bool, num_classes: object) -> int:
    """The number of classes of a population code (0 when there is none)."""
    if not population_code:
        return 0
    if num_classes is False or num_classes is None:
        raise ValueError("`num_classes` must be given when population_code=True")
    try:
        count = operator.index(num_classes)
    except TypeError:
        raise TypeError(f"`num_classes` must be an integer, got {num_classes!r}") from None
    if count < 1:
        raise ValueError(f"`num_classes` must be positive, got {count}")
    return count


def population_steps(spk_out: Tensor, num_classes: int) -> Tensor:
    """Per-step spike counts of each class's group of outputs: ``(T, B, C)`` to ``(T, B, K)``.

    The outputs are split into ``num_classes`` consecutive groups of equal size.
    """
    num_outputs = spk_out.size(-1)
    if num_outputs % num_classes:
        raise ValueError(
            f"num_classes ({num_classes}) must divide the number of outputs ({num_outputs}) for a population code"
        )
    steps, batch = spk_out.shape[:2]
    return spk_out.reshape(steps, batch, num_classes, num_outputs // num_classes).sum(-1)


def reduce(loss: Tensor, reduction: str) -> Tensor:
    """Apply a ``'mean'``, ``'sum'`` or ``'none'`` reduction over all elements."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss
