"""Value types and parameters of the IR: plain data, no torch.

Every value flowing along an edge has a :class:`TensorType`: its per-time-step shape (batch
and time are implicit), its dtype and whether it carries spikes. Node parameters are
:class:`Param` records holding a read-only numpy array and a learnable flag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from snngraph.ir.errors import GraphError

DTYPES = {"float32": "f32", "float64": "f64", "float16": "f16", "bfloat16": "bf16"}
DTYPE_OF_SHORT = {v: k for k, v in DTYPES.items()}
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # use with fullmatch: "$" would accept a trailing newline


@dataclass(frozen=True, slots=True)
class TensorType:
    """The type of one value at one time step: ``shape`` excludes time and batch."""

    shape: tuple[int, ...]
    dtype: str = "float32"
    spike: bool = False

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __str__(self) -> str:
        dims = ",".join(str(d) for d in self.shape)
        text = f"{DTYPES[self.dtype]}[{dims}]"
        return f"spike {text}" if self.spike else text


@dataclass(frozen=True, slots=True)
class Ref:
    """A value: output ``port`` of node ``node``. Printed ``%node`` or ``%node.port``."""

    node: str
    port: str

    def text(self, default_port: str) -> str:
        return f"%{self.node}" if self.port == default_port else f"%{self.node}.{self.port}"


class Param:
    """A parameter value: an immutable float array plus whether training may change it."""

    __slots__ = ("value", "learnable")

    def __init__(self, value, learnable: bool = False, dtype: str | None = None):
        arr = np.array(value, dtype=dtype or _float_dtype(value), copy=True)
        arr.flags.writeable = False
        object.__setattr__(self, "value", arr)
        object.__setattr__(self, "learnable", bool(learnable))

    def __setattr__(self, key, value):
        raise AttributeError("Param is immutable")

    def __reduce__(self):
        return (Param, (self.value, self.learnable, str(self.value.dtype)))
    @classmethod
    def filled_view(cls, shape: tuple[int, ...], fill: float, dtype: str, learnable: bool = False) -> Param:
        """A parameter of ``shape`` whose values are all ``fill``, backed by a single element (a read-only
        broadcast view): lets a reader check declared shapes before it allocates them."""
        p = object.__new__(cls)
        object.__setattr__(p, "value", np.broadcast_to(np.array(fill, dtype), shape))
        object.__setattr__(p, "learnable", bool(learnable))
        return p

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape)

    @property
    def is_scalar(self) -> bool:
        return self.value.ndim == 0

    @property
    def dtype(self) -> str:
        return str(self.value.dtype)

    def item(self) -> float:
        return float(self.value)

    def with_value(self, value) -> Param:
        return Param(value, self.learnable, self.dtype)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Param):
            return NotImplemented
        return (
            self.learnable == other.learnable
            and self.value.dtype == other.value.dtype
            and self.value.shape == other.value.shape
            and bool(np.array_equal(self.value, other.value, equal_nan=True))
        )

    def __hash__(self) -> int:
        return hash((self.value.shape, self.learnable))

    def __repr__(self) -> str:
        kind = "learnable " if self.learnable else ""
        if self.is_scalar:
            return f"Param({kind}{self.value.item()!r})"
        return f"Param({kind}{self.dtype}{list(self.shape)})"


def _float_dtype(value) -> str:
    dtype = getattr(value, "dtype", None)
    name = str(dtype).replace("torch.", "") if dtype is not None else ""
    return name if name in ("float32", "float64") else "float32"


def check_name(name: object, what: str = "node") -> str:
    """Return ``name`` if it is a valid identifier (the whole string: no trailing newline), else
    raise GraphError naming ``what``."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise GraphError(f"invalid {what} name {name!r}: use letters, digits and '_' (not starting with a digit)")
    return name


def check_shape(shape: object, what: str) -> tuple[int, ...]:
    """Normalise a user shape to a tuple of positive ints, or raise GraphError naming ``what``."""
    if isinstance(shape, int):
        shape = (shape,)
    try:
        dims = tuple(shape)  # type: ignore[arg-type]
    except TypeError:
        raise GraphError(f"{what}: shape must be a tuple of positive ints, got {shape!r}") from None
    if not dims or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in dims):
        raise GraphError(f"{what}: shape must be a non-empty tuple of positive ints, got {shape!r}")
    if int(np.prod(dims, dtype=np.float64)) > 2**31:
        raise GraphError(f"{what}: shape {dims} is too large")
    return tuple(int(d) for d in dims)
