"""``unroll_time``: make the time structure explicit.

``unroll_time(graph)`` (the default pipeline's pass) reorders nodes into execution stages
(``time_structure.stages``): each node that is a per-step function of its inputs forms a sequence
stage (it can run for all T steps at once), and the nodes of each cycle closed by a delay (carried
state) are placed together, in step order, as one loop stage. Neuron state is carried inside the
neuron nodes themselves. The runtimes and the ONNX exporter walk this order. Idempotent: a graph
already in stage order is returned as is.

``unroll_time(graph, steps=T)`` returns the fully unrolled graph instead (see
:func:`unroll_fully`): a graph to be run for a single step, one copy of every node per step.
"""

from __future__ import annotations

from snngraph.ir.errors import GraphError
from snngraph.ir.graph import Graph
from snngraph.passes.time_structure import stages
from snngraph.passes.unroll_full import unroll_fully


def unroll_time(graph: Graph, steps: int | None = None) -> Graph:
    """Reorder nodes into stage order (loops contiguous, every node after its inputs); with
    ``steps=T`` (an int >= 1) return the graph fully unrolled over ``T`` steps instead.

    Raises:
        GraphError: ``steps`` is not ``None`` or a positive int, or the graph is invalid.
    """
    if steps is not None:
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise GraphError(f"unroll_time: steps must be a positive int or None, got {steps!r}")
        return unroll_fully(graph, steps)
    order = [n for stage in stages(graph) for n in stage.nodes]
    if order == list(graph.nodes):
        return graph
    return Graph(graph.name, [graph.nodes[n] for n in order], graph.outputs, graph.module_paths)


unroll_time.name = "unroll_time"
