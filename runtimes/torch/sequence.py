"""Running one neuron population over a whole input sequence with its step kernel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from snngraph.ir.model import NeuronModel
from snngraph.ir.node import Node
from snngraph.runtimes.torch.triton import use_triton

if TYPE_CHECKING:
    from snngraph.runtimes.torch.derived_scan import Description


def run_neuron_sequence(node: Node, x: Tensor, kwargs: dict[str, Any], state: tuple[Tensor, ...],
                        tensors: dict[str, Tensor] | None = None, scratch: bool = False,
                        derived: Description | None = None, kernels: str = "torch") -> dict[str, Tensor]:
    """Loop the node's step kernel over ``x`` of shape (T, B, ...); every port as (T, B, ...).

    Fused nodes (``fuse_state_updates``) run as one scan kernel instead; ``tensors`` holds the
    node's parameters by field name (recurrent weights). ``scratch``: a fused Leaky/IF/RLeaky/Synaptic
    may overwrite ``x`` with its state, and only its ``spk`` port is needed (``lower.scratch_inputs``).
    ``derived``: the node's ``derived_scan.describe``; under compilation the loop then runs as that op.
    ``kernels`` (``sg.compile``'s): whether a fused scan runs as Triton kernels (``triton.use_triton``)."""
    if getattr(node, "fused", False):
        return SCAN_RUNNERS[node.op](node, x, kwargs, state, tensors or {}, scratch, kernels)
    if derived is not None and torch.compiler.is_compiling():  # one opaque op: T and B stay symbolic
        from snngraph.runtimes.torch.derived_scan import derived_scan

        outs = derived_scan(derived.spec, x, state, derived.tensors(tensors or {}))
        return dict(zip(node.model.ports, outs, strict=True))
    return step_over_time(node.model, x, state, kwargs)


def step_over_time(model: NeuronModel, x: Tensor, state: tuple[Tensor, ...],
                   kwargs: dict[str, Any]) -> dict[str, Tensor]:
    """The model's derived step looped over the T steps of ``x``; every port stacked as (T, B, ...)."""
    from snngraph.runtimes.torch.kernels import kernel_for

    step, ports = kernel_for(model.name).step, model.ports
    if model.cell is not None:  # the input projection over all T*B rows at once
        from snngraph.runtimes.torch.cell import projected

        x, kwargs = projected(x, kwargs)
    state_at = [ports.index(p) for p in model.state_ports]
    outs: list[list[Tensor]] = [[] for _ in ports]
    # unbind, not x[t]: the backward of T selects would write T zero-filled copies of the whole sequence
    for x_t in x.unbind(0):
        result = step(x_t, *state, **kwargs)[-len(ports):]
        for i, v in enumerate(result):
            outs[i].append(v)
        state = tuple(result[i] for i in state_at)
    return {p: torch.stack(seq) for p, seq in zip(ports, outs, strict=True)}


def _run_fused(node: Node, x: Tensor, kwargs: dict[str, Any], state: tuple[Tensor, ...],
               tensors: dict[str, Tensor], scratch: bool = False, kernels: str = "torch") -> dict[str, Tensor]:
    """A fused Leaky / IF / LI population: one scan kernel over all T steps."""
    from snngraph.runtimes.torch.scan import ScanConfig, leaky_scan

    if kernels != "torch" and use_triton(kernels, x, kwargs.get("spike_grad")):
        from snngraph.runtimes.torch.triton.ops import leaky_scan
    one = x.new_ones(())
    beta = kwargs.get("beta", one)
    if node.op == "leaky_integrator":
        _, mem = leaky_scan(x, state[0], beta, one, one, ScanConfig(spiking=False))
        return {"mem": mem}
    cfg = ScanConfig(kwargs["reset_mechanism"], kwargs["reset_delay"], kwargs["spike_grad"], True, scratch)
    spk, mem = leaky_scan(x, state[0], beta, kwargs["threshold"], kwargs["graded_spikes_factor"], cfg)
    return {"spk": spk} if scratch else {"spk": spk, "mem": mem}


def _run_fused_state_leaky(node: Node, x: Tensor, kwargs: dict[str, Any], state: tuple[Tensor, ...],
                           tensors: dict[str, Tensor], scratch: bool = False, kernels: str = "torch"
                           ) -> dict[str, Tensor]:
    """A fused StateLeaky population: Leaky's scan with decay ``exp(-1/tau)`` and no reset."""
    from snngraph.runtimes.torch.scan import ScanConfig, leaky_scan

    if kernels != "torch" and use_triton(kernels, x, kwargs.get("spike_grad")):
        from snngraph.runtimes.torch.triton.ops import leaky_scan

    cfg = ScanConfig("none", True, kwargs["spike_grad"], True, scratch)
    spk, mem = leaky_scan(x, state[0], torch.exp(-1.0 / kwargs["tau"]), kwargs["threshold"],
                          kwargs["graded_spikes_factor"], cfg)
    return {"spk": spk} if scratch else {"spk": spk, "mem": mem}


def _run_fused_recurrent(node: Node, x: Tensor, kwargs: dict[str, Any], state: tuple[Tensor, ...],
                         tensors: dict[str, Tensor], scratch: bool = False, kernels: str = "torch"
                         ) -> dict[str, Tensor]:
    """A fused RLeaky population: one recurrent scan kernel over all T steps."""
    from snngraph.runtimes.torch.scan_recurrent import RecurrentScanConfig, recurrent_leaky_scan

    if kernels != "torch" and use_triton(kernels, x, kwargs["spike_grad"]):
        from snngraph.runtimes.torch.triton.ops import recurrent_leaky_scan

    cfg = RecurrentScanConfig(kwargs["reset_mechanism"], kwargs["spike_grad"], node.all_to_all, scratch)
    weight = tensors["recurrent_weight"] if node.all_to_all else tensors["V"]
    spk, mem = recurrent_leaky_scan(x, state[0], state[1], kwargs["beta"], kwargs["threshold"],
                                    kwargs["graded_spikes_factor"], weight, tensors.get("recurrent_bias"), cfg)
    return {"spk": spk} if scratch else {"spk": spk, "mem": mem}


def _run_fused_synaptic(node: Node, x: Tensor, kwargs: dict[str, Any], state: tuple[Tensor, ...],
                        tensors: dict[str, Tensor], scratch: bool = False, kernels: str = "torch"
                        ) -> dict[str, Tensor]:
    """A fused Synaptic population: one scan kernel over all T steps."""
    from snngraph.runtimes.torch.scan_synaptic import SynapticScanConfig, synaptic_scan

    if kernels != "torch" and use_triton(kernels, x, kwargs["spike_grad"]):
        from snngraph.runtimes.torch.triton.ops import synaptic_scan

    cfg = SynapticScanConfig(kwargs["reset_mechanism"], kwargs["spike_grad"], scratch)
    spk, syn, mem = synaptic_scan(x, state[0], state[1], kwargs["alpha"], kwargs["beta"], kwargs["threshold"],
                                  kwargs["graded_spikes_factor"], cfg)
    return {"spk": spk} if scratch else {"spk": spk, "syn": syn, "mem": mem}


def _run_fused_sj(node: Node, x: Tensor, kwargs: dict[str, Any], state: tuple[Tensor, ...],
                  tensors: dict[str, Tensor], scratch: bool = False, kernels: str = "torch") -> dict[str, Tensor]:
    """A fused SpikingJelly IF / LIF population: one scan kernel over all T steps (under tracing the custom
    op ``snngraph::sj_scan``; as Triton kernels, ``snngraph::triton_sj_scan``)."""
    from snngraph.runtimes.torch.scan_sj import SjConfig, sj_scan

    if kernels != "torch" and use_triton(kernels, x, kwargs["spike_grad"]):
        from snngraph.runtimes.torch.triton.ops import sj_scan

    lif = node.op == "sj_lif"
    cfg = SjConfig(lif, kwargs["reset"] == "soft", kwargs["detach_reset"], kwargs.get("decay_input", True),
                   kwargs["spike_grad"], scratch)
    tau = kwargs["tau"] if lif else x.new_ones(())
    spk, v = sj_scan(x, state[0], tau, kwargs["v_threshold"], kwargs["v_reset"], cfg)
    return {"spk": spk} if scratch else {"spk": spk, "v": v}


def _run_fused_norse_lif(node: Node, x: Tensor, kwargs: dict[str, Any], state: tuple[Tensor, ...],
                         tensors: dict[str, Tensor], scratch: bool = False, kernels: str = "torch"
                         ) -> dict[str, Tensor]:
    """A fused Norse LIFCell / LICell / LIFRecurrentCell / LIFBoxCell population: one scan over all T steps
    (under tracing the custom op ``snngraph::norse_lif_scan``), or the Triton kernels
    (``snngraph::triton_norse_lif_scan``) where ``use_triton`` says so."""
    from snngraph.runtimes.torch.scan_norse import NorseLifConfig, norse_lif_scan

    spiking, recurrent, box = node.op != "norse_li", node.op == "norse_lif_recurrent", node.op == "norse_lif_box"
    kind = ("dense" if node.all_to_all else "diagonal") if recurrent else None
    cfg = NorseLifConfig(float(kwargs["dt"]), kwargs["spike_grad"] if spiking else None, scratch, kind, box,
                         box and kwargs["reset_method"] == "subtract")
    if kernels != "torch" and use_triton(kernels, x, cfg.surrogate):  # (LICell: no surrogate)
        from snngraph.runtimes.torch.triton.ops import norse_lif_scan
    one = x.new_ones(())
    spk0, v0, i0 = state if recurrent else (None, state[0], one) if box else (None, *state)
    weight = (tensors["recurrent_weight"] if node.all_to_all else tensors["V"]) if recurrent else None
    spk, v, i = norse_lif_scan(x, v0, i0, kwargs.get("tau_syn_inv", one), kwargs["tau_mem_inv"], kwargs["v_leak"],
                               kwargs.get("v_th", one), kwargs.get("v_reset", one), cfg, spk0, weight,
                               tensors.get("recurrent_bias") if recurrent else None)
    if not spiking:
        return {"v": v, "i": i}
    if scratch:
        return {"spk": spk}
    return {"spk": spk, "v": v} if box else {"spk": spk, "v": v, "i": i}


def _run_fused_lstm(node: Node, x: Tensor, kwargs: dict[str, Any], state: tuple[Tensor, ...],
                    tensors: dict[str, Tensor], scratch: bool = False, kernels: str = "torch") -> dict[str, Tensor]:
    """A fused SLSTM / SConv2dLSTM population: the input projection over all T*B rows, then one scan
    (its own projection is private to it, so the scan writes its gates there; as Triton kernels, without
    pooled spikes, ``snngraph::triton_lstm_scan``)."""
    from snngraph.runtimes.torch.cell import projected
    from snngraph.runtimes.torch.scan_lstm import lstm_config, lstm_scan

    z, _ = projected(x, kwargs)
    cfg, weight, bias = lstm_config(node, tensors, kwargs["spike_grad"])
    if kernels != "torch" and cfg.pool == "none" and use_triton(kernels, z, kwargs["spike_grad"]):
        from snngraph.runtimes.torch.triton.ops import lstm_scan
    spk, syn, mem = lstm_scan(z, state[0], state[1], kwargs["threshold"], kwargs["graded_spikes_factor"], weight,
                              bias, cfg)
    return {"spk": spk, "syn": syn, "mem": mem}



def _run_fused_associative(node: Node, x: Tensor, kwargs: dict[str, Any], state: tuple[Tensor, ...],
                           tensors: dict[str, Tensor], scratch: bool = False, kernels: str = "torch"
                           ) -> dict[str, Tensor]:
    """A fused AssociativeLeaky population: its projections, spikes and readout over all T*B rows, the state's
    recurrence as one op (``scan_associative``; torch on every device)."""
    from snngraph.runtimes.torch.cell import projected
    from snngraph.runtimes.torch.scan_associative import associative_scan

    z, kw = projected(x, kwargs)
    spk, states = associative_scan(z, state[0], kw)
    return {"spk": spk, "S": states}


SCAN_RUNNERS = {"leaky": _run_fused, "integrate_fire": _run_fused, "leaky_integrator": _run_fused,
                "rleaky": _run_fused_recurrent, "synaptic": _run_fused_synaptic, "state_leaky": _run_fused_state_leaky,
                "sj_if": _run_fused_sj, "sj_lif": _run_fused_sj, "slstm": _run_fused_lstm,
                "sconv2d_lstm": _run_fused_lstm, "norse_lif": _run_fused_norse_lif,
                "norse_li": _run_fused_norse_lif, "norse_lif_recurrent": _run_fused_norse_lif,
                "norse_lif_box": _run_fused_norse_lif, "associative_leaky": _run_fused_associative}
"""Model name -> its scan; the models (and options) are those of ``capabilities.SCANS``."""
