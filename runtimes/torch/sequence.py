"""Running one neuron population over a whole input sequence with its step kernel."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from snngraph.ir.node import Node


def run_neuron_sequence(node: Node, x: Tensor, kwargs: dict[str, Any], state: tuple[Tensor, ...]) -> dict[str, Tensor]:
    """Loop the node's step kernel over ``x`` of shape (T, B, ...); every port as (T, B, ...)."""
    from snngraph.runtimes.torch.kernels import NEURON_KERNELS

    if getattr(node, "fused", False):
        return _run_fused(node, x, kwargs, state)
    step = NEURON_KERNELS[node.op].step
    ports = node.ports
    index = {p: i for i, p in enumerate(ports)}
    state_at = [index[p] for p in node.state_ports]
    outs: list[list[Tensor]] = [[] for _ in ports]
    for t in range(x.shape[0]):
        result = step(x[t], *state, **kwargs)[-len(ports):]
        for i, v in enumerate(result):
            outs[i].append(v)
        state = tuple(result[i] for i in state_at)
    return {p: torch.stack(seq) for p, seq in zip(ports, outs, strict=True)}


def _run_fused(node: Node, x: Tensor, kwargs: dict[str, Any], state: tuple[Tensor, ...]) -> dict[str, Tensor]:
    """A fused Leaky / IF / LI population: one scan kernel over all T steps."""
    from snngraph.runtimes.torch.scan import ScanConfig, leaky_scan

    one = x.new_ones(())
    beta = kwargs.get("beta", one)
    if node.op == "leaky_integrator":
        _, mem = leaky_scan(x, state[0], beta, one, one, ScanConfig(spiking=False))
        return {"mem": mem}
    cfg = ScanConfig(kwargs["reset_mechanism"], kwargs["reset_delay"], kwargs["spike_grad"], True)
    spk, mem = leaky_scan(x, state[0], beta, kwargs["threshold"], kwargs["graded_spikes_factor"], cfg)
    return {"spk": spk, "mem": mem}
