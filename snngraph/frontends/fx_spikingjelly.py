"""SpikingJelly 2.0 (``spikingjelly.activation_based``) models for :func:`snngraph.frontends.fx.trace`.

- **Neurons.** ``neuron.IFNode``, ``LIFNode`` and ``ParametricLIFNode`` (and user subclasses that
  keep their step) become the declared models ``sj_if``, ``sj_lif``, ``sj_plif``
  (:mod:`snngraph.models.spikingjelly`), read from ``v_threshold``, ``v_reset`` (``None``: soft
  reset), ``detach_reset``, ``tau``, ``decay_input`` and ``w``; a ``ParametricLIFNode``'s ``w``
  stays learnable under its key ``<module>.w``. Surrogates: ``surrogate.Sigmoid(alpha)`` is
  ``sg.surrogate.sigmoid(slope=alpha)``, ``ATan(alpha)`` is ``atan(alpha)``, and
  ``PiecewiseQuadratic``, ``PiecewiseExp``, ``SoftSign``, ``SuperSpike``, ``Erf`` are the
  surrogates of the same names (snake case) with SpikingJelly's ``alpha``.
- **Layers.** ``layer.Linear``, ``Conv1d/2d``, ``BatchNorm1d/2d``, ``MaxPool1d/2d``,
  ``AvgPool1d/2d``, ``AdaptiveAvgPool1d/2d``, ``Flatten``, ``GroupNorm`` and ``Dropout`` are their
  torch layers, traced one step at a time.
- **Step modes.** A single-step model is traced from one step ``(B, ...)``: its ``StepModeContainer``s
  become plain ``nn.Sequential`` (same children, so the same parameter paths). A model with any
  module in multi-step mode (``functional.set_step_mode(net, 'm')``) or a multi-step container
  (``SeqToANNContainer``, ``MultiStepContainer``) is traced from the ``(T, B, ...)`` example it takes,
  at the sequence level (:mod:`snngraph.frontends.fx_seqops`): its ``forward`` may reshape the whole
  sequence (the zoo's ``spikformer``), its containers are their children per step. Either way the
  compiled module runs sequences ``(T, B, ...)``, computing what SpikingJelly computes stepping the
  model (in single- or multi-step mode) from a reset state.

- **Batch norm statistics.** A batch norm that SpikingJelly runs over all ``T * B`` rows at once (a
  multi-step ``layer.BatchNorm1d/2d``, any batch norm inside a ``SeqToANNContainer`` or a stateless
  multi-step ``StepModeContainer``, or one a multi-step ``forward`` calls on ``x.flatten(0, 1)``)
  becomes ``batch_norm(stats="sequence")``: in training mode its statistics are pooled over time and
  batch and its running statistics updated once per sequence, as SpikingJelly's. One stepped per time
  step (single-step mode, ``MultiStepContainer``) keeps ``stats="step"``.

Departure: ``layer.Dropout`` draws a new mask each step (SpikingJelly keeps one mask for the
sequence). In evaluation mode both agree.

SpikingJelly is never imported here: classes are matched by their module name.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor, nn

from snngraph import surrogate as sgs
from snngraph.ir.errors import GraphError
from snngraph.ir.surrogate import Surrogate

if TYPE_CHECKING:
    from snngraph.ir.graph import Graph, Handle

_PACKAGE = "spikingjelly.activation_based"
NEURONS = {"IFNode": "sj_if", "LIFNode": "sj_lif", "ParametricLIFNode": "sj_plif"}
"""SpikingJelly neuron class -> IR model."""
LAYERS = ("Linear", "Conv1d", "Conv2d", "BatchNorm1d", "BatchNorm2d", "MaxPool1d", "MaxPool2d", "AvgPool1d",
          "AvgPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "Flatten", "GroupNorm", "Dropout")
"""SpikingJelly layers traced as the torch layer they wrap (``Dropout``: ``nn.Dropout``)."""
_CONTAINERS = ("SeqToANNContainer", "MultiStepContainer", "StepModeContainer")
_POOLED_NORMS: contextvars.ContextVar[frozenset[int]] = contextvars.ContextVar("sg_sj_pooled_norms",
                                                                               default=frozenset())
"""While tracing a SpikingJelly model: the ids of its batch norms that see all ``T * B`` rows at once."""
_SURROGATES: dict[str, Callable[[float], Surrogate]] = {
    "Sigmoid": lambda a: sgs.sigmoid(slope=a), "ATan": sgs.atan, "PiecewiseQuadratic": sgs.piecewise_quadratic,
    "PiecewiseExp": sgs.piecewise_exp, "SoftSign": sgs.soft_sign, "SuperSpike": sgs.super_spike, "Erf": sgs.erf,
}


def _sj_class(module: nn.Module, subpackage: str = "") -> type | None:
    """The first SpikingJelly class in ``module``'s MRO (of ``activation_based.<subpackage>``), or ``None``."""
    prefix = f"{_PACKAGE}.{subpackage}" if subpackage else _PACKAGE
    for cls in type(module).__mro__:
        if (cls.__module__ or "").startswith(prefix):
            return cls
    return None


