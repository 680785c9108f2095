"""Binary synapses between two values: element-wise ``mul`` and ``sub`` (same shapes, no
broadcasting) and batched ``matmul`` of per-step matrices ``(..., n, k) @ (..., k, m)``."""

from __future__ import annotations

from typing import ClassVar

from snngraph.ir.synapses import Synapse, frozen
from snngraph.ir.types import TensorType


@frozen
class _Elementwise(Synapse):
    arity: ClassVar[tuple[int, int | None]] = (2, 2)

    def infer(self, ins):
        a, b = ins
        if a.shape != b.shape:
            raise self.error(f"shapes differ: {list(a.shape)} and {list(b.shape)} (no broadcasting)")
        return {"out": TensorType(a.shape, a.dtype, self.op == "mul" and a.spike and b.spike)}


@frozen
class Mul(_Elementwise):
    """``a * b`` of two values of one shape (gating)."""

    op: ClassVar[str] = "mul"


@frozen
class Sub(_Elementwise):
    """``a - b`` of two values of one shape."""

    op: ClassVar[str] = "sub"


@frozen
class MatMul(Synapse):
    """``torch.matmul(a, b)`` of per-step values ``(..., n, k)`` and ``(..., k, m)`` (leading dims equal)."""

    op: ClassVar[str] = "matmul"
    arity: ClassVar[tuple[int, int | None]] = (2, 2)

    def infer(self, ins):
        a, b = ins
        if len(a.shape) < 2 or len(a.shape) != len(b.shape) or a.shape[:-2] != b.shape[:-2] or \
                a.shape[-1] != b.shape[-2]:
            raise self.error(f"expects per-step shapes (..., n, k) and (..., k, m) with equal leading dims, got "
                             f"{list(a.shape)} and {list(b.shape)}")
        return {"out": TensorType((*a.shape[:-1], b.shape[-1]), a.dtype)}
