r"""Multi-projection models (``cell="heads"``): several named linear projections of the input.

A heads model holds the weights of named ``torch.nn.Linear`` projections of its raw input (snnTorch
``AssociativeLeaky``'s ``to_v``, ``to_k``, ``to_alpha``, ``to_q``; the queries, keys and values of
a linear-attention neuron) as node parameters named as in the module's ``state_dict``
(``to_v.weight``, ``to_v.bias``). Its step reads them with ``ops.project(x, head)``
(:math:`W_h x + b_h`, ``features(head)`` values per sample); ``p`` holds the sizes (*dims*) the
weights imply, as ints, so the step can ``ops.reshape`` / ``ops.outer`` / ``ops.matmul`` with them.

The declaration (:class:`Heads`) gives every head's output dims, the state's per-step shape and
the output's, in dims: each dim is the output size of a head declared with that dim alone
(``to_v: ("d_value",)`` makes ``d_value`` its rows). A head may exist only when a bool option is
true (``when``). The compiled sequence runner projects all ``T*B`` rows at once before the time loop
(one matmul per head); only the state update runs per step.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from snngraph.ir.errors import GraphError
from snngraph.ir.init import as_array, uniform_fan_in

__all__ = ["Heads", "heads_kind"]

Shape = tuple[str, ...] | Callable[[dict[str, Any]], tuple[int, ...]]


@dataclasses.dataclass(frozen=True)
class Heads:
    """The projections of a ``cell="heads"`` model.

    Attributes:
        sizes: head -> its output dims (the head has their product as features), in declaration order.
        state: the state's per-step shape: dim names, or ``p -> shape`` (``p``: dims and options).
        output: the output's per-step shape likewise (``None``: the state's).
        when: head -> the bool option that makes it present (absent heads have no weights).
        spikes: whether the output is the spikes (``g`` times 0/1; a linear reading them may run as a
            spike-driven linear), or ``p -> bool``; a readout of the spikes through a projection is not.
        bias: whether the heads have biases by default (``bias=`` of the builder).
    """

    sizes: Mapping[str, tuple[str, ...]]
    state: Shape
    output: Shape | None = None
    when: Mapping[str, str] = dataclasses.field(default_factory=dict)
    spikes: bool | Callable[[dict[str, Any]], bool] = True
    bias: bool = True

    @property
    def dims(self) -> dict[str, str]:
        """Dim -> the head that defines it (the first declared with that dim alone, always present)."""
        out: dict[str, str] = {}
        for head, dims in self.sizes.items():
            if len(dims) == 1 and head not in self.when:
                out.setdefault(dims[0], head)
        return out

    def check(self, where: str, options: Mapping[str, Any]) -> None:
        """Declaration errors: undefined dims, ``when`` naming no bool option, bad names."""
        from snngraph.ir.types import check_name

        if not self.sizes:
            raise GraphError(f"{where}: heads needs at least one projection")
        defined = self.dims
        for head, dims in self.sizes.items():
            check_name(head, f"{where} head")
            if not isinstance(dims, tuple) or not dims or any(d not in defined for d in dims):
                raise GraphError(f"{where}: head {head!r} has dims {dims!r}; every dim must be defined by an "
                                 f"always-present head of that dim alone (defined: {sorted(defined)})")
        for head, option in self.when.items():
            if head not in self.sizes or option not in options or not isinstance(options[option].default, bool):
                raise GraphError(f"{where}: when[{head!r}] must name a head and a bool option, got {option!r}")
        for shape in (self.state, self.output):
            if isinstance(shape, tuple) and any(d not in defined for d in shape):
                raise GraphError(f"{where}: shape {shape!r} names a dim no head defines ({sorted(defined)})")


def _features(heads: Heads, head: str, dims: Mapping[str, int]) -> int:
    return math.prod([dims[d] for d in heads.sizes[head]])  # lists, not generators: dynamo traces these


def _shape(spec: Shape | None, p: dict[str, Any]) -> tuple[int, ...]:
    return tuple([p[d] for d in spec]) if isinstance(spec, tuple) else tuple([int(v) for v in spec(p)])


def present(heads: Heads, options: Mapping[str, Any], head: str) -> bool:
    """Whether ``head`` exists at these option values."""
    return head not in heads.when or bool(options[heads.when[head]])


def node_dims(heads: Heads, f: Mapping[str, Any]) -> dict[str, int] | str:
    """The dims implied by the defining heads' weights (``f``: node fields and options), or an error."""
    dims = {}
    for dim, head in heads.dims.items():
        w = f.get(f"{head}_weight")
        if w is None or w.value.ndim != 2:
            return f"needs a 2-D {head}.weight"
        dims[dim] = int(w.shape[0])
    return dims


