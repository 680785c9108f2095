"""The IR node of a declared neuron model: a frozen dataclass generated from the declaration.

Fields, in order: the model's parameters (``Param``), its options, ``surrogate`` (spiking models),
the recurrence (``all_to_all``, ``recurrent_weight``/``recurrent_bias`` or ``V``; recurrent
models) or the cell's weights (cell models, :mod:`snngraph.ir.model_cell`), ``state_quant`` (models
declared ``state_quant=True``: the quantiser's ascending levels, or ``None``), ``pool`` and ``pool_size``
(models declared ``spike_pool=True``, :mod:`snngraph.ir.model_pool`), then ``fused`` (set by
``fuse_state_updates``) and ``state_inputs`` (explicit state: the state before each step comes
from inputs 1.., one per state port; see ``unroll_time(g, steps=T)``).
The text form, the file format and the loader all read these fields, so they follow the declaration.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from snngraph.ir.model import NeuronModel
from snngraph.ir.model_pool import pool_problem, pooled_shape
from snngraph.ir.node import Node, broadcastable
from snngraph.ir.types import Param, TensorType

__all__ = ["ModelNeuron", "current_type", "node_class", "state_arity"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelNeuron(Node):
    """Base of every neuron node; its subclasses are made by :func:`node_class`, one per model."""

    family: ClassVar[str] = "neuron"
    model: ClassVar[NeuronModel]
    matrix_params: ClassVar[tuple[str, ...]] = ()
    quiet_defaults: ClassVar[dict[str, Any]] = {"inhibition": False, "state_quant": None, "pool": "none",
                                                "pool_size": None}
    """Fields the text form leaves out at these values (added after the form was fixed; the parser
    fills them in from their defaults)."""

    @property
    def state_ports(self) -> tuple[str, ...]:
        """The carried state, in kernel order (``spk`` first for recurrent neurons)."""
        return self.model.state_ports

    @property
    def arity(self) -> tuple[int, int]:  # type: ignore[override]
        return state_arity(self)

    def check(self) -> None:
        super().check()
        model = self.model
        for key, spec in model.params.items():
            param = getattr(self, key)
            if not spec.per_neuron and not param.is_scalar:
                raise self.error(f"{key} must be a scalar, got shape {list(param.shape)}")
            if param.learnable:  # training may move a learnt value out of its declared range (a decay's step
                continue         # clamps it); declared values are checked by the builder, and saving loses nothing
            if param.value.size and (message := spec.violation(float(param.value.min()), float(param.value.max()))):
                raise self.error(f"{key} {message}")
        for key, option in model.options.items():
            value = getattr(self, key)
            if type(value) is not type(option.default) or value not in option.choices:
                raise self.error(f"{key} must be one of {option.choices}, got {value!r}")
        if model.recurrent:
            _check_recurrence(self)
        levels = getattr(self, "state_quant", None)
        if levels is not None and (not levels or any(b < a for a, b in zip(levels, levels[1:], strict=False))):
            raise self.error("state_quant must hold the quantiser's levels, at least one, in ascending order")
        if model.spike_pool and (message := pool_problem(self.pool, self.pool_size)):
            raise self.error(message)

    def __reduce__(self) -> tuple:
        """Pickled by model name (the generated class is not importable by name); unpickling needs the
        model registered, like loading a file that names it."""
        return (_rebuild, (self.op, {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}))

    def param_values(self) -> dict[str, np.ndarray]:
        """The declared parameters' values by name."""
        return {k: getattr(self, k).value for k in self.model.params}

    def _cell_fields(self) -> dict[str, Any]:
        """A cell model's weight fields and options, by name."""
        from snngraph.ir.model_cell import cell_kind

        return {**{k: getattr(self, k) for k in self.model.options},
                **{k: getattr(self, k) for k in cell_kind(self.model).fields}}

    def state_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The per-step shape of the state (and ports) for an input of per-step ``shape``: the same,
        except for cell models, whose state has the cell's hidden features (heads models: their
        declared shape)."""
        if self.model.cell is None:
            return tuple(shape)
        from snngraph.ir.model_cell import cell_kind

        out = cell_kind(self.model).state_shape(self._cell_fields(), self.model.gates, tuple(shape))
        if isinstance(out, str):
            raise self.error(out)
        return out

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The per-step shape of the output (``spk``) port: the state's, unless the cell declares its own."""
        from snngraph.ir.model_cell import cell_kind

        kind = cell_kind(self.model) if self.model.cell is not None else None
        if kind is None or kind.out_shape is None:
            return self.state_shape(shape)
        out = kind.out_shape(self._cell_fields(), tuple(shape))
        if isinstance(out, str):
            raise self.error(out)
        return out

    def dims(self) -> dict[str, int]:
        """The sizes a heads model's step reads from ``p`` (its weights' rows); empty for other models."""
        from snngraph.ir.model_cell import cell_kind

        kind = cell_kind(self.model) if self.model.cell is not None else None
        if kind is None or kind.dims is None:
            return {}
        out = kind.dims(self._cell_fields())
        if isinstance(out, str):
            raise self.error(out)
        return out

    @property
    def emits_spikes(self) -> bool:
        """Whether the ``spk`` port holds spikes (``g`` times 0/1), not a readout of them."""
        from snngraph.ir.model_cell import cell_kind

        if not self.model.spiking:
            return False
        kind = cell_kind(self.model) if self.model.cell is not None else None
        if kind is None or kind.spikes is None:
            return True
        return kind.spikes({**{k: getattr(self, k) for k in self.model.options}, **self.dims()})

    def infer(self, ins: tuple[TensorType, ...]) -> dict[str, TensorType]:
        t = current_type(self, ins)
        t = TensorType(self.state_shape(t.shape), t.dtype)
        if self.model.recurrent and self.all_to_all:
            n = t.shape[-1]
            if len(t.shape) != 1 or self.recurrent_weight.shape != (n, n):
                raise self.error(f"all_to_all recurrence needs a 1-D input and a [{n}, {n}] recurrent.weight; "
                                 f"got input {list(t.shape)} and weight {list(self.recurrent_weight.shape)}")
            if self.recurrent_bias is not None and self.recurrent_bias.shape != (n,):
                raise self.error(f"recurrent.bias must have shape [{n}]")
        for key, value in self.fields().items():
            if isinstance(value, Param) and key not in self.matrix_params:
                broadcastable(self, key, t.shape)
        types = {p: TensorType(t.shape, t.dtype) for p in self.ports}
        if "spk" in types:
            out = t.shape if self.model.cell is None else self.out_shape(current_type(self, ins).shape)
            types["spk"] = TensorType(self.spike_shape(out), t.dtype, spike=self.emits_spikes)
        return types

    def spike_shape(self, state: tuple[int, ...]) -> tuple[int, ...]:
        """The per-step shape of ``spk`` for a state of per-step shape ``state``: the same, or pooled."""
        if not self.model.spike_pool or self.pool == "none":
            return tuple(state)
        out = pooled_shape(tuple(state), self.pool, self.pool_size)
        if isinstance(out, str):
            raise self.error(out)
        for key, value in self.fields().items():
            if isinstance(value, Param) and key not in self.matrix_params:
                broadcastable(self, key, out)  # (threshold and graded factor meet the pooled membrane too)
        return out


