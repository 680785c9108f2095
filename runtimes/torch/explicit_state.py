"""Explicit-state neurons (``state_inputs=True``) in the torch runtime.

Such a node carries no state: its state before each step is its inputs after the current one, so
a whole sequence is one call of its step kernel over all ``T*B`` rows.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from snngraph.ir.node import Node


def explicit_state_step(node: Node, xs: list[Tensor], kwargs: dict[str, Any]) -> dict[str, Tensor]:
    """One step over rows ``(N, ...)``: the current ``xs[0]``, the state ``xs[1:]``; every port."""
    from snngraph.runtimes.torch.kernels import kernel_for

    result = kernel_for(node.op).step(xs[0], *xs[1:], **kwargs)[-len(node.ports):]
    return dict(zip(node.ports, result, strict=True))


def run_explicit_state(node: Node, xs: list[Tensor], kwargs: dict[str, Any]) -> dict[str, Tensor]:
    """The node over sequences ``(T, B, ...)`` (current input, then state inputs); every port as (T, B, ...)."""
    steps = xs[0].shape[0]
    ports = explicit_state_step(node, [x.reshape(-1, *x.shape[2:]) for x in xs], kwargs)
    return {p: v.reshape(steps, -1, *v.shape[1:]) for p, v in ports.items()}
