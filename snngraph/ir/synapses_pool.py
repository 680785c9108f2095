"""Adaptive average pooling synapses: ``adaptive_avg_pool1d/2d`` of (C, L) / (C, H, W) per-step values
to a fixed ``output_size`` (``torch.nn.AdaptiveAvgPool1d/2d``)."""

from __future__ import annotations

from typing import ClassVar

from snngraph.ir.synapses import Synapse, frozen
from snngraph.ir.types import TensorType


@frozen
class _AdaptiveAvgPool(Synapse):
    output_size: tuple[int, ...]
    dims: ClassVar[int] = 0

    def check(self):
        if len(self.output_size) != self.dims or min(self.output_size) < 1:
            raise self.error(f"output_size must be {self.dims} positive ints, got {list(self.output_size)}")

    def infer(self, ins):
        (t,) = ins
        if len(t.shape) != self.dims + 1:
            raise self.error(f"expects (C, {', '.join('L' * self.dims)}) per step, got {list(t.shape)}")
        return {"out": TensorType((t.shape[0], *self.output_size), t.dtype)}


@frozen
class AdaptiveAvgPool1d(_AdaptiveAvgPool):
    """``torch.nn.AdaptiveAvgPool1d(output_size)`` per step."""

    op: ClassVar[str] = "adaptive_avg_pool1d"
    dims: ClassVar[int] = 1


@frozen
class AdaptiveAvgPool2d(_AdaptiveAvgPool):
    """``torch.nn.AdaptiveAvgPool2d(output_size)`` per step."""

    op: ClassVar[str] = "adaptive_avg_pool2d"
    dims: ClassVar[int] = 2
