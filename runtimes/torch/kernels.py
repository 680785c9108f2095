"""Neuron step kernels, derived from each model's declaration (:mod:`snngraph.models`).

A kernel takes the input and the previous state tensors positionally, the parameters and options
as keywords with the declared names, and returns ``(out, *new_state)`` in the declared state
order; recurrent models carry their spikes as the first state, so they return the new state
itself (``rleaky``: ``(spk, mem)``)::

    spk, mem = leaky_step(x, mem, beta=0.9, threshold=1.0, spike_grad=sg.surrogate.atan())

The maths is the model's step function run with :class:`~snngraph.runtimes.torch.ops.TorchOps`;
nothing here restates it. ``snngraph.nn`` modules and the compiled net's unfused loops run these.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from snngraph.ir.errors import GraphError
from snngraph.ir.model import NeuronModel, get_model, neuron_models
from snngraph.models.lapicque import lapicque_rc
from snngraph.runtimes.torch.kernels_common import RESET_MECHANISMS, Scalar, SpikeFn, clamp01, spike_fn
from snngraph.runtimes.torch.ops import TorchOps, pool_fn

__all__ = ["NEURON_KERNELS", "RESET_MECHANISMS", "NeuronKernel", "Scalar", "SpikeFn", "adaptive_leaky_step",
           "alpha_step", "clamp01", "derived_step", "integrate_fire_step", "kernel_for", "lapicque_rc", "lapicque_step",
           "leaky_integrator_step", "leaky_step", "rleaky_step", "rsynaptic_step", "synaptic_step"]


@dataclass(frozen=True, slots=True)
class NeuronKernel:
    """A neuron model's step function and the names of its state tensors.

    Attributes:
        state_names: the state, in the order ``step`` takes it after the input.
        step: ``step(x, *state, **parameters_and_options)``; returns ``(out, *new_state)``, except that
            for recurrent neurons (``output_is_state``) the spike output *is* the first state, so
            they return ``new_state`` itself: ``rleaky`` gives ``(spk, mem)``.
        output_is_state: whether the output doubles as the first state (``rleaky``, ``rsynaptic``).
    """

    state_names: tuple[str, ...]
    step: Callable[..., tuple[Tensor, ...]]
    output_is_state: bool = False

    def split(self, result: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """``(out, new_state)`` from what ``step`` returned, ``new_state`` in ``state_names`` order."""
        return result[0], tuple(result) if self.output_is_state else tuple(result[1:])


def derived_step(model: NeuronModel) -> Callable[..., tuple[Tensor, ...]]:
    """The torch step kernel of ``model``: its step function over tensors, with a real signature."""
    names, defaults, options = model.state_ports, model.defaults(), model.options
    allowed, required = model.keywords, [k for k, s in model.params.items() if s.default is None]

    def step(x: Tensor, *state: Tensor, spike_grad: SpikeFn | None = None,
             recurrent: Callable[[Tensor], Tensor] | None = None,
             state_quant: Callable[[Tensor], Tensor] | None = None,
             project: Callable[[Tensor], Tensor] | None = None, pool: str = "none", pool_size: Any = None,
             **kw: Any) -> tuple[Tensor, ...]:
        if len(state) != len(names) or not kw.keys() <= allowed:
            raise GraphError(f"{model.name}: takes x, {', '.join(names)} and keywords {sorted(allowed)}; got "
                             f"{1 + len(state)} tensors and {sorted(kw)}")
        p = defaults | kw
        for key in (*required, *(model.heads.dims if model.heads is not None else ())):
            if key not in p:
                raise GraphError(f"{model.name}: {key} is required")
        for key, option in options.items():
            if p[key] not in option.choices:
                raise GraphError(f"{model.name}: {key} must be one of {option.choices}, got {p[key]!r}")
        if state_quant is not None and state_quant is not False and not model.state_quant:
            raise GraphError(f"{model.name}: takes no state_quant")
        if (pool != "none" or pool_size is not None) and not model.spike_pool:
            raise GraphError(f"{model.name}: takes no pool")
        ops = TorchOps(spike_fn(spike_grad) if model.spiking else None, recurrent, state_quant or None, project,
                       pool_fn(pool, pool_size))
        out, new = model.step(ops, x, dict(zip(names, state, strict=True)), p)
        return (out, *(new[k] for k in model.state))

    P = inspect.Parameter
    params = [P("x", P.POSITIONAL_OR_KEYWORD), *(P(n, P.POSITIONAL_OR_KEYWORD) for n in names)]
    params += [P("recurrent", P.KEYWORD_ONLY)] if model.recurrent or (model.cell and model.heads is None) else []
    params += [P("project", P.KEYWORD_ONLY, default=None)] if model.cell else []
    params += [P(k, P.KEYWORD_ONLY) for k in model.heads.dims] if model.heads is not None else []
    params += [P(k, P.KEYWORD_ONLY, **({} if s.default is None else {"default": s.default}))
               for k, s in model.params.items()]
    params += [P("spike_grad", P.KEYWORD_ONLY, default=None)] if model.spiking else []
    params += [P("state_quant", P.KEYWORD_ONLY, default=None)] if model.state_quant else []
    params += [P(k, P.KEYWORD_ONLY, default=o.default) for k, o in options.items()]
    params += [P("pool", P.KEYWORD_ONLY, default="none"), P("pool_size", P.KEYWORD_ONLY, default=None)] \
        if model.spike_pool else []
    step.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    step.__name__ = step.__qualname__ = f"{model.name}_step"
    step.__doc__ = f"One step of ``{model.name}``, derived from its declaration.\n\n{model.doc}"
    return step


_KERNELS: dict[str, tuple[NeuronModel, NeuronKernel]] = {}


def _kernel(model: NeuronModel) -> NeuronKernel:
    """The model's kernel, built once per model object (a plain dict by name, not ``functools.cache``,
    so that dynamo traces through it without hashing the model)."""
    entry = _KERNELS.get(model.name)
    if entry is None or entry[0] is not model:
        entry = _KERNELS[model.name] = (model, NeuronKernel(model.state_ports, derived_step(model),
                                                            output_is_state=model.recurrent))
    return entry[1]


def kernel_for(op: str) -> NeuronKernel:
    """The kernel of the registered model ``op`` (built-in or user-defined)."""
    return _kernel(get_model(op))


NEURON_KERNELS: dict[str, NeuronKernel] = {name: _kernel(m) for name, m in neuron_models().items() if m.builtin}
"""Built-in model name -> kernel."""

leaky_step = NEURON_KERNELS["leaky"].step
synaptic_step = NEURON_KERNELS["synaptic"].step
alpha_step = NEURON_KERNELS["alpha"].step
lapicque_step = NEURON_KERNELS["lapicque"].step
rleaky_step = NEURON_KERNELS["rleaky"].step
rsynaptic_step = NEURON_KERNELS["rsynaptic"].step
integrate_fire_step = NEURON_KERNELS["integrate_fire"].step
leaky_integrator_step = NEURON_KERNELS["leaky_integrator"].step
adaptive_leaky_step = NEURON_KERNELS["adaptive_leaky"].step
