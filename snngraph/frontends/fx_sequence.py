"""Whole-sequence neurons (snnTorch 1.0.0's ``StateLeaky``, ``LinearLeaky``, ``LeakyParallel``,
``AssociativeLeaky``) as IR nodes.

These modules take the whole sequence ``(T, B, ...)`` at once, so a model using them is run on
sequences, and ``sg.trace`` takes an example *sequence* for it; the per-step graph gets the
per-step shape. Each module becomes its declared model's node (``state_leaky``, ``leaky_parallel``),
preceded by a ``linear`` node for the layers fused into it (``LinearLeaky.linear``,
``LeakyParallel.rnn``'s input weights); ``AssociativeLeaky`` becomes an ``associative_leaky`` node
holding its projections. ``kernel_truncation_steps`` is a composition of existing nodes (see
:func:`_truncated`). snnTorch and ``sg.nn``
modules are matched by class name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from snngraph.frontends.fx_neurons import SEQUENCE_NEURONS, _learn, _library, _value, as_surrogate
from snngraph.frontends.fx_ops import NeuronOut
from snngraph.ir.errors import GraphError

if TYPE_CHECKING:
    from snngraph.ir.graph import Graph, Handle

def sequence_class(module: nn.Module) -> str | None:
    """The whole-sequence neuron class ``module`` is (or subclasses), or ``None``."""
    for cls in type(module).__mro__:
        if cls.__name__ in SEQUENCE_NEURONS and _library(cls) is not None:
            return cls.__name__
    return None


def has_sequence_neurons(module: nn.Module) -> bool:
    """Whether ``module`` runs a whole-sequence neuron (so it is called on ``(T, B, ...)`` sequences)."""
    return any(sequence_class(m) is not None for m in module.modules())


def _firing(module: nn.Module, where: str) -> dict[str, Any]:
    return dict(threshold=_value(module, "threshold"), learn_threshold=_learn(module, "threshold"),
                graded_spikes_factor=_value(module, "graded_spikes_factor"),
                learn_graded_spikes_factor=_learn(module, "graded_spikes_factor"),
                spike_grad=as_surrogate(module.spike_grad, where))


def _linear(g: Graph, x: Handle, weight: Tensor, bias: Tensor | None, name: str) -> Handle:
    return g.linear(x, weight.shape[0], bias=bias is not None, weight=weight.detach().cpu().clone(),
                    bias_value=None if bias is None else bias.detach().cpu().clone(), name=name)


def sequence_param_keys(module: nn.Module, name: str) -> dict[str, str]:
    """``"<node>.<param>"`` -> the key under ``module`` of the parameters :func:`add_sequence_neuron` puts in
    other nodes than the neuron (``LinearLeaky.linear``, ``LeakyParallel.rnn``'s input weights and hidden
    bias), or under another name (``LeakyParallel``'s hidden matrix: the neuron's dense ``recurrent.weight``,
    or the vector ``V`` of its diagonal, see ``runtimes/torch/state_keys.py``)."""
    kind = sequence_class(module)
    if kind == "LinearLeaky":
        return {f"{name}_linear.weight": "linear.weight", f"{name}_linear.bias": "linear.bias"}
    if kind == "LeakyParallel":
        return {f"{name}_input.weight": "rnn.weight_ih_l0", f"{name}_input.bias": "rnn.bias_ih_l0",
                f"{name}.bias_hh": "rnn.bias_hh_l0",
                f"{name}.recurrent.weight" if _dense_hidden(module.rnn) else f"{name}.V": "rnn.weight_hh_l0"}
    return {}


def add_sequence_neuron(g: Graph, x: Handle, module: nn.Module, name: str, where: str,
                        frozen: dict[str, list[str]]) -> Any:
    """Add the nodes of whole-sequence neuron ``module`` fed by ``x``; return what its ``forward`` returns.

    The fused linear nodes are named ``<name>_linear`` / ``<name>_input`` (their parameters are not the
    module's own attributes, so they keep their node names); ``frozen`` receives their untrained parameters."""
    kind = sequence_class(module)
    if getattr(module, "state_quant", False):
        raise GraphError(f"{where}: state_quant is not supported by sg.trace")
    if kind == "AssociativeLeaky":
        return _associative(g, x, module, name, where, frozen)
    if kind == "LeakyParallel":
        return _leaky_parallel(g, x, module, name, where, frozen)
    if kind == "LinearLeaky":
        lin = module.linear
        x = _linear(g, x, lin.weight, lin.bias, f"{name}_linear")
        frozen[x.name] = [k for k, v in (("weight", lin.weight), ("bias", lin.bias))
                          if v is not None and not v.requires_grad]
    tau = _value(module, "tau")
    tau = tau.reshape(-1) if tau.dim() else tau
    steps = module.kernel_truncation_steps
    if steps is None:
        h = g.state_leaky(x, tau, learn_tau=_learn(module, "tau"), **_firing(module, where), name=name)
    else:
        h = _truncated(g, x, module, tau, steps, name, where)
    return NeuronOut(h, ("spk", "mem")) if module.output else h.mem


def _threshold(g: Graph, v: Handle, module: nn.Module, name: str, where: str) -> Handle:
    """Spikes of ``v`` as ``fire`` makes them: a ``leaky`` with no leak and no reset (its ``mem`` is ``v``)."""
    return g.leaky(v, beta=0.0, reset_mechanism="none", **_firing(module, where), name=name)


def _truncated(g: Graph, x: Handle, module: nn.Module, tau: Tensor, steps: int, name: str, where: str) -> Handle:
    """``kernel_truncation_steps=K``: ``U_K[t] = U[t] - exp(-K/tau) U[t-K]``
    (:func:`snngraph.models.state_leaky.truncated`) from the full-window ``state_leaky``, a ``K``-step
    ``delay`` and a constant ``scale``."""
    if _learn(module, "tau"):
        raise GraphError(f"{where}: kernel_truncation_steps with learn_beta=True is not supported by sg.trace "
                         "(the window's exp(-K/tau) would be a constant in the graph)")
    full = g.state_leaky(x, tau, name=f"{name}_full")
    older = g.scale(g.delay(full.mem, steps, name=f"{name}_window"), torch.exp(-float(steps) / tau),
                    name=f"{name}_tail")
    return _threshold(g, g.sub(full.mem, older, name=f"{name}_mem"), module, name, where)


def _associative(g: Graph, x: Handle, module: nn.Module, name: str, where: str,
                 frozen: dict[str, list[str]]) -> Handle:
    """``AssociativeLeaky`` as its declared model's node (``associative_leaky``), holding the module's
    projections ``to_v``, ``to_k``, ``to_alpha`` and ``to_q`` (frozen where the module's are)."""
    kw: dict[str, Any] = {}
    heads = [h for h in ("to_v", "to_k", "to_alpha", "to_q") if getattr(module, h, None) is not None]
    biases = {getattr(module, h).bias is not None for h in heads}
    if len(biases) != 1:
        raise GraphError(f"{where}: the projections must all have a bias or all have none")
    for head in heads:
        layer = getattr(module, head)
        for part in ("weight", "bias"):
            value = getattr(layer, part)
            if value is not None:
                kw[f"{head}_{part}"] = value.detach().cpu().clone()
    firing = _firing(module, where)
    h = g.associative_leaky(x, use_q_projection=module.to_q is not None, bias=biases.pop(), name=name, **firing,
                            **kw)
    frozen[h.name] = [f"{head}_{part}" for head in heads for part in ("weight", "bias")
                      if getattr(getattr(module, head), part) is not None
                      and not getattr(getattr(module, head), part).requires_grad]
    return h


def _dense_hidden(rnn: nn.Module) -> bool:
    """Whether a ``LeakyParallel``'s hidden matrix is dense (snnTorch's ``weight_hh_enable=True`` leaves it
    so; by default snnTorch masks it to its diagonal, a one-to-one ``V`` here)."""
    w_hh = rnn.weight_hh_l0.detach()
    return bool((w_hh - torch.diag(torch.diagonal(w_hh))).any())


def _leaky_parallel(g: Graph, x: Handle, module: nn.Module, name: str, where: str,
                    frozen: dict[str, list[str]]) -> Handle:
    rnn = module.rnn
    x = _linear(g, x, rnn.weight_ih_l0, rnn.bias_ih_l0 if rnn.bias else None, f"{name}_input")
    frozen[x.name] = [k for k, v in (("weight", rnn.weight_ih_l0), ("bias", getattr(rnn, "bias_ih_l0", None)))
                      if v is not None and not v.requires_grad]
    w_hh = rnn.weight_hh_l0.detach().cpu().clone()
    learn = rnn.weight_hh_l0.requires_grad
    if _dense_hidden(rnn):
        rec: dict[str, Any] = dict(all_to_all=True, recurrent_weight=w_hh, recurrent_bias=False)
    else:
        rec = dict(all_to_all=False, V=torch.diagonal(w_hh).clone())
    bias = rnn.bias_hh_l0.detach().cpu().clone() if rnn.bias else 0.0
    learn_bias = bool(rnn.bias and rnn.bias_hh_l0.requires_grad)
    return g.leaky_parallel(x, bias_hh=bias, learn_bias_hh=learn_bias, learn_recurrent=learn, **rec,
                            **_firing(module, where), name=name)
