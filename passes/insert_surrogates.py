"""``insert_surrogates``: give every spiking neuron without a surrogate the default one.

Rewrite: ``Neuron(surrogate=None)`` -> ``Neuron(surrogate=model.surrogate or default)``: the surrogate
its model declares (Norse's models: Norse's SuperSpike), else ``default`` (snnTorch's
``atan(alpha=2.0)``). Idempotent: a graph where every neuron has one is returned as is.
"""

from __future__ import annotations

from snngraph.ir.graph import Graph
from snngraph.ir.surrogate import DEFAULT_SURROGATE, Surrogate

ATAN = DEFAULT_SURROGATE


def insert_surrogates(graph: Graph, default: Surrogate = ATAN) -> Graph:
    """Give every spiking node without a surrogate its model's declared one, else the ``default`` one."""
    changes = {n: node.replace(surrogate=node.model.surrogate or default) for n, node in graph.nodes.items()
               if node.family == "neuron" and node.model.spiking and node.surrogate is None}
    return graph.with_nodes(changes) if changes else graph


insert_surrogates.name = "insert_surrogates"
