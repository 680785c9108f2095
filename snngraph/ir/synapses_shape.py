"""Shape synapses: ``transpose``, ``permute``, ``reshape`` and ``slice`` of the per-step value.

Dims are per-step dims, as for ``flatten`` and ``concat``: the batch (and time) are implicit, so 0
is the first feature dim and negative dims count from the end; ``torch``'s ``x.transpose(1, 2)`` on
a batched ``x`` is ``transpose(0, 1)`` here. Nothing can move the batch."""

from __future__ import annotations

import math
from typing import ClassVar

from snngraph.ir.synapses import Synapse, frozen
from snngraph.ir.types import TensorType, check_shape


@frozen
class Transpose(Synapse):
    """Swaps per-step dims ``dim0`` and ``dim1`` (``torch.transpose``)."""

    dim0: int
    dim1: int
    op: ClassVar[str] = "transpose"

    def infer(self, ins):
        (t,) = ins
        n = len(t.shape)
        if not (-n <= self.dim0 < n and -n <= self.dim1 < n):
            raise self.error(f"dims {self.dim0}, {self.dim1} out of range for per-step shape {list(t.shape)}")
        shape = list(t.shape)
        a, b = self.dim0 % n, self.dim1 % n
        shape[a], shape[b] = shape[b], shape[a]
        return {"out": TensorType(tuple(shape), t.dtype, t.spike)}


@frozen
class Permute(Synapse):
    """Reorders the per-step dims: output dim ``i`` is input dim ``dims[i]`` (``torch.permute``)."""

    dims: tuple[int, ...]
    op: ClassVar[str] = "permute"

    def infer(self, ins):
        (t,) = ins
        if sorted(self.dims) != list(range(len(t.shape))):
            raise self.error(f"dims {list(self.dims)} must be a permutation of 0..{len(t.shape) - 1} for "
                             f"per-step shape {list(t.shape)}")
        return {"out": TensorType(tuple(t.shape[d] for d in self.dims), t.dtype, t.spike)}


@frozen
class Reshape(Synapse):
    """The per-step value (row-major) in per-step ``shape``, same element count (``torch.reshape``)."""

    shape: tuple[int, ...]
    op: ClassVar[str] = "reshape"

    def check(self):
        check_shape(self.shape, f"reshape '{self.name}'")

    def infer(self, ins):
        (t,) = ins
        if math.prod(self.shape) != math.prod(t.shape):
            raise self.error(f"cannot reshape per-step shape {list(t.shape)} ({math.prod(t.shape)} elements) to "
                             f"{list(self.shape)} ({math.prod(self.shape)} elements)")
        return {"out": TensorType(self.shape, t.dtype, t.spike)}


@frozen
class Slice(Synapse):
    """Entries ``start:stop`` of per-step dim ``dim`` (``torch.narrow``; ``x.chunk`` is one slice per
    chunk). ``0 <= start < stop <= size``."""

    dim: int
    start: int
    stop: int
    op: ClassVar[str] = "slice"

    def infer(self, ins):
        (t,) = ins
        n = len(t.shape)
        if not -n <= self.dim < n:
            raise self.error(f"dim {self.dim} out of range for per-step shape {list(t.shape)}")
        size = t.shape[self.dim % n]
        if not 0 <= self.start < self.stop <= size:
            raise self.error(f"start {self.start}, stop {self.stop} must satisfy 0 <= start < stop <= {size} "
                             f"(dim {self.dim} of per-step shape {list(t.shape)})")
        shape = list(t.shape)
        shape[self.dim % n] = self.stop - self.start
        return {"out": TensorType(tuple(shape), t.dtype, t.spike)}
