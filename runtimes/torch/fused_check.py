"""A guard for ``fused=true`` neurons that did not come from ``fuse_state_updates``.

``fused`` is an annotation of the compiler, but it is a field of the IR: a graph file or text can
set it on a neuron that has no fused kernel (an ``alpha``), or one whose kernel would compute
something else (an ``rleaky`` with ``reset_delay=false``, a neuron inside a delay loop). The pass
itself is the oracle of what may be fused.
"""

from __future__ import annotations

from snngraph.ir.graph import Graph
from snngraph.passes.fuse_state_updates import fuse_state_updates


def check_fused(graph: Graph) -> None:
    """Raise GraphError naming the first neuron marked ``fused`` that ``fuse_state_updates`` would not fuse."""
    marked = [name for name, node in graph.nodes.items() if getattr(node, "fused", False)]
    if not marked:
        return
    refused = fuse_state_updates(graph.with_nodes({n: graph.nodes[n].replace(fused=False) for n in marked}))
    for name in marked:
        if not refused.nodes[name].fused:
            raise graph.nodes[name].error(
                "fused=true, but the runtime has no fused kernel for this neuron here (kind, reset, surrogate or a "
                "delay loop); set fused=false: sg.compile fuses what it can itself")
