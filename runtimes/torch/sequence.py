"""Running one neuron population over a whole input sequence with its step kernel."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from snngraph.ir.node import Node


def run_neuron_sequence(node: Node, x: Tensor, kwargs: dict[str, Any], state: tuple[Tensor, ...]) -> dict[str, Tensor]:
    """Loop the node's step kernel over ``x`` of shape (T, B, ...); every port as (T, B, ...)."""
    from snngraph.runtimes.torch.kernels import NEURON_KERNELS

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