def _rebuild(op: str, fields: dict[str, Any]) -> ModelNeuron:
    from snngraph.ir.model import get_model
    from snngraph.ir.node import NODE_KINDS

    get_model(op, "unpickling")
    return NODE_KINDS[op](**fields)


def _check_recurrence(node: Any) -> None:
    if node.all_to_all and (node.recurrent_weight is None or node.V is not None):
        raise node.error("all_to_all recurrence needs recurrent.weight (and no V)")
    if not node.all_to_all and (node.V is None or node.recurrent_weight is not None or node.recurrent_bias is not None):
        raise node.error("one-to-one recurrence needs V (and no recurrent.weight)")


def state_arity(node: Any) -> tuple[int, int]:
    """Inputs taken: the current, plus one per state port with ``state_inputs``."""
    n = 1 + (len(node.state_ports) if node.state_inputs else 0)
    return n, n


def current_type(node: Any, ins: tuple[TensorType, ...]) -> TensorType:
    """The current input's type; with ``state_inputs`` each state input must have its shape and dtype."""
    low, _ = state_arity(node)
    if len(ins) != low:
        states = f", then {', '.join(node.state_ports)}" if low > 1 else ""
        raise node.error(f"takes {low} inputs (the current{states}), got {len(ins)}")
    t = ins[0]
    want = TensorType(node.state_shape(t.shape), t.dtype)
    for port, s in zip(node.state_ports if node.state_inputs else (), ins[1:], strict=True):
        if s.shape != want.shape or s.dtype != t.dtype:
            raise node.error(f"state input '{port}' has type {s}, expected {want} "
                             "(the state's shape and the current input's dtype)")
    return t


def class_name(model_name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in model_name.split("_")) or "Model"


def node_class(model: NeuronModel) -> type[ModelNeuron]:
    """The node class of ``model`` (registered as node kind ``model.name``)."""
    fields: list[tuple[str, Any, Any]] = []
    for key, spec in model.params.items():
        default = dataclasses.MISSING if spec.default is None else \
            Param(spec.default, dtype="float64" if spec.constant else None)
        fields.append((key, "Param", dataclasses.field(default=default)))
    for key, option in model.options.items():
        fields.append((key, option.type_name, dataclasses.field(default=option.default)))
    if model.spiking:
        fields.append(("surrogate", "Surrogate | None", dataclasses.field(default=None)))
    namespace: dict[str, Any] = {"op": model.name, "model": model, "ports": model.ports, "__doc__": model.doc,
                                 "__module__": __name__}
    if model.recurrent:
        fields += [("all_to_all", "bool", dataclasses.field(default=True)),
                   ("recurrent_weight", "Param | None", dataclasses.field(default=None)),
                   ("recurrent_bias", "Param | None", dataclasses.field(default=None)),
                   ("V", "Param | None", dataclasses.field(default=None))]
        namespace["param_aliases"] = {"recurrent_weight": "recurrent.weight", "recurrent_bias": "recurrent.bias"}
        namespace["matrix_params"] = ("recurrent_weight", "recurrent_bias")
    if model.state_quant:
        fields.append(("state_quant", "tuple[float, ...] | None", dataclasses.field(default=None)))
    if model.spike_pool:
        fields += [("pool", "str", dataclasses.field(default="none")),
                   ("pool_size", "tuple[int, ...] | None", dataclasses.field(default=None))]
    if model.cell is not None:
        from snngraph.ir.model_cell import cell_kind

        aliases = cell_kind(model).fields
        fields += [(k, "Param | None", dataclasses.field(default=None)) for k in aliases]
        namespace["param_aliases"] = dict(aliases)
        namespace["matrix_params"] = tuple(aliases)
    fields += [("fused", "bool", dataclasses.field(default=False)),
               ("state_inputs", "bool", dataclasses.field(default=False))]
    cls = dataclasses.make_dataclass(class_name(model.name), fields, bases=(ModelNeuron,), namespace=namespace,
                                     frozen=True, kw_only=True)
    return cls

