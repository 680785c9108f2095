"""Builder methods for binary ops between two values (``mul``, ``sub``, ``matmul``) and adaptive average
pooling. Mixed into ``Graph`` by :class:`~snngraph.ir.builder.GraphBuilder`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from snngraph.ir import synapses_math as M
from snngraph.ir import synapses_pool as P
from snngraph.ir.errors import GraphError

if TYPE_CHECKING:
    from snngraph.ir.graph import Handle


class MathBuilder:
    """Binary-op and adaptive-pooling builders (the graph state lives in ``Graph``)."""

    def _binary(self, cls: type, a: Any, b: Any, name: str | None) -> Handle:
        name = self._name(name, cls.op)
        refs = tuple(self._ref(v, f"{cls.op} '{name}'") for v in (a, b))
        return self._add(cls(name=name, inputs=refs))

    def mul(self, input: Any, other: Any, name: str | None = None) -> Handle:  # noqa: A002 (torch's name)
        """``input * other`` of two values of one per-step shape (no broadcasting)."""
        return self._binary(M.Mul, input, other, name)

    def sub(self, input: Any, other: Any, name: str | None = None) -> Handle:  # noqa: A002 (torch's name)
        """``input - other`` of two values of one per-step shape (no broadcasting)."""
        return self._binary(M.Sub, input, other, name)

    def matmul(self, input: Any, other: Any, name: str | None = None) -> Handle:  # noqa: A002 (torch's name)
        """``torch.matmul`` of per-step values ``(..., n, k)`` and ``(..., k, m)`` with equal leading dims."""
        return self._binary(M.MatMul, input, other, name)

    def _adaptive(self, cls: type, x: Any, output_size: Any, name: str | None) -> Handle:
        from snngraph.ir.builder import _tuple

        name = self._name(name, cls.op)
        where = f"{cls.op} '{name}'"
        ref, t = self._in_type(x, where)
        if output_size is None or isinstance(output_size, (tuple, list)) and None in output_size:
            raise GraphError(f"{where}: output_size None (keep the input size) is not supported; give the sizes")
        size = _tuple(output_size, cls.dims, f"{where} output_size")
        return self._add(cls(name=name, inputs=(ref,), output_size=size))

    def adaptive_avg_pool1d(self, x: Any, output_size: Any, name: str | None = None) -> Handle:
        """``torch.nn.AdaptiveAvgPool1d(output_size)`` on (C, L) per-step values."""
        return self._adaptive(P.AdaptiveAvgPool1d, x, output_size, name)

    def adaptive_avg_pool2d(self, x: Any, output_size: Any, name: str | None = None) -> Handle:
        """``torch.nn.AdaptiveAvgPool2d(output_size)`` on (C, H, W) per-step values."""
        return self._adaptive(P.AdaptiveAvgPool2d, x, output_size, name)
