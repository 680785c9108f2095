"""The node base class and the registry of node kinds.

Nodes are frozen dataclasses: a pass changes a graph by building new nodes with
:meth:`Node.replace`, which returns the very same object when nothing changed.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, ClassVar

import numpy as np

from snngraph.ir.errors import GraphError
from snngraph.ir.types import Param, Ref, TensorType

NODE_KINDS: dict[str, type[Node]] = {}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Node:
    """One operation of the graph.

    Attributes:
        name: unique identifier within the graph.
        inputs: the values this node reads, in order.
    """

    name: str
    inputs: tuple[Ref, ...] = ()

    op: ClassVar[str] = ""
    family: ClassVar[str] = ""
    ports: ClassVar[tuple[str, ...]] = ("out",)
    arity: ClassVar[tuple[int, int | None]] = (1, 1)  # min, max (None: unbounded)
    param_aliases: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("op"):
            NODE_KINDS[cls.op] = cls

    @property
    def default_port(self) -> str:
        return self.ports[0]

    def replace(self, **changes: Any) -> Node:
        """A copy with ``changes`` applied; ``self`` when every change is a no-op."""
        if all(getattr(self, k) is v or getattr(self, k) == v for k, v in changes.items()):
            return self
        return dataclasses.replace(self, **changes)

    def fields(self) -> dict[str, Any]:
        """Every field except ``name`` and ``inputs``, in declaration order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("name", "inputs")}

    def params(self) -> dict[str, Param]:
        """The parameter fields that are set, keyed by their public name (``recurrent.weight``)."""
        return {
            self.param_aliases.get(k, k): v for k, v in self.fields().items() if isinstance(v, Param)
        }

    def attrs(self) -> dict[str, Any]:
        """The non-parameter fields (hyper-parameters)."""
        params = param_fields(type(self))
        return {k: v for k, v in self.fields().items() if k not in params}

    def check(self) -> None:
        """Check the node's own invariants; raise GraphError naming the node."""
        for key, value in self.params().items():
            if not np.all(np.isfinite(distinct(value.value))):
                raise self.error(f"parameter '{key}' has non-finite values")

    def infer(self, ins: tuple[TensorType, ...]) -> dict[str, TensorType]:
        """Output types from input types; raise GraphError naming the node on mismatch."""
        raise NotImplementedError(type(self).__name__)

    def error(self, message: str) -> GraphError:
        return GraphError(f"{self.op} '{self.name}': {message}")


def distinct(arr: np.ndarray) -> np.ndarray:
    """``arr``, or its one value when it is a broadcast of a single element (``Param.zeros_view``):
    checks of the values then cost nothing, whatever the declared shape."""
    if arr.ndim and arr.size and not any(arr.strides):
        return np.asarray(arr[(0,) * arr.ndim]).reshape(1)
    return arr


@functools.cache
def param_fields(cls: type[Node]) -> frozenset[str]:
    """Names of the fields of ``cls`` annotated as ``Param`` (set or optional)."""
    return frozenset(f.name for f in dataclasses.fields(cls) if "Param" in str(f.type))


def require_range(node: Node, key: str, low: float, high: float) -> None:
    """Raise GraphError unless every value of parameter ``key`` lies in [low, high]."""
    value = getattr(node, key)
    if value is None:
        return
    arr = distinct(value.value if isinstance(value, Param) else np.asarray(value))
    if not np.all(np.isfinite(arr)):
        raise node.error(f"{key} has non-finite values")
    if arr.size and (arr.min() < low or arr.max() > high):
        raise node.error(f"{key} must lie in [{low}, {high}], got values in [{arr.min():g}, {arr.max():g}]")


def require_positive(node: Node, key: str, strict: bool = True) -> None:
    value = getattr(node, key)
    arr = distinct(value.value if isinstance(value, Param) else np.asarray(value))
    bad = (arr <= 0) if strict else (arr < 0)
    if arr.size and (not np.all(np.isfinite(arr)) or np.any(bad)):
        raise node.error(f"{key} must be {'positive' if strict else 'non-negative'} and finite")


def broadcastable(node: Node, key: str, shape: tuple[int, ...]) -> None:
    """Raise GraphError unless parameter ``key`` broadcasts to the per-step ``shape``."""
    value = getattr(node, key)
    if value is None:
        return
    pshape = value.shape
    try:
        out = np.broadcast_shapes(pshape, shape)
    except ValueError:
        out = None
    if out != tuple(shape):
        raise node.error(f"{key} of shape {list(pshape)} does not broadcast to the per-step shape {list(shape)}")


def same_type(node: Node, ins: tuple[TensorType, ...], spike: bool | None = None) -> TensorType:
    t = ins[0]
    return TensorType(t.shape, t.dtype, t.spike if spike is None else spike)


def conv_out(size: int, kernel: int, stride: int, padding: int, dilation: int = 1, ceil: bool = False) -> int:
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    return (math.ceil(span / stride) if ceil else span // stride) + 1
