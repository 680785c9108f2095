"""Running a fully unrolled graph (``unroll_time(g, steps=T)``) on whole sequences.

The unrolled graph runs for one step and has ``T`` copies of every input and output
(``x_t0 ... x_t{T-1}``); :func:`run_unrolled` splits ``(T, B, ...)`` sequences into those inputs
and stacks the outputs back, so that it is a drop-in for ``sg.compile(g)(x_seq)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from snngraph.ir.errors import GraphError
from snngraph.ir.graph import Graph
from snngraph.passes.unroll_full import split_step_name
from snngraph.runtimes.torch.lower import sequence_in_training


def run_unrolled(net_or_graph: Any, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Run an unrolled graph (or its ``CompiledNet``) on ``{input: (T, B, *shape)}``, keyed by the
    original input names; return ``{output: (T, B, ...)}`` keyed by the original output names.

    Raises:
        GraphError: an input is missing or unknown, or a sequence is not ``T`` steps long; a
            ``stats="sequence"`` batch norm in training mode.
    """
    from snngraph.runtimes.torch.module import compile

    net = compile(net_or_graph) if isinstance(net_or_graph, Graph) else net_or_graph
    if net.training:  # each step's copy sees only its step's rows
        for node in net.graph.nodes.values():
            if sequence_in_training(node):
                raise node.error("normalises with the statistics of the whole sequence (stats=\"sequence\"), "
                                 "which the per-step copies of an unrolled graph cannot compute in training "
                                 "mode; call .eval() (running statistics)")
    copies: dict[str, list[tuple[int, str]]] = {}
    for name in net.graph.inputs:
        base, t = split_step_name(name)
        copies.setdefault(base, []).append((t, name))
    if set(copies) != set(inputs):
        raise GraphError(f"run_unrolled: the unrolled graph takes inputs {sorted(copies)}, got {sorted(inputs)}")
    feed = {}
    for base, steps in copies.items():
        seq = inputs[base]
        if not isinstance(seq, Tensor) or seq.dim() < 2 or seq.shape[0] != len(steps):
            got = tuple(seq.shape) if isinstance(seq, Tensor) else type(seq).__name__
            raise GraphError(f"run_unrolled: input '{base}' must be a ({len(steps)}, B, ...) sequence, got {got}")
        feed.update({name: seq[t:t + 1] for t, name in steps})
    out = net(**feed)
    stacked: dict[str, list[tuple[int, Tensor]]] = {}
    for key, value in out.items():
        base, t = split_step_name(key)
        stacked.setdefault(base, []).append((t, value))
    return {base: torch.cat([v for _, v in sorted(parts, key=lambda p: p[0])]) for base, parts in stacked.items()}
