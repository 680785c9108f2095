"""Building nodes from untrusted field values (text parser, file loader): every field is
checked against the node kind's declared type, so a hostile file cannot smuggle objects in."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np

from snngraph.ir.errors import GraphError
from snngraph.ir.init import kaiming_weight
from snngraph.ir.node import NODE_KINDS, Node
from snngraph.ir.surrogate import Surrogate, checked_surrogate
from snngraph.ir.types import DTYPES, Param, Ref, check_name

_INT_TUPLE = "tuple[int, ...]"
_FLOAT_TUPLE = "tuple[float, ...]"
MAX_LEVELS = 2**16  # a state quantiser's levels (snnTorch's state_quant: 2 ** num_bits)
_F32_MAX = float(np.finfo(np.float32).max)


def _finite(value: Any) -> bool:
    """Whether a real number is finite (an int too large for a float is not)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


@functools.cache
def field_types(cls: type[Node]) -> dict[str, tuple[str, bool]]:
    """Field name -> (annotation, required) for every field but name and inputs."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.name in ("name", "inputs"):
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        out[f.name] = (str(f.type), required)
    return out


def _coerce(annotation: str, value: Any, where: str, field: str) -> Any:
    """``value`` checked against the field's ``annotation``; ``where`` names it in errors."""
    optional = annotation.endswith("| None")
    base = annotation.replace("| None", "").strip()
    if value is None:
        if optional:
            return None
        raise GraphError(f"{where}: must not be none")
    checks = {
        "int": lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float, np.floating)) and not isinstance(v, bool) and _finite(v),
        "bool": lambda v: isinstance(v, bool),
        "str": lambda v: isinstance(v, str) and len(v) < 256,
        _INT_TUPLE: lambda v: isinstance(v, (tuple, list)) and len(v) <= 8 and all(
            isinstance(i, int) and not isinstance(i, bool) for i in v),
        _FLOAT_TUPLE: lambda v: isinstance(v, (tuple, list)) and len(v) <= MAX_LEVELS and all(
            isinstance(i, (int, float)) and not isinstance(i, bool) and _finite(i) for i in v),
        "Param": lambda v: isinstance(v, Param),
        "Surrogate": lambda v: isinstance(v, Surrogate),
    }
    if base == "Param" and checks["float"](value):
        if abs(float(value)) > _F32_MAX:
            raise GraphError(f"{where}: {value!r:.80} is beyond the float32 range")
        value = Param(value, False, "float32")  # a bare float32 scalar in the text form
    if base not in checks:
        raise GraphError(f"{where}: unsupported field type {annotation}")
    if not checks[base](value):
        raise GraphError(f"{where}: expected {base}, got {value!r:.80}")
    if base == "float":
        return float(value)
    if base == "int":
        return int(value)
    if base == _INT_TUPLE:
        return tuple(int(i) for i in value)
    if base == _FLOAT_TUPLE:
        return tuple(float(i) for i in value)
    if base == "Surrogate":
        return checked_surrogate(value, where)
    if base == "str" and field == "dtype" and value not in DTYPES:
        raise GraphError(f"{where}: unknown dtype {value!r}")
    return value


def build_node(op: str, name: str, inputs: tuple[Ref, ...], fields: dict[str, Any], where: str) -> Node:
    """Construct a node of kind ``op`` from checked field values; raise GraphError naming ``where``."""
    cls = NODE_KINDS.get(op) if isinstance(op, str) else None
    if cls is None:
        raise GraphError(f"{where}: unknown op {op!r}: not a node kind nor a registered neuron model "
                         "(sg.neuron_models(); declare it with sg.neuron_model before loading)")
    check_name(name)
    types = field_types(cls)
    unknown = set(fields) - set(types)
    if unknown:
        raise GraphError(f"{where}: {op} has no field(s) {sorted(unknown)}")
    missing = [k for k, (_, required) in types.items() if required and k not in fields]
    if missing:
        raise GraphError(f"{where}: {op} '{name}' is missing {missing}")
    values = {k: _coerce(types[k][0], v, f"{where}: {op} '{name}' field {k}", k) for k, v in fields.items()}
    try:
        return cls(name=name, inputs=tuple(inputs), **values)
    except TypeError as e:
        raise GraphError(f"{where}: {op} '{name}': {e}") from None


def placeholder_fill(node_op: str, field: str, shape: tuple[int, ...] = (2, 2)) -> float | None:
    """The value of a parameter the text left out: ``None`` for torch-like init (weights), 1 for batch-norm
    scales and variances, a neuron model's declared default (1 for a required positive one, such as
    Lapicque's R and C), 0 otherwise (biases included)."""
    from snngraph.ir.model import MODELS

    spec = MODELS[node_op].params.get(field) if node_op in MODELS else None
    recurrent = field == "recurrent_weight" and spec is None and node_op in MODELS
    weights = ("linear", "conv1d", "conv2d", "conv_transpose2d")
    if (recurrent or (field == "weight" and node_op in weights)) and len(shape) >= 2:
        return None  # (a weight of another rank is refused by the node's type check)
    if spec is not None and spec.default is not None:
        return spec.default
    if (spec is not None and spec.strict_low) or (node_op, field) in (("batch_norm", "weight"),
                                                                      ("batch_norm", "running_var")):
        return 1.0
    return 0.0


def placeholder(node_op: str, field: str, shape: tuple[int, ...], dtype: str, learnable: bool) -> Param:
    """A parameter whose values the text left out, filled as :func:`placeholder_fill` says."""
    fill = placeholder_fill(node_op, field, shape)
    value = kaiming_weight(shape, f"{node_op} {field}") if fill is None else np.full(shape, fill)
    return Param(value, learnable, dtype)
