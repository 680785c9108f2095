"""Spiking neuron modules (``snngraph.nn`` and snnTorch 1.0.0) as IR neuron nodes.

A neuron module is recognised by the first class of its MRO that is one of the known classes
of ``snngraph.nn`` or ``snntorch`` (so subclasses that keep the forward work too). Its
hyper-parameters and current parameter values are read from the attributes both libraries
share (snnTorch's names): ``beta``, ``alpha``, ``threshold``, ``graded_spikes_factor``,
``reset_mechanism``, ``reset_delay``, ``R``/``C``/``time_step``, ``V`` and ``recurrent``. A value
that is an ``nn.Parameter`` with ``requires_grad`` becomes a learnable IR parameter. Notes:

- ``beta`` / ``alpha`` are clipped to [0, 1] (both libraries clamp them in the forward pass).
- ``Lapicque`` is traced from its current ``R``, ``C`` and ``time_step``; a learnable ``beta``, which
  only serves to derive them, is not carried over.
- ``spike_grad``: see :func:`as_surrogate`; ``surrogate_disable=True`` keeps the module's
  gradient-free spike function as a callable.
- ``inhibition`` is the models' option; ``state_quant`` becomes the node's levels (:func:`quant_levels_of`).

snnTorch is never imported here: modules are matched by the module name of their class.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor, nn

from snngraph import surrogate as sgs
from snngraph.frontends.fx_norse import norse_cell_op
from snngraph.frontends.fx_spikingjelly import is_sj_neuron, sj_neuron_op
from snngraph.ir.errors import GraphError
from snngraph.ir.model import get_model
from snngraph.ir.surrogate import Surrogate

if TYPE_CHECKING:
    from snngraph.ir.graph import Graph, Handle

# (class module prefix, class name) -> IR op
_SNNTORCH = {"Leaky": "leaky", "Synaptic": "synaptic", "Alpha": "alpha", "Lapicque": "lapicque",
             "RLeaky": "rleaky", "RSynaptic": "rsynaptic", "DeltaLeaky": "delta_leaky"}
_SNNTORCH.update({"SLSTM": "slstm", "SConv2dLSTM": "sconv2d_lstm"})
_SNNGRAPH = {**_SNNTORCH, "IntegrateFire": "integrate_fire", "LeakyIntegrator": "leaky_integrator",
             "AdaptiveLeaky": "adaptive_leaky"}
SEQUENCE_NEURONS = ("StateLeaky", "LinearLeaky", "LeakyParallel", "AssociativeLeaky")  # see fx_sequence
# state arguments that hold several state ports: DeltaLeaky's ``mem`` is the pair (mem, mem_prev)
_NESTED = {"delta_leaky": {"mem": ("mem", "mem_prev")}}


@dataclass(frozen=True)
class NeuronKind:
    """What the tracer needs to know about one neuron module.

    Attributes:
        op: the IR op (``leaky``, ...).
        library: ``"snntorch"``, ``"snngraph"``, ``"norse"`` or ``"spikingjelly"``.
        state_args: names of ``forward``'s state arguments, in order (``mem``; ``syn, mem`` ...).
        returns: the port of each element of the tuple the module returns when it returns one (a tuple
            of ports for a nested element: DeltaLeaky returns ``(spk, (mem, mem_prev))``).
    """

    op: str
    library: str
    state_args: tuple[str, ...]
    returns: tuple[Any, ...]

    def group(self, arg: str) -> tuple[str, ...]:
        """The state ports state argument ``arg`` holds: itself, or the ports of a nested argument."""
        return _NESTED.get(self.op, {}).get(arg, (arg,))


def is_neuron_module(module: nn.Module) -> bool:
    """Whether ``module`` is a spiking neuron of snngraph, snnTorch, Norse or SpikingJelly (a leaf of the trace)."""
    if norse_cell_op(module) is not None or is_sj_neuron(module):
        return True
    return any(cls.__name__ in ("SpikingNeuron", *_SNNGRAPH, *SEQUENCE_NEURONS) and _library(cls) is not None
               for cls in type(module).__mro__)


def _library(cls: type) -> str | None:
    mod = cls.__module__ or ""
    if mod == "snntorch" or mod.startswith("snntorch."):
        return "snntorch"
    if mod.startswith("snngraph.nn"):
        return "snngraph"
    return None


def neuron_kind(module: nn.Module, where: str) -> NeuronKind:
    """The :class:`NeuronKind` of a neuron module, or GraphError naming it when unsupported."""
    if (op := norse_cell_op(module)) is not None:
        return NeuronKind(op, "norse", tuple(list(inspect.signature(module.forward).parameters)[1:]), ())
    if is_sj_neuron(module):  # SpikingJelly neurons keep their state inside and return their spikes
        return NeuronKind(sj_neuron_op(module, where), "spikingjelly", (), ("spk",))
    for cls in type(module).__mro__:
        library = _library(cls)
        table = _SNNTORCH if library == "snntorch" else _SNNGRAPH if library == "snngraph" else {}
        if cls.__name__ in table:
            op = table[cls.__name__]
            params = list(inspect.signature(module.forward).parameters)
            state = tuple(params[1:])
            returns = ("mem", "mem") if op == "leaky_integrator" else _ports(op)
            if op in _NESTED:
                nested = _NESTED[op]
                returns = ("spk", *(nested.get(arg, (arg,)) for arg in state))
            return NeuronKind(op, library, state, returns)
    raise GraphError(f"{where}: neuron {type(module).__module__}.{type(module).__name__} is not supported by "
                     f"sg.trace (supported: {', '.join(sorted(_SNNGRAPH))})")


def _ports(op: str) -> tuple[str, ...]:
    from snngraph.ir.node import NODE_KINDS

    return NODE_KINDS[op].ports


# --- reading values ----------------------------------------------------------------------------------
def _value(module: nn.Module, key: str) -> Any:
    value = getattr(module, key)
    if isinstance(value, Tensor):
        return value.detach().cpu().clone()
    return value


def _learn(module: nn.Module, key: str) -> bool:
    value = getattr(module, key, None)
    return isinstance(value, nn.Parameter) and value.requires_grad


def _decay(module: nn.Module, key: str) -> Any:
    """``beta``/``alpha``: both libraries clamp to [0, 1] in the forward pass; clipping the
    traced value gives the same forward result and keeps the IR's range check happy."""
    value = _value(module, key)
    return value.clamp(0, 1) if isinstance(value, Tensor) else min(max(float(value), 0.0), 1.0)


