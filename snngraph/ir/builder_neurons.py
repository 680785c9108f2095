"""Builder methods for neuron populations, derived from each model's declaration.

``g.neuron(model, x, **values)`` builds any registered model; every built-in model also gets a
method ``g.<model>(x, ...)`` with snnTorch 1.0.0's keyword names and defaults (``learn_<param>``
flags, ``spike_grad``, the options), generated from its declaration with a real signature.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from snngraph.ir.errors import GraphError
from snngraph.ir.init import as_array, kaiming_weight, uniform_fan_in
from snngraph.ir.model import _REGISTERED_HOOKS, MODELS, NeuronModel, get_model
from snngraph.ir.model_cell import cell_kind
from snngraph.ir.model_pool import pool_fields
from snngraph.ir.node import NODE_KINDS
from snngraph.ir.surrogate import Surrogate
from snngraph.ir.types import Param

if TYPE_CHECKING:
    from snngraph.ir.graph import Handle

RECURRENCE = {"V": 1.0, "all_to_all": True, "linear_features": None, "learn_recurrent": True,
              "recurrent_weight": None, "recurrent_bias": None}
"""The builder keywords of recurrent models, with snnTorch ``RLeaky``'s defaults."""


def as_surrogate(spike_grad: Any, where: str) -> Surrogate | None:
    """``None`` (default filled in by the ``insert_surrogates`` pass), a Surrogate, or any callable
    spike function (kept as ``Surrogate("callable", fn=...)``: runs eagerly, cannot be saved)."""
    if spike_grad is None or isinstance(spike_grad, Surrogate):
        return spike_grad
    if callable(spike_grad):
        return Surrogate("callable", fn=spike_grad)
    raise GraphError(f"{where}: spike_grad must be a surrogate (sg.surrogate.atan(), ...) or callable")


class NeuronBuilder:
    """Mixin: ``g.neuron(model, x, ...)``; built-in models add ``g.leaky(x, beta=...)`` and the others."""

    def neuron(self, model: str, x: Any, *, name: str | None = None, learn: tuple[str, ...] | str = (),
               spike_grad: Callable | None = None, **values: Any) -> Handle:
        """A population of the registered neuron ``model`` reading ``x``; ports ``spk`` and its state.

        Args:
            model: a name from ``sg.neuron_models()``.
            x: the input current.
            name: the node name (default: ``<model><k>``).
            learn: parameters to train (``<node>.<param>`` in ``state_dict``); ``learn_<param>=True`` also works.
            spike_grad: the surrogate (default ``sg.surrogate.atan()``, filled in by ``insert_surrogates``).
            **values: parameter values (scalars or per-neuron arrays) and options, by declared name.
        """
        m = get_model(model, "g.neuron")
        learn = (learn,) if isinstance(learn, str) else tuple(learn)
        return build_neuron(self, m, x, name, learn + _learn_flags(m, values), spike_grad, values)


def _learn_flags(model: NeuronModel, values: dict[str, Any]) -> tuple[str, ...]:
    """Pop the ``learn_<param>=True/False`` keywords from ``values``; the parameters to learn."""
    learn = []
    for key in [k for k in values if k.startswith("learn_")]:
        flag = values[key] if key == "learn_recurrent" else values.pop(key)
        if not isinstance(flag, (bool, np.bool_)):
            raise GraphError(f"{model.name}: {key} must be True or False, got {flag!r}")
        if flag and key != "learn_recurrent":
            learn.append(key.removeprefix("learn_"))
    return tuple(learn)


