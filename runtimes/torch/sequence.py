"""Running one neuron population over a whole input sequence with its step kernel."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from snngraph.ir.node import Node


def run_neuron_sequence(node: Node, x: Tensor, kwargs: dict[str, Any], state: tuple[Tensor, ...],
                        tensors: dict[str, Tensor] | None = None, scratch: bool = False) -> dict[str, Tensor]:
    """Loop the node's step kernel over ``x`` of shape (T, B, ...); every port as (T, B, ...).

    Fused nodes (``fuse_state_updates``) run as one scan kernel instead; ``tensors`` holds the
    node's parameters by field name (recurrent weights). ``scratch``: a fused Leaky/IF/RLeaky/Synaptic
    may overwrite ``x`` with its state, and only its ``spk`` port is needed (``lower.scratch_inputs``)."""
    from snngraph.runtimes.torch.kernels import kernel_for

    if getattr(node, "fused", False):
        return SCAN_RUNNERS[node.op](node, x, kwargs, state, tensors or {}, scratch)
    step = kernel_for(node.op).step
    ports = node.ports
    index = {p: i for i, p in enumerate(ports)}
    state_at = [index[p] for p in node.state_ports]
    outs: list[list[Tensor]] = [[] for _ in ports]
    for x_t in x.unbind(0):  # one UnbindBackward (a stack), not T SelectBackwards each zero-filling (T, B, ...)
        result = step(x_t, *state, **kwargs)[-len(ports):]
        for i, v in enumerate(result):
            outs[i].append(v)
        state = tuple(result[i] for i in state_at)
    return {p: torch.stack(seq) for p, seq in zip(ports, outs, strict=True)}


def _run_fused(node: Node, x: Tensor, kwargs: dict[str, Any], state: tuple[Tensor, ...],
               tensors: dict[str, Tensor], scratch: bool = False) -> dict[str, Tensor]:
    """A fused Leaky / IF / LI population: one scan kernel over all T steps."""
    from snngraph.runtimes.torch.scan import ScanConfig, leaky_scan

    one = x.new_ones(())
    beta = kwargs.get("beta", one)
    if node.op == "leaky_integrator":
        _, mem = leaky_scan(x, state[0], beta, one, one, ScanConfig(spiking=False))
        return {"mem": mem}
    cfg = ScanConfig(kwargs["reset_mechanism"], kwargs["reset_delay"], kwargs["spike_grad"], True, scratch)
    spk, mem = leaky_scan(x, state[0], beta, kwargs["threshold"], kwargs["graded_spikes_factor"], cfg)
    return {"spk": spk} if scratch else {"spk": spk, "mem": mem}


def _run_fused_recurrent(node: Node, x: Tensor, kwargs: dict[str, Any], state: tuple[Tensor, ...],
                         tensors: dict[str, Tensor], scratch: bool = False) -> dict[str, Tensor]:
    """A fused RLeaky population: one recurrent scan kernel over all T steps."""
    from snngraph.runtimes.torch.scan_recurrent import RecurrentScanConfig, recurrent_leaky_scan

    cfg = RecurrentScanConfig(kwargs["reset_mechanism"], kwargs["spike_grad"], node.all_to_all, scratch)
    weight = tensors["recurrent_weight"] if node.all_to_all else tensors["V"]
    spk, mem = recurrent_leaky_scan(x, state[0], state[1], kwargs["beta"], kwargs["threshold"],
                                    kwargs["graded_spikes_factor"], weight, tensors.get("recurrent_bias"), cfg)
    return {"spk": spk} if scratch else {"spk": spk, "mem": mem}


def _run_fused_synaptic(node: Node, x: Tensor, kwargs: dict[str, Any], state: tuple[Tensor, ...],
                        tensors: dict[str, Tensor], scratch: bool = False) -> dict[str, Tensor]:
    """A fused Synaptic population: one scan kernel over all T steps."""
    from snngraph.runtimes.torch.scan_synaptic import SynapticScanConfig, synaptic_scan

    cfg = SynapticScanConfig(kwargs["reset_mechanism"], kwargs["spike_grad"], scratch)
    spk, syn, mem = synaptic_scan(x, state[0], state[1], kwargs["alpha"], kwargs["beta"], kwargs["threshold"],
                                  kwargs["graded_spikes_factor"], cfg)
    return {"spk": spk} if scratch else {"spk": spk, "syn": syn, "mem": mem}


def _run_fused_sj(node: Node, x: Tensor, kwargs: dict[str, Any], state: tuple[Tensor, ...],
                  tensors: dict[str, Tensor], scratch: bool = False) -> dict[str, Tensor]:
    """A fused SpikingJelly IF / LIF population: one scan kernel over all T steps."""
    from snngraph.runtimes.torch.scan_sj import SjConfig, sj_scan

    lif = node.op == "sj_lif"
    cfg = SjConfig(lif, kwargs["reset"] == "soft", kwargs["detach_reset"], kwargs.get("decay_input", True),
                   kwargs["spike_grad"])
    tau = kwargs["tau"] if lif else x.new_ones(())
    spk, v = sj_scan(x, state[0], tau, kwargs["v_threshold"], kwargs["v_reset"], cfg)
    return {"spk": spk} if scratch else {"spk": spk, "v": v}


SCAN_RUNNERS = {"leaky": _run_fused, "integrate_fire": _run_fused, "leaky_integrator": _run_fused,
                "rleaky": _run_fused_recurrent, "synaptic": _run_fused_synaptic,
                "sj_if": _run_fused_sj, "sj_lif": _run_fused_sj}
"""Model name -> its scan; the models (and options) are those of ``capabilities.SCANS``."""