def _check_options(module: nn.Module, model: Any, where: str) -> None:
    if getattr(module, "inhibition", False) and "inhibition" not in model.options:
        raise GraphError(f"{where}: inhibition=True is not supported by sg.trace for {model.name}")
    quant = getattr(module, "state_quant", False)
    if quant is not False and quant is not None and not model.state_quant:
        raise GraphError(f"{where}: state_quant is not supported by sg.trace for {model.name}")


def quant_levels_of(fn: Any, where: str) -> Any:
    """The levels of a neuron's ``state_quant``: ``None`` for none, the ``levels`` of
    ``sg.functional.state_quant()``, or those snnTorch's ``state_quant()`` closure holds (read from
    its variables, never called). Any other callable cannot be traced."""
    if fn is False or fn is None:
        return None
    if isinstance(getattr(fn, "levels", None), Tensor):
        return fn.levels
    if (getattr(fn, "__module__", "") == "snntorch.functional.quant"
            and getattr(fn, "__qualname__", "") == "state_quant.<locals>.inner"):
        levels = inspect.getclosurevars(fn).nonlocals.get("levels")
        if isinstance(levels, Tensor):
            return levels.detach().cpu()
    raise GraphError(f"{where}: state_quant {fn!r:.80} is not traceable: use sg.functional.state_quant() or "
                     "snntorch.functional.quant.state_quant() (their levels become the node's state_quant)")


def _recurrence(module: nn.Module, where: str) -> dict[str, Any]:
    if not module.all_to_all:
        return dict(all_to_all=False, V=_value(module, "V"), learn_recurrent=_learn(module, "V"))
    rec = getattr(module, "recurrent", None)
    if not isinstance(rec, nn.Linear):
        raise GraphError(f"{where}: only linear (all_to_all with linear_features) or one-to-one (V) recurrence "
                         f"is supported by sg.trace, got {type(rec).__name__} recurrence")
    if rec.bias is None:
        raise GraphError(f"{where}: a recurrent Linear without bias is not supported by sg.trace")
    return dict(all_to_all=True, recurrent_weight=rec.weight.detach().cpu().clone(),
                recurrent_bias=rec.bias.detach().cpu().clone(),
                learn_recurrent=rec.weight.requires_grad)