def is_sj_neuron(module: nn.Module) -> bool:
    """Whether ``module`` is a SpikingJelly neuron (supported or not: a leaf of the trace)."""
    return _sj_class(module, "neuron") is not None


def sj_neuron_op(module: nn.Module, where: str) -> str:
    """The IR model of a SpikingJelly neuron, or GraphError naming the unsupported class."""
    cls = _sj_class(module, "neuron")
    if cls is None or cls.__name__ not in NEURONS:
        name = f"{cls.__module__}.{cls.__name__}" if cls is not None else type(module).__name__
        raise GraphError(f"{where}: SpikingJelly neuron {name} is not supported by sg.trace "
                         f"(supported: {', '.join(NEURONS)})")
    return NEURONS[cls.__name__]


def sj_layer_handler(module: nn.Module, modules: dict[type, Callable[..., Any]]) -> Callable[..., Any] | None:
    """The fx handler of a SpikingJelly layer (that of the torch layer it wraps), or ``None``."""
    cls = _sj_class(module, "layer")
    if cls is None or cls.__name__ not in LAYERS:
        return None
    if cls.__name__ == "Dropout":
        return modules.get(nn.Dropout)
    return next((modules[base] for base in cls.__mro__ if base in modules), None)


def is_sj_layer(module: nn.Module) -> bool:
    """Whether ``module`` is a SpikingJelly layer: a leaf of the trace, unsupported unless in :data:`LAYERS`
    (so the error names the module and the model's line, not a line inside SpikingJelly)."""
    return _sj_class(module, "layer") is not None


def sj_surrogate(fn: Any, where: str) -> Surrogate:
    """The IR surrogate of a SpikingJelly ``surrogate_function``."""
    cls = type(fn)
    if (cls.__module__ or "").startswith(f"{_PACKAGE}.surrogate") and cls.__name__ in _SURROGATES:
        if not getattr(fn, "spiking", True):
            raise GraphError(f"{where}: surrogate {cls.__name__} in non-spiking mode (spiking=False) emits "
                             "real values; sg.trace needs spikes")
        alpha = getattr(fn, "alpha", None)
        if isinstance(alpha, Tensor) or not isinstance(alpha, (int, float)):
            raise GraphError(f"{where}: surrogate {cls.__name__} needs a number alpha, got {alpha!r}")
        return _SURROGATES[cls.__name__](float(alpha))
    raise GraphError(f"{where}: surrogate {cls.__module__}.{cls.__name__} is not supported by sg.trace "
                     f"(supported: SpikingJelly's {', '.join(_SURROGATES)})")


def add_sj_neuron(g: Graph, x: Handle, module: nn.Module, name: str, where: str) -> Handle:
    """Add the IR node of SpikingJelly neuron ``module`` fed by ``x``."""
    op = sj_neuron_op(module, where)
    if getattr(module, "_neuron_precision", None) is not None:
        raise GraphError(f"{where}: explicit neuron precision (set_neuron_precision) is not supported by sg.trace")
    v_reset = module.v_reset
    # SpikingJelly's hyper-parameters are Python floats: kept in float64 (float32 would round 0.7)
    kw: dict[str, Any] = dict(v_threshold=np.float64(module.v_threshold),
                              reset="soft" if v_reset is None else "hard",
                              v_reset=np.float64(0.0 if v_reset is None else v_reset),
                              detach_reset=bool(module.detach_reset),
                              spike_grad=sj_surrogate(module.surrogate_function, where))
    if op != "sj_if":
        kw["decay_input"] = bool(module.decay_input)
    if op == "sj_lif":
        kw["tau"] = np.float64(module.tau)
    if op == "sj_plif":
        w = module.w
        kw["w"] = w.detach().cpu().clone()
        kw["learn_w"] = isinstance(w, nn.Parameter) and w.requires_grad
    return g.neuron(op, x, name=name, **kw)


