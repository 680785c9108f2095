"""``unroll_time``: make the time structure explicit in the node order.

Rewrite: nodes are reordered into execution stages (``time_structure.stages``): each node that
is a per-step function of its inputs forms a sequence stage (it can run for all T steps at once),
and the nodes of each cycle closed by a delay (carried state) are placed together, in step order,
as one loop stage. Neuron state is carried inside the neuron nodes themselves. The runtimes and
the ONNX exporter walk this order. Idempotent: a graph already in stage order is returned as is.
"""

from __future__ import annotations

from snngraph.ir.graph import Graph
from snngraph.passes.time_structure import stages


def unroll_time(graph: Graph) -> Graph:
    """Reorder nodes into stage order (loops contiguous, every node after its inputs)."""
    order = [n for stage in stages(graph) for n in stage.nodes]
    if order == list(graph.nodes):
        return graph
    return Graph(graph.name, [graph.nodes[n] for n in order], graph.outputs)


unroll_time.name = "unroll_time"
