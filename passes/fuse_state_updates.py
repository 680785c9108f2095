"""``fuse_state_updates``: run each eligible neuron population's whole time loop as one kernel.

Rewrite: ``leaky`` / ``integrate_fire`` / ``leaky_integrator`` nodes, and ``rleaky`` / ``synaptic``
nodes with the delayed reset, outside delay loops and with a built-in deterministic surrogate, get
``fused=True``. The torch runtime lowers a fused neuron to ``runtimes/torch/scan*.py`` (forward loop
without autograd, hand-written backward loop) and the
synapses feeding it run once over all T*B rows (the sequence stages of ``time_structure``).
Neurons on a loop through a delay must advance step by step with the loop and stay unfused, and so
do explicit-state neurons (``state_inputs``): they carry no state, so there is no time loop to fuse.
Idempotent: a graph with nothing left to fuse is returned as is.
"""

from __future__ import annotations

from snngraph.ir.graph import Graph
from snngraph.ir.surrogate import SURROGATE_NAMES
from snngraph.passes.time_structure import stages

SCANNABLE = ("leaky", "integrate_fire", "leaky_integrator", "rleaky", "synaptic")
DELAYED_RESET_ONLY = ("rleaky", "synaptic")
# SSO draws noise in its backward: a scan would draw it in another order than the step loop, so
# gradients would differ in distribution-preserving but not identical ways; it stays unfused.
DETERMINISTIC = tuple(n for n in SURROGATE_NAMES if n != "SSO")


def fuse_state_updates(graph: Graph) -> Graph:
    """Mark every scannable neuron outside a delay loop as ``fused``."""
    in_loops = {n for s in stages(graph) if s.kind == "loop" for n in s.nodes}
    changes = {}
    for name, node in graph.nodes.items():
        if node.op not in SCANNABLE or node.fused or name in in_loops or node.state_inputs:
            continue
        if node.op in DELAYED_RESET_ONLY and not node.reset_delay:
            continue
        surrogate = getattr(node, "surrogate", None)
        if node.op != "leaky_integrator" and (surrogate is None or surrogate.name not in DETERMINISTIC):
            continue
        changes[name] = node.replace(fused=True)
    return graph.with_nodes(changes) if changes else graph


fuse_state_updates.name = "fuse_state_updates"