def build_neuron(builder: Any, model: NeuronModel, x: Any, name: str | None, learn: tuple[str, ...],
                 spike_grad: Any, values: dict[str, Any]) -> Handle:
    """Check every value against ``model``'s declaration and add the node; GraphError naming it otherwise."""
    name = builder._name(name, model.name)
    where = f"{model.name} '{name}'"
    allowed = {*model.params, *model.options, *model.extra_keywords, *(RECURRENCE if model.recurrent else ()),
               *(("state_quant",) if model.state_quant else ()), *_cell_keywords(model),
               *(("pool", "pool_size") if model.spike_pool else ())}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise GraphError(f"{where}: unexpected keyword(s) {unknown}; {model.name} takes {sorted(allowed)}")
    bad_learn = sorted(set(learn) - {k for k, s in model.params.items() if s.learnable})
    if bad_learn:
        raise GraphError(f"{where}: cannot learn {bad_learn}; learnable: "
                         f"{[k for k, s in model.params.items() if s.learnable]}")
    if model.prepare is not None:
        values = model.prepare({**model.extra_keywords, **values}, where)
    fields: dict[str, Any] = {k: _param(model, k, values.get(k), k in learn, where) for k in model.params}
    fields.update({k: _option(opt, values.get(k, opt.default), k, where) for k, opt in model.options.items()})
    if model.check is not None and (message := model.check({k: p.value for k, p in fields.items()
                                                            if isinstance(p, Param)})):
        raise GraphError(f"{where}: {message}")
    if model.spiking:
        fields["surrogate"] = as_surrogate(spike_grad, where)
    elif spike_grad is not None:
        raise GraphError(f"{where}: {model.name} does not spike; it takes no spike_grad")
    if model.state_quant:
        fields["state_quant"] = quant_levels(values.get("state_quant"), where)
    if model.spike_pool:
        fields.update(pool_fields(values.get("pool", "none"), values.get("pool_size"), where))
    if model.recurrent:
        fields.update(_recurrence(builder, x, where, {**RECURRENCE, **{k: values[k] for k in RECURRENCE
                                                                       if k in values}}))
    if model.cell is not None:
        shape = builder._in_type(x, where)[1].shape
        cell = {**_cell_keywords(model), **{k: values[k] for k in _cell_keywords(model) if k in values},
                **{k: fields[k] for k in model.options}}
        built = cell_kind(model).build(tuple(shape), model.gates, cell, where)
        fields.update({k: None if v is None else Param(v, True) for k, v in built.items()})
    ref = builder._ref(x, where)
    return builder._add(NODE_KINDS[model.name](name=name, inputs=(ref,), **fields))


def _cell_keywords(model: NeuronModel) -> dict[str, Any]:
    """A cell model's builder keywords (``hidden_size``, ``bias``, the weights; see ``model_cell``)."""
    return dict(cell_kind(model).keywords) if model.cell is not None else {}


def _param(model: NeuronModel, key: str, value: Any, learnable: bool, where: str) -> Param:
    spec = model.params[key]
    if value is None:
        value = spec.default
    if value is None:
        raise GraphError(f"{where}: {key} is required")
    if spec.constant and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = np.float64(value)  # a constant is the number given, not its float32 rounding
    arr = as_array(value, f"{where} {key}")
    if not spec.per_neuron and arr.ndim:
        raise GraphError(f"{where}: {key} must be a scalar, got shape {list(arr.shape)}")
    if arr.size and (message := spec.violation(float(arr.min()), float(arr.max()))):
        raise GraphError(f"{where}: {key} {message}")
    return Param(arr, learnable, "float64" if spec.constant else None)


def quant_levels(value: Any, where: str) -> tuple[float, ...] | None:
    """A state quantiser's levels as the node keeps them: ``None``/``False`` (none), a quantiser with a
    ``levels`` tensor (``sg.functional.state_quant()``) or the levels themselves, ascending and finite."""
    if value is None or value is False:
        return None
    levels = getattr(value, "levels", value)
    if hasattr(levels, "detach"):
        levels = levels.detach().cpu().double().numpy()
    try:
        arr = np.asarray(levels, dtype=np.float64)
    except (TypeError, ValueError):
        raise GraphError(f"{where}: state_quant must be a quantiser (sg.functional.state_quant()) or its levels, "
                         f"got {type(value).__name__}") from None
    if arr.ndim != 1 or not arr.size or not np.all(np.isfinite(arr)) or np.any(np.diff(arr) < 0):
        raise GraphError(f"{where}: state_quant levels must be a non-empty ascending 1-D sequence of finite numbers")
    return tuple(float(v) for v in arr)


def _option(option: Any, value: Any, key: str, where: str) -> Any:
    if isinstance(option.default, bool) and isinstance(value, (bool, np.bool_)):
        value = bool(value)
    if type(value) is not type(option.default) or value not in option.choices:
        raise GraphError(f"{where}: {key} must be one of {option.choices}, got {value!r}")
    return value