def batch_norm_stats(module: nn.Module) -> str:
    """The ``stats`` of a traced batch norm: ``"sequence"`` if SpikingJelly runs it over all ``T * B`` rows."""
    return "sequence" if id(module) in _POOLED_NORMS.get() else "step"


@contextlib.contextmanager
def pooled_norms(ids: frozenset[int]) -> Iterator[None]:
    """While tracing: the batch norms (by ``id``) that :func:`batch_norm_stats` calls ``"sequence"``."""
    token = _POOLED_NORMS.set(_POOLED_NORMS.get() | ids)
    try:
        yield
    finally:
        _POOLED_NORMS.reset(token)


def sequence_norms(module: nn.Module) -> frozenset[int]:
    """Ids of the batch norms in ``module`` that SpikingJelly's forward runs over ``T * B`` rows."""
    return frozenset(_pooled_norms(module))


def _pooled_norms(module: nn.Module, pooled: bool = False) -> set[int]:
    """Ids of the batch norms in ``module`` that SpikingJelly's forward runs over ``T * B`` rows: multi-step
    ``layer.BatchNorm*`` and those under a ``SeqToANNContainer`` / stateless multi-step ``StepModeContainer``
    (``pooled``), not under a ``MultiStepContainer`` / stateful one (each step by itself)."""
    found = set()
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and (pooled or getattr(module, "step_mode", "s") == "m"):
        found.add(id(module))
    cls = _sj_class(module, "layer")
    kind = cls.__name__ if cls is not None else ""
    if kind == "StepModeContainer" and getattr(module, "step_mode", "s") == "m":
        kind = "MultiStepContainer" if module.stateful else "SeqToANNContainer"
    if kind in _CONTAINERS[:2]:
        pooled = kind == "SeqToANNContainer"
    for child in module.children():
        found |= _pooled_norms(child, pooled)
    return found


def is_multi_step(module: nn.Module) -> bool:
    """Whether ``module`` holds a SpikingJelly module in multi-step mode or a multi-step container (so its
    ``forward`` takes whole sequences ``(T, B, ...)``)."""
    return any(getattr(m, "step_mode", "s") == "m" or (_sj_class(m, "layer") is not None
                                                      and _sj_class(m, "layer").__name__ in _CONTAINERS[:2])
               for m in module.modules())


@contextlib.contextmanager
def per_step_view(module: nn.Module, examples: tuple[Any, ...]) -> Iterator[tuple[nn.Module, tuple[Any, ...]]]:
    """While tracing: a single-step SpikingJelly model as a plain per-step model (see the module
    docstring; a multi-step one is traced at the sequence level instead). The model is switched in
    place and restored on exit (a copy would have to copy the neurons' memories, which may be part of
    an autograd graph); models without SpikingJelly modules pass through unchanged."""
    if not any(_sj_class(m) is not None for m in module.modules()):
        yield module, examples
        return
    undo: list[Callable[[], None]] = []
    token = _POOLED_NORMS.set(frozenset(_pooled_norms(module)))
    try:
        _to_single_step(module, undo)
        cls = _sj_class(module, "layer")
        view = nn.Sequential(OrderedDict(module.named_children())) if cls is not None and \
            cls.__name__ in _CONTAINERS else module
        yield view, examples
    finally:
        _POOLED_NORMS.reset(token)
        for restore in reversed(undo):
            restore()


def _to_single_step(module: nn.Module, undo: list[Callable[[], None]]) -> None:
    for name, child in list(module.named_children()):
        _to_single_step(child, undo)
        cls = _sj_class(child, "layer")
        if cls is not None and cls.__name__ in _CONTAINERS:
            module._modules[name] = nn.Sequential(OrderedDict(child.named_children()))
            undo.append(lambda m=module, n=name, c=child: m._modules.__setitem__(n, c))
    mode = getattr(module, "step_mode", "s")
    if mode != "s":
        try:
            module.step_mode = "s"
        except (ValueError, AttributeError):  # a multi-step-only module: reported as unsupported by the walk
            return
        undo.append(lambda m=module, old=mode: setattr(m, "step_mode", old))
