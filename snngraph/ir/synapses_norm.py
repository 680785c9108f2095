"""Normalisation synapses computed per sample: ``layer_norm`` (over the last per-step dims) and
``group_norm`` (over groups of channels, dim 0 of the per-step value). Unlike batch norm they have
no running statistics and compute the same in training and evaluation."""

from __future__ import annotations

import math
from typing import ClassVar

from snngraph.ir.node import same_type
from snngraph.ir.synapses import Synapse, frozen
from snngraph.ir.types import Param


def _check_eps(node: Synapse) -> None:
    if not (math.isfinite(node.eps) and node.eps > 0):
        raise node.error(f"eps must be positive and finite, got {node.eps!r}")


@frozen
class LayerNorm(Synapse):
    """``torch.nn.LayerNorm(normalized_shape)``: each sample normalised over its last
    ``len(normalized_shape)`` per-step dims, then scaled by ``weight`` and shifted by ``bias``."""

    normalized_shape: tuple[int, ...]
    eps: float = 1e-5
    weight: Param | None = None
    bias: Param | None = None
    op: ClassVar[str] = "layer_norm"

    def check(self):
        super().check()
        if not self.normalized_shape or min(self.normalized_shape) < 1:
            raise self.error(f"normalized_shape must be one or more positive ints, got {list(self.normalized_shape)}")
        _check_eps(self)
        for key in ("weight", "bias"):
            p = getattr(self, key)
            if p is not None and p.shape != self.normalized_shape:
                raise self.error(f"{key} must have shape {list(self.normalized_shape)}, got {list(p.shape)}")

    def infer(self, ins):
        (t,) = ins
        n = len(self.normalized_shape)
        if len(t.shape) < n or t.shape[len(t.shape) - n:] != self.normalized_shape:
            raise self.error(f"normalized_shape {list(self.normalized_shape)} must be the last dims of the per-step "
                             f"shape, got {list(t.shape)}")
        return {"out": same_type(self, ins, spike=False)}


@frozen
class GroupNorm(Synapse):
    """``torch.nn.GroupNorm(num_groups, num_channels)`` on (C, ...) per-step values: each sample's
    channels split into ``num_groups`` groups, each normalised, then a per-channel affine."""

    num_groups: int
    num_channels: int
    eps: float = 1e-5
    weight: Param | None = None
    bias: Param | None = None
    op: ClassVar[str] = "group_norm"

    def check(self):
        super().check()
        if self.num_groups < 1 or self.num_channels < 1 or self.num_channels % self.num_groups:
            raise self.error(f"num_groups={self.num_groups} must be positive and divide "
                             f"num_channels={self.num_channels}")
        _check_eps(self)
        for key in ("weight", "bias"):
            p = getattr(self, key)
            if p is not None and p.shape != (self.num_channels,):
                raise self.error(f"{key} must have shape [{self.num_channels}], got {list(p.shape)}")

    def infer(self, ins):
        (t,) = ins
        if t.shape[0] != self.num_channels:
            raise self.error(f"expects {self.num_channels} channels (dim 0), got per-step shape {list(t.shape)}")
        return {"out": same_type(self, ins, spike=False)}