def _cell(module: nn.Module, kind: str, where: str) -> dict[str, Any]:
    """A cell model's weights: ``lstm_cell`` (``SLSTM``) or ``conv`` (``SConv2dLSTM``), snnTorch's submodules;
    ``SConv2dLSTM``'s ``max_pool`` / ``avg_pool`` become the node's ``pool`` / ``pool_size``."""
    cell = module.lstm_cell if kind == "linear" else module.conv
    pools = {k: getattr(module, f"{k}_pool", 0) for k in ("max", "avg")}
    if pools["max"] and pools["avg"]:
        raise GraphError(f"{where}: only one of max_pool and avg_pool may be given (snnTorch refuses both too)")
    if kind == "linear":
        names = {"weight_ih": "weight_ih", "weight_hh": "weight_hh", "bias_ih": "bias_ih", "bias_hh": "bias_hh"}
        kw = dict(hidden_size=cell.hidden_size)
    else:
        names = {"conv_weight": "weight", "conv_bias": "bias"}
        kw = dict(out_channels=module.out_channels, kernel_size=tuple(cell.kernel_size))
    kw["bias"] = cell.bias is not None if kind == "conv2d" else cell.bias_ih is not None
    for pool, size in pools.items():
        if size:
            kw.update(pool=pool, pool_size=tuple(size) if isinstance(size, (tuple, list)) else size)
    for key, attr in names.items():
        value = getattr(cell, attr)
        if value is not None:
            kw[key] = value.detach().cpu().clone()
    return kw


def add_neuron(g: Graph, x: Handle, module: nn.Module, kind: NeuronKind, name: str, where: str) -> Handle:
    """Add the IR node of neuron ``module`` (named ``name``) fed by ``x``; return its handle.

    Every declared parameter, learn flag and option of the model is read from the module's attribute
    of the same name (snnTorch's names), so the mapping follows the model's declaration."""
    model = get_model(kind.op, where)
    _check_options(module, model, where)
    kw: dict[str, Any] = {}
    for key, spec in model.params.items():
        kw[key] = _decay(module, key) if spec.clamped else _value(module, key)
        if spec.learnable:
            kw[f"learn_{key}"] = _learn(module, key)
    for key, option in model.options.items():
        value = getattr(module, key, option.default)
        kw[key] = bool(value) if isinstance(option.default, bool) else value
    if model.spiking:
        kw["spike_grad"] = as_surrogate(module.spike_grad, where)
    if model.state_quant:
        kw["state_quant"] = quant_levels_of(getattr(module, "state_quant", False), where)
    if model.recurrent:
        kw.update(_recurrence(module, where))
    if model.cell is not None:
        kw.update(_cell(module, model.cell, where))
    return g.neuron(model.name, x, name=name, **kw)


# --- surrogates ---------------------------------------------------------------------------------------
_SNNTORCH_SURROGATES: dict[str, Callable[..., Surrogate]] = {
    "atan": sgs.atan, "fast_sigmoid": sgs.fast_sigmoid, "sigmoid": sgs.sigmoid, "triangular": sgs.triangular,
    "heaviside": sgs.heaviside, "straight_through_estimator": sgs.straight_through_estimator,
    "spike_rate_escape": sgs.spike_rate_escape, "SSO": sgs.SSO, "LSO": sgs.LSO, "SFS": sgs.SFS,
}


def as_surrogate(fn: Any, where: str) -> Surrogate:
    """The IR surrogate of a neuron's ``spike_grad``.

    ``sg.surrogate`` specs pass through; snnTorch's factories (``snntorch.surrogate.atan(alpha=2)``
    returns a closure) are recognised by name and read back from the closure's variables, and
    ``custom_surrogate(f)`` becomes ``sg.surrogate.custom_surrogate(f)``. Any other callable is
    kept as ``Surrogate("callable", fn=...)``: it runs eagerly but cannot be saved or exported.
    """
    if isinstance(fn, Surrogate):
        return fn
    if not callable(fn):
        raise GraphError(f"{where}: spike_grad {fn!r} is not callable")
    qualname = getattr(fn, "__qualname__", "")
    factory = qualname.removesuffix(".<locals>.inner")
    if getattr(fn, "__module__", "") == "snntorch.surrogate" and factory != qualname:
        closure = inspect.getclosurevars(fn).nonlocals
        if factory == "custom_surrogate" and callable(closure.get("func")):
            return sgs.custom_surrogate(closure["func"])
        if factory in _SNNTORCH_SURROGATES:
            names = list(inspect.signature(_SNNTORCH_SURROGATES[factory]).parameters)
            try:
                return _SNNTORCH_SURROGATES[factory](**{k: float(np.asarray(closure[k])) for k in names})
            except (KeyError, TypeError, ValueError):
                pass
    return Surrogate("callable", fn=fn)
