"""``fuse_state_updates``: run each eligible neuron population's whole time loop as one kernel.

Rewrite: a neuron node the *target* can fuse (its capability table says it has a scan for the node's
model, options and surrogate), outside delay loops and not explicit-state, gets ``fused=True``. The
pass itself knows no model and no backend: the torch runtime's table
(:mod:`snngraph.runtimes.torch.capabilities`) is the default, and ``FuseStateUpdates(can_fuse)``
asks another. A fused neuron lowers to one scan (forward loop without autograd, hand-written
backward) and the synapses feeding it run once over all T*B rows. Neurons on a loop through a delay
advance step by step with the loop and stay unfused, and so do explicit-state neurons
(``state_inputs``): they carry no state, so there is no time loop to fuse. The ONNX export ignores
the flag. The pass does not depend on ``insert_surrogates`` having run (a missing surrogate is the
default one). Idempotent: a graph with nothing left to fuse is returned as is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from snngraph.ir.graph import Graph
from snngraph.passes.time_structure import stages


def _torch_can_fuse(node: Any) -> bool:
    from snngraph.runtimes.torch.capabilities import torch_can_fuse  # plain data, no torch import

    return torch_can_fuse(node)


class FuseStateUpdates:
    """The pass, asking ``can_fuse(node)`` of the target (default: the torch runtime)."""

    name = "fuse_state_updates"

    def __init__(self, can_fuse: Callable[[Any], bool] = _torch_can_fuse):
        self.can_fuse = can_fuse

    def __call__(self, graph: Graph) -> Graph:
        """Mark every neuron the target can fuse, outside a delay loop, as ``fused``."""
        in_loops = {n for s in stages(graph) if s.kind == "loop" for n in s.nodes}
        changes = {name: node.replace(fused=True) for name, node in graph.nodes.items()
                   if node.family == "neuron" and not node.fused and not node.state_inputs and name not in in_loops
                   and self.can_fuse(node)}
        return graph.with_nodes(changes) if changes else graph


fuse_state_updates = FuseStateUpdates()
