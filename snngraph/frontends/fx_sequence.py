"""Whole-sequence neurons (snnTorch 1.0.0's ``StateLeaky``, ``LinearLeaky``, ``LeakyParallel``) as IR nodes.

These modules take the whole sequence ``(T, B, ...)`` at once, so a model using them is run on
sequences, and ``sg.trace`` takes an example *sequence* for it; the per-step graph gets the
per-step shape. Each module becomes its declared model's node (``state_leaky``, ``leaky_parallel``),
preceded by a ``linear`` node for the layers fused into it (``LinearLeaky.linear``,
``LeakyParallel.rnn``'s input weights). snnTorch and ``sg.nn`` modules are matched by class name.
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


def add_sequence_neuron(g: Graph, x: Handle, module: nn.Module, name: str, where: str,
                        frozen: dict[str, list[str]]) -> Any:
    """Add the nodes of whole-sequence neuron ``module`` fed by ``x``; return what its ``forward`` returns.

    The fused linear nodes are named ``<name>_linear`` / ``<name>_input`` (their parameters are not the
    module's own attributes, so they keep their node names); ``frozen`` receives their untrained parameters."""
    kind = sequence_class(module)
    if kind == "AssociativeLeaky":
        raise GraphError(f"{where}: AssociativeLeaky's matrix state has no per-step graph form yet; run it "
                         "as sg.nn.AssociativeLeaky")
    if kind == "LeakyParallel":
        return _leaky_parallel(g, x, module, name, where, frozen)
    if getattr(module, "state_quant", False):
        raise GraphError(f"{where}: state_quant is not supported by sg.trace")
    if module.kernel_truncation_steps is not None:
        raise GraphError(f"{where}: kernel_truncation_steps={module.kernel_truncation_steps} has no per-step graph "
                         "form yet (the window depends on the sequence); run it as sg.nn." + kind)
    if kind == "LinearLeaky":
        lin = module.linear
        x = _linear(g, x, lin.weight, lin.bias, f"{name}_linear")
        frozen[x.name] = [k for k, v in (("weight", lin.weight), ("bias", lin.bias))
                          if v is not None and not v.requires_grad]
    tau = _value(module, "tau")
    h = g.state_leaky(x, tau.reshape(-1) if tau.dim() else tau, learn_tau=_learn(module, "tau"),
                      **_firing(module, where), name=name)
    return NeuronOut(h, ("spk", "mem")) if module.output else h.mem


def _leaky_parallel(g: Graph, x: Handle, module: nn.Module, name: str, where: str,
                    frozen: dict[str, list[str]]) -> Handle:
    rnn = module.rnn
    x = _linear(g, x, rnn.weight_ih_l0, rnn.bias_ih_l0 if rnn.bias else None, f"{name}_input")
    frozen[x.name] = [k for k, v in (("weight", rnn.weight_ih_l0), ("bias", getattr(rnn, "bias_ih_l0", None)))
                      if v is not None and not v.requires_grad]
    w_hh = rnn.weight_hh_l0.detach().cpu().clone()
    learn = rnn.weight_hh_l0.requires_grad
    off_diagonal = w_hh - torch.diag(torch.diagonal(w_hh))
    if getattr(module, "diagonal", None) is False or bool(off_diagonal.any()):  # snnTorch: weight_hh_enable=True
        rec: dict[str, Any] = dict(all_to_all=True, recurrent_weight=w_hh, recurrent_bias=False)
    else:
        rec = dict(all_to_all=False, V=torch.diagonal(w_hh).clone())
    bias = rnn.bias_hh_l0.detach().cpu().clone() if rnn.bias else 0.0
    learn_bias = bool(rnn.bias and rnn.bias_hh_l0.requires_grad)
    return g.leaky_parallel(x, bias_hh=bias, learn_bias_hh=learn_bias, learn_recurrent=learn, **rec,
                            **_firing(module, where), name=name)