def _recurrence(builder: Any, x: Any, where: str, kw: dict[str, Any]) -> dict[str, Any]:
    """Dense recurrence ``recurrent.weight/.bias`` (initialised like ``nn.Linear``) when ``all_to_all``,
    else the element-wise ``V``."""
    learn = bool(kw["learn_recurrent"])
    if not isinstance(kw["all_to_all"], (bool, np.bool_)):
        raise GraphError(f"{where}: all_to_all must be a bool, got {kw['all_to_all']!r}")
    n = builder._in_type(x, where)[1].shape[-1]
    features = kw["linear_features"]
    if features is not None and (isinstance(features, bool) or not isinstance(features, (int, np.integer))):
        raise GraphError(f"{where}: linear_features must be an int, got {features!r}")
    if features is not None and features != n:
        raise GraphError(f"{where}: linear_features={features!r} does not match the input's {n} features")
    if not kw["all_to_all"]:
        return dict(all_to_all=False, V=Param(as_array(kw["V"], f"{where} V"), learn))
    w, b = kw["recurrent_weight"], kw["recurrent_bias"]
    w_what, b_what = f"{where} recurrent.weight", f"{where} recurrent.bias"
    w = kaiming_weight((n, n), w_what) if w is None else as_array(w, w_what, (n, n))
    if b is False:  # no recurrent bias (LeakyParallel's dense weight_hh_l0, Norse's LIFRecurrentCell)
        return dict(all_to_all=True, recurrent_weight=Param(w, learn), recurrent_bias=None)
    b = uniform_fan_in((n,), n, b_what) if b is None else as_array(b, b_what, (n,))
    return dict(all_to_all=True, recurrent_weight=Param(w, learn), recurrent_bias=Param(b, learn))


def builder_signature(model: NeuronModel) -> inspect.Signature:
    """``g.<model>(x, <positional params>, *, <the rest>, name=None)``, with snnTorch's keyword names."""
    P = inspect.Parameter
    params = [P("self", P.POSITIONAL_OR_KEYWORD), P("x", P.POSITIONAL_OR_KEYWORD)]
    defaults = {k: s.default for k, s in model.params.items()} | dict(model.extra_keywords)
    positional = model.positional or tuple(model.params)
    optional = False
    for key in positional:
        optional = optional or defaults[key] is not None or model.prepare is not None
        params.append(P(key, P.POSITIONAL_OR_KEYWORD, default=defaults[key] if optional else P.empty))
    keyword = [(k, defaults[k]) for k in defaults if k not in positional]
    if model.spiking:
        keyword.append(("spike_grad", None))
    keyword += [(f"learn_{k}", False) for k, s in model.params.items() if s.learnable]
    keyword += [(k, o.default) for k, o in model.options.items()]
    keyword += list(RECURRENCE.items()) if model.recurrent else []
    keyword += [("state_quant", None)] if model.state_quant else []
    keyword += [("pool", "none"), ("pool_size", None)] if model.spike_pool else []
    keyword += list(_cell_keywords(model).items())
    params += [P(k, P.KEYWORD_ONLY, default=v) for k, v in keyword] + [P("name", P.KEYWORD_ONLY, default=None)]
    return inspect.Signature(params)


def builder_method(model: NeuronModel) -> Callable[..., Handle]:
    """The builder method ``g.<model.name>`` of a built-in model."""
    signature = builder_signature(model)

    def method(self: Any, *args: Any, **kwargs: Any) -> Handle:
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError as e:
            raise GraphError(f"g.{model.name}: {e}") from None
        values = dict(bound.arguments)
        values.pop("self")
        x, name, spike_grad = values.pop("x"), values.pop("name", None), values.pop("spike_grad", None)
        return build_neuron(self, model, x, name, _learn_flags(model, values), spike_grad, values)

    method.__name__ = method.__qualname__ = model.name
    method.__signature__ = signature  # type: ignore[attr-defined]
    method.__doc__ = model.doc
    return method


def _install(model: NeuronModel) -> None:
    if model.builtin:
        setattr(NeuronBuilder, model.name, builder_method(model))


_REGISTERED_HOOKS.append(_install)
for _model in list(MODELS.values()):
    _install(_model)
