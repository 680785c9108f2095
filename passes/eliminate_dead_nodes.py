"""``eliminate_dead_nodes``: drop nodes no graph output depends on (inputs are kept).

Rewrite: a node that no output reaches, through data or delay edges, is removed with its
parameters. Idempotent: a graph without dead nodes is returned as is.
"""

from __future__ import annotations

from snngraph.ir.graph import Graph
from snngraph.ir.synapses import Input


def eliminate_dead_nodes(graph: Graph) -> Graph:
    """Remove every non-input node that no graph output depends on."""
    live, work = set(), [r.node for r in graph.outputs.values()]
    while work:
        name = work.pop()
        if name in live:
            continue
        live.add(name)
        work.extend(r.node for r in graph.nodes[name].inputs)
    dead = {n: None for n, node in graph.nodes.items() if n not in live and not isinstance(node, Input)}
    return graph.with_nodes(dead) if dead else graph


eliminate_dead_nodes.name = "eliminate_dead_nodes"
