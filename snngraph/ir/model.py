r"""Neuron models, declared once: parameters, state, options and one step function.

A model is plain data plus a step function written against a small ``ops`` interface::

    @sg.neuron_model("adaptive_if", params={"beta": 0.9, "threshold": 1.0, "rho": 0.8, "b": 0.2},
                     state=("mem", "a"))
    def adaptive_if(ops, x, state, p):
        theta = p["threshold"] + p["b"] * state["a"]
        mem = p["beta"] * state["mem"] + x
        spk = ops.spike(mem - theta)
        mem = mem - ops.detach(spk) * theta
        return spk, {"mem": mem, "a": p["rho"] * state["a"] + ops.detach(spk)}

Everything else follows from the declaration: the IR node class (its fields, ports, checks, text
form and file format, see :mod:`snngraph.ir.model_node`), the builder (``g.neuron(name, x, ...)``
and, for built-in models, ``g.<name>(x, ...)``), the torch step kernel (``ops`` over tensors) and
the ONNX lowering (``ops`` emitting nodes). Registering never executes anything read from a file:
files and text name a model, and a name that is not registered is an error.

The ``ops`` interface, implemented by every backend: arithmetic ``+ - * /`` and unary ``-``
between values, parameters and floats; ``spike(v)`` (Heaviside forward, the node's surrogate
backward); ``detach(v)``; ``clamp(v, lo, hi)``; ``exp``; ``log``; ``abs``; ``sigmoid``; ``where(cond, a, b)``
(``cond`` a 0/1 value); comparisons ``gt``, ``ge``, ``lt``, ``le`` yielding 0/1 values;
``minimum``/``maximum``; ``winner(v)`` (a detached 0/1 mask: 1 at each sample's largest ``v``
over all its neurons, the first on ties: snnTorch's ``inhibition``); ``quant(v)`` (the node's state
quantiser, snnTorch's ``state_quant``: the nearest of its levels with a straight-through gradient;
the identity when the node has none; models declared with ``state_quant=True``); and, for
recurrent models, ``recurrent(spk)`` (the node's recurrent weights applied to the previous spikes).
Cell models (``cell="linear"``/``"conv2d"``, LSTMs) also have
``project(x)`` (the cell's input projection of the raw input), ``recurrent(h)`` (its hidden-to-gates
map), ``sigmoid``, ``tanh`` and ``split(v, n)`` (``n`` equal chunks along the feature axis; see
:mod:`snngraph.ir.model_cell`). Multi-projection models (``cell="heads"``, ``heads=Heads(...)``:
``AssociativeLeaky``, see :mod:`snngraph.ir.model_heads`) have ``project(x, head)`` and the
per-sample shape ops ``reshape(v, shape)``, ``outer(a, b)`` (:math:`a b^\top`) and ``matmul(a, b)``;
their ``p`` also holds the dims (ints) the weights imply. Models declared ``spike_pool=True`` have
``pool(v)`` (the node's 2-D max / average pooling of ``v``, the identity without; see
:mod:`snngraph.ir.model_pool`). ``p`` holds the parameters (scalars or per-neuron
values) and the options (plain Python values: branch on them with ``if``).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

from snngraph.ir.errors import GraphError
from snngraph.ir.types import check_name

StepFn = Callable[[Any, Any, dict[str, Any], dict[str, Any]], tuple[Any, dict[str, Any]]]
RESERVED = frozenset({"name", "inputs", "surrogate", "fused", "state_inputs", "spk", "learn", "spike_grad", "x",
                      "all_to_all", "recurrent_weight", "recurrent_bias", "V", "out", "state_quant", "pool",
                      "pool_size"})


@dataclasses.dataclass(frozen=True, slots=True)
class ParamSpec:
    """One parameter of a model.

    Attributes:
        default: the value when the builder is not given one; ``None`` makes it required.
        low, high: the allowed closed range (``None``: unbounded); ``strict_low``: ``low`` itself excluded.
        clamped: the step function clamps the value into range (snnTorch's decays); front-ends clip
            imported values into it. Declared values are always checked; learnt ones may leave the range
            during training (the node keeps them, so training resumes exactly).
        per_neuron: per-neuron arrays (broadcasting to the neuron's shape) are allowed.
        learnable: ``learn=(name,)`` / ``learn_<name>=True`` may make it a trainable parameter.
        constant: a fixed scalar kept in float64 and handed to the step as a Python number (Norse's
            ``dt``, a float on the cell): the step computes with it as the reference library does, in
            the dtype of the tensors it meets. Implies ``per_neuron=False`` and ``learnable=False``.
    """

    default: float | None = None
    low: float | None = None
    high: float | None = None
    strict_low: bool = False
    clamped: bool = False
    per_neuron: bool = True
    learnable: bool = True
    constant: bool = False

    def __post_init__(self) -> None:
        if self.constant and (self.per_neuron or self.learnable):
            raise GraphError("a constant ParamSpec must have per_neuron=False and learnable=False")
        for key in ("default", "low", "high"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise GraphError(f"ParamSpec {key} must be a finite number or None, got {value!r}")

    def violation(self, lo: float, hi: float) -> str | None:
        """Why values spanning ``[lo, hi]`` are out of range, or ``None``."""
        below = self.low is not None and (lo <= self.low if self.strict_low else lo < self.low)
        if below or (self.high is not None and hi > self.high):
            left = "(" if self.strict_low else "["
            low = "-inf" if self.low is None else f"{self.low:g}"
            high = "inf" if self.high is None else f"{self.high:g}"
            return f"must lie in {left}{low}, {high}], got values in [{lo:g}, {hi:g}]"
        return None


DECAY = ParamSpec(None, 0.0, 1.0, clamped=True)  # a required decay in [0, 1], clamped by the step (beta, alpha)


@dataclasses.dataclass(frozen=True, slots=True)
class OptionSpec:
    """A discrete option: its allowed values, the first being the default."""

    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        kinds = {type(c) for c in self.choices}
        if not self.choices or len(kinds) != 1 or kinds - {str, bool, int}:
            raise GraphError(f"an option's choices must be non-empty and all str, all bool or all int: {self.choices}")

    @property
    def default(self) -> Any:
        return self.choices[0]

    @property
    def type_name(self) -> str:
        return type(self.default).__name__


RESET = OptionSpec(("subtract", "zero", "none"))
RESET_DELAY = OptionSpec((True, False))
INHIBITION = OptionSpec((False, True))  # snnTorch's inhibition: only each sample's largest membrane may spike


@dataclasses.dataclass(frozen=True, eq=False)
class NeuronModel:
    """A neuron model's one declaration (see the module docstring).

    Attributes:
        name: the op name in graphs, text and files.
        params: parameter name -> :class:`ParamSpec`, in declaration order.
        state: the state variables, each also an output port.
        step: ``step(ops, x, state, p) -> (out, new_state)``; ``out`` is the spike output (or, for a
            non-spiking model, the value of its first state).
        options: option name -> :class:`OptionSpec`.
        spiking: whether the model emits spikes (port ``spk``, a surrogate); otherwise its value is its first state.
        recurrent: whether the previous spikes feed back through ``ops.recurrent`` (all-to-all weights
            ``<node>.recurrent.weight/.bias``, or one-to-one ``V``); ``spk`` is then state too.
        check: extra invariant ``check(values) -> message | None`` over the numpy parameter values, run by
            the builder on declared values (like snnTorch's constructor checks; text and files keep theirs).
        prepare: builder hook ``prepare(kwargs, where) -> kwargs`` resolving extra keywords
            (``extra_keywords``) into parameters (Lapicque's ``beta`` into ``R`` and ``C``).
        extra_keywords: builder-only keywords and their defaults.
        positional: the builder's positional parameters after ``x`` (default: ``params`` in order).
        builtin: built-in models also get a builder method ``g.<name>``.
        surrogate: the surrogate ``insert_surrogates`` gives this model's nodes that have none (default:
            the pass's, snnTorch's ``atan``); Norse's models declare Norse's SuperSpike.
        fixed_in_state_dict: a compiled net's ``state_dict`` holds the fixed (not learnable) parameters
            (snnTorch keeps them as buffers); ``False`` leaves them out of it (non-persistent buffers:
            SpikingJelly keeps them as plain attributes, Norse outside its ``state_dict``), so a traced
            model's ``state_dict`` loads into the compiled net and back.
        state_quant: the step quantises its state with ``ops.quant``: nodes get a ``state_quant`` field
            (the ascending levels, or ``None``), kernels and builders a ``state_quant`` keyword.
        cell: ``"linear"`` or ``"conv2d"``: the model holds a gated cell's weights (see
            :mod:`snngraph.ir.model_cell`), ``ops.project`` / ``ops.recurrent`` apply them, and its
            state has ``hidden`` features where the projection has ``gates * hidden``.
        gates: the cell's gate count (the projection's feature ratio to the state's).
        heads: ``cell="heads"``: the named projections and the state's and output's shapes
            (:class:`~snngraph.ir.model_heads.Heads`).
        spike_pool: the spikes may fire on a pooled membrane (``ops.pool``): nodes get the fields ``pool``
            and ``pool_size``, kernels and builders keywords of those names (:mod:`snngraph.ir.model_pool`).
        snntorch_buffers: buffers snnTorch's module keeps that its forward never reads (``StateLeaky``'s
            ``beta``, a ``reset_mechanism_val`` without a reset), name -> ``value(node)``: a traced net
            holds them too, inert, so state dicts load both ways.
    """

    name: str
    params: Mapping[str, ParamSpec]
    state: tuple[str, ...]
    step: StepFn
    options: Mapping[str, OptionSpec] = dataclasses.field(default_factory=dict)
    spiking: bool = True
    recurrent: bool = False
    check: Callable[[dict[str, Any]], str | None] | None = None
    prepare: Callable[[dict[str, Any], str], dict[str, Any]] | None = None
    extra_keywords: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    positional: tuple[str, ...] | None = None
    builtin: bool = False
    surrogate: Any = None
    fixed_in_state_dict: bool = True
    state_quant: bool = False
    doc: str = ""
    cell: str | None = None
    gates: int = 1
    heads: Any = None
    spike_pool: bool = False
    snntorch_buffers: Mapping[str, Callable[[Any], Any]] = dataclasses.field(default_factory=dict)

    @property
    def ports(self) -> tuple[str, ...]:
        """Output ports: ``spk`` then the state (spiking), or the state alone."""
        return ("spk", *self.state) if self.spiking else self.state

    @property
    def state_ports(self) -> tuple[str, ...]:
        """The carried state, in kernel order: recurrent models carry their spikes first."""
        return ("spk", *self.state) if self.recurrent else self.state

    @property
    def keywords(self) -> frozenset[str]:
        """What a step kernel accepts besides the input and state."""
        extra = {"spike_grad"} if self.spiking else set()
        extra |= {"recurrent"} if self.recurrent else set()
        extra |= {"state_quant"} if self.state_quant else set()
        extra |= ({"project"} if self.cell == "heads" else {"project", "recurrent"}) if self.cell else set()
        extra |= set(self.heads.dims) if self.heads is not None else set()
        extra |= {"pool", "pool_size"} if self.spike_pool else set()
        return frozenset(self.params) | frozenset(self.options) | extra

    def defaults(self) -> dict[str, Any]:
        """Declared defaults of the parameters that have one, and of every option."""
        out = {k: s.default for k, s in self.params.items() if s.default is not None}
        out.update({k: o.default for k, o in self.options.items()})
        return out


MODELS: dict[str, NeuronModel] = {}
_REGISTERED_HOOKS: list[Callable[[NeuronModel], None]] = []


def _same_declaration(a: NeuronModel, b: NeuronModel) -> bool:
    """Whether ``b`` declares what ``a`` does (a module or notebook cell run again)."""
    code = lambda m: (m.step.__code__.co_code, m.step.__code__.co_consts)  # noqa: E731
    fields = ("params", "state", "options", "spiking", "recurrent", "extra_keywords", "positional", "builtin",
              "surrogate", "fixed_in_state_dict", "state_quant", "cell", "gates", "heads", "spike_pool",
              "snntorch_buffers")
    return all(getattr(a, f) == getattr(b, f) for f in fields) and code(a) == code(b)


def _check_declaration(model: NeuronModel, replace: bool) -> None:
    from snngraph.ir.node import NODE_KINDS

    where = f"neuron model {model.name!r}"
    check_name(model.name, "neuron model")
    old = MODELS.get(model.name)
    if old is not None and old.builtin:
        raise GraphError(f"{where}: the name is a built-in model's")
    if (old is None and model.name in NODE_KINDS) or (old is not None and not replace):
        raise GraphError(f"{where}: the name is taken by a registered node kind or model (pick another name, "
                         "or pass replace=True to redeclare your own model)")
    if model.cell is not None:
        from snngraph.ir.model_cell import CELLS

        if (model.cell not in CELLS and model.cell != "heads") or model.recurrent:
            raise GraphError(f"{where}: cell must be one of {sorted([*CELLS, 'heads'])} (and the model not "
                             f"recurrent), got {model.cell!r}")
    if (model.cell == "heads") != (model.heads is not None):
        raise GraphError(f"{where}: heads=Heads(...) goes with cell='heads', and only with it")
    if model.heads is not None:
        model.heads.check(where, model.options)
        taken = set(model.heads.dims) & {*model.params, *model.options, *model.state, *model.extra_keywords}
        if taken:
            raise GraphError(f"{where}: dims {sorted(taken)} clash with parameter, option or state names")
    if isinstance(model.gates, bool) or not isinstance(model.gates, int) or model.gates < 1 or (
            model.gates > 1 and model.cell is None):
        raise GraphError(f"{where}: gates must be a positive int, above 1 only for cell models; got {model.gates!r}")
    if not callable(model.step):
        raise GraphError(f"{where}: step must be callable")
    if not model.state or len(set(model.state)) != len(model.state):
        raise GraphError(f"{where}: state must be a non-empty tuple of distinct names")
    names = [*model.params, *model.options, *model.state, *model.extra_keywords]
    for key in names:
        check_name(key, f"{where} field")
        if key in RESERVED or key.startswith("learn_"):
            raise GraphError(f"{where}: {key!r} is a reserved name")
    if len(set(names)) != len(names):
        raise GraphError(f"{where}: parameter, option and state names must be distinct")
    for key, spec in model.params.items():
        if not isinstance(spec, ParamSpec):
            raise GraphError(f"{where}: parameter {key!r} must be a ParamSpec or a number")
    try:
        inspect.signature(model.step).bind(None, None, {}, {})
    except TypeError:
        raise GraphError(f"{where}: step must take (ops, x, state, p)") from None


def register(model: NeuronModel, replace: bool = False) -> NeuronModel:
    """Check ``model`` and register it: its node kind, and its builder method if built in.

    Declaring the very same model again (a module imported twice, a notebook cell run again) returns
    the registered one; ``replace=True`` redeclares a user model under its name (graphs built with the
    old declaration keep their old node class)."""
    from snngraph.ir.model_node import node_class

    old = MODELS.get(model.name)
    if old is not None and not old.builtin and not replace and _same_declaration(old, model):
        return old
    _check_declaration(model, replace)
    node_class(model)  # registers the node kind under model.name
    MODELS[model.name] = model
    for hook in _REGISTERED_HOOKS:
        hook(model)
    return model


def _as_spec(key: str, value: Any, name: str) -> ParamSpec:
    if isinstance(value, ParamSpec):
        return value
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return ParamSpec(None if value is None else float(value))
    raise GraphError(f"neuron model {name!r}: parameter {key!r} must be a number, None (required) or ParamSpec")


def _as_option(key: str, value: Any, name: str) -> OptionSpec:
    if isinstance(value, OptionSpec):
        return value
    if isinstance(value, (tuple, list)):
        return OptionSpec(tuple(value))
    raise GraphError(f"neuron model {name!r}: option {key!r} must be a tuple of choices (the first is the default)")


def neuron_model(name: str, *, params: Mapping[str, Any], state: tuple[str, ...] | str,
                 options: Mapping[str, Any] | None = None, spiking: bool = True, recurrent: bool = False,
                 check: Callable[[dict[str, Any]], str | None] | None = None, replace: bool = False,
                 **extra: Any) -> Callable[[StepFn], NeuronModel]:
    """Declare and register a neuron model; decorates its step function ``(ops, x, state, p) -> (out, new_state)``.

    Args:
        name: the model's op name (``g.neuron(name, x, ...)``, text and files).
        params: name -> default (a number; ``None`` for a required one) or a :class:`ParamSpec`.
        state: the state variables (each an output port besides ``spk``).
        options: name -> tuple of allowed values, the first the default (e.g. ``("subtract", "zero")``).
        spiking: whether the model spikes (default); a non-spiking model's value is its first state.
        recurrent: previous spikes feed back through ``ops.recurrent``.
        check: extra invariant over the parameter values (numpy arrays): returns an error message or ``None``.
        replace: redeclare a user model already registered under ``name``.
        **extra: further :class:`NeuronModel` fields (``prepare``, ``extra_keywords``, ``positional``, ``builtin``,
            ``surrogate``, ``fixed_in_state_dict``, ``state_quant``, ``cell``, ``gates``, ``heads``,
            ``spike_pool``).

    Returns:
        A decorator returning the registered :class:`NeuronModel`.
    """
    if isinstance(state, str):
        state = (state,)

    def declare(step: StepFn) -> NeuronModel:
        model = NeuronModel(
            name=name, params={k: _as_spec(k, v, name) for k, v in params.items()}, state=tuple(state), step=step,
            options={k: _as_option(k, v, name) for k, v in (options or {}).items()}, spiking=spiking,
            recurrent=recurrent, check=check, doc=inspect.getdoc(step) or "", **extra)
        return register(model, replace)

    return declare


def neuron_models() -> dict[str, NeuronModel]:
    """Every registered neuron model, built-in and user-defined, by name."""
    import snngraph.models  # noqa: F401  (the built-in declarations)

    return dict(MODELS)


def get_model(name: str, where: str = "") -> NeuronModel:
    """The registered model ``name``; ``GraphError`` naming it otherwise."""
    import snngraph.models  # noqa: F401

    model = MODELS.get(name) if isinstance(name, str) else None
    if model is None:
        raise GraphError(f"{where + ': ' if where else ''}neuron model {name!r} is not registered "
                         f"(registered: {sorted(MODELS)}; declare it with sg.neuron_model)")
    return model