def check_fields(heads: Heads, f: Mapping[str, Any], shape: tuple[int, ...]) -> dict[str, int] | str:
    """The dims, after checking every head's weights against them and the input's ``shape``."""
    dims = node_dims(heads, f)
    if isinstance(dims, str):
        return dims
    if len(shape) != 1:
        return f"needs a 1-D input (batch, features), got per-step shape {list(shape)}"
    for head in heads.sizes:
        w, b = f.get(f"{head}_weight"), f.get(f"{head}_bias")
        if not present(heads, f, head):
            if w is not None or b is not None:
                return f"has {head} weights but {heads.when[head]}=False"
            continue
        rows = _features(heads, head, dims)
        if w is None or w.shape != (rows, shape[0]):
            return (f"needs {head}.weight of shape [{rows}, {shape[0]}] (dims {dict(dims)}, input {list(shape)}); "
                    f"got {None if w is None else list(w.shape)}")
        if b is not None and b.shape != (rows,):
            return f"{head}.bias must have shape [{rows}]"
    return dims


def build(heads: Heads, shape: tuple[int, ...], keywords: dict[str, Any], where: str) -> dict[str, Any]:
    """The node's weights: given ones, else ``torch.nn.Linear``'s init (U(-1/sqrt(in), 1/sqrt(in)),
    each head's weight then bias, in declaration order) from the dims given as keywords."""
    if len(shape) != 1:
        raise GraphError(f"{where}: needs a 1-D input (batch, features), got per-step shape {list(shape)}")
    dims = {}
    for dim, head in heads.dims.items():
        value, w = keywords.get(dim), keywords.get(f"{head}_weight")
        if value is None and w is not None:
            value = int(np.shape(w)[0]) if np.ndim(w) == 2 else None
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise GraphError(f"{where}: {dim} must be a positive int (or given by {head}_weight), got {value!r}")
        dims[dim] = int(value)
    out: dict[str, Any] = {}
    bias = keywords.get("bias", heads.bias)
    for head in heads.sizes:
        keys = (f"{head}_weight", f"{head}_bias")
        if not present(heads, keywords, head):
            if any(keywords.get(k) is not None for k in keys):
                raise GraphError(f"{where}: {head} weights given with {heads.when[head]}=False")
            out.update(dict.fromkeys(keys))
            continue
        rows = _features(heads, head, dims)
        for key, s in ((keys[0], (rows, shape[0])), (keys[1], (rows,))):
            value, what = keywords.get(key), f"{where} {key}"
            if key == keys[1] and not bias:
                if value is not None:
                    raise GraphError(f"{where}: {key} given with bias=False")
                out[key] = None
            else:
                out[key] = uniform_fan_in(s, shape[0], what) if value is None else as_array(value, what, s)
    return out


def heads_kind(model: Any) -> Any:
    """The :class:`~snngraph.ir.model_cell.CellKind` of a heads model (its fields, keywords and shapes)."""
    from snngraph.ir.model_cell import CellKind

    heads: Heads = model.heads
    fields = {f"{h}_{part}": f"{h}.{part}" for h in heads.sizes for part in ("weight", "bias")}
    keywords = {**dict.fromkeys(heads.dims), "bias": heads.bias, **dict.fromkeys(fields)}

    def dims_and_options(f: dict[str, Any], shape: tuple[int, ...]) -> dict[str, Any] | str:
        dims = check_fields(heads, f, shape)
        return dims if isinstance(dims, str) else {**{k: f[k] for k in model.options if k in f}, **dims}

    def state_shape(f: dict[str, Any], gates: int, shape: tuple[int, ...]) -> tuple[int, ...] | str:
        p = dims_and_options(f, shape)
        return p if isinstance(p, str) else _shape(heads.state, p)

    def out_shape(f: dict[str, Any], shape: tuple[int, ...]) -> tuple[int, ...] | str:
        p = dims_and_options(f, shape)
        return p if isinstance(p, str) else _shape(heads.output or heads.state, p)

    def spikes(p: dict[str, Any]) -> bool:
        return heads.spikes if isinstance(heads.spikes, bool) else bool(heads.spikes(p))

    return CellKind(fields, keywords, state_shape, lambda shape, gates, kw, where: build(heads, shape, kw, where),
                    out_shape=out_shape, spikes=spikes, dims=lambda f: node_dims(heads, f))
