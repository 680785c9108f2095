"""The legal IR as a list of small checks. ``verify(graph)`` runs them all and raises
``GraphError`` naming the node (or output) at the first violation."""

from __future__ import annotations

from collections.abc import Callable

from snngraph.ir.errors import GraphError
from snngraph.ir.graph import Graph, infer_types, topo_order
from snngraph.ir.node import NODE_KINDS, Node
from snngraph.ir.synapses import Delay, Input
from snngraph.ir.types import NAME_RE, check_name


def check_names(g: Graph) -> None:
    """Every node is registered under its own, valid name and is of a known kind."""
    for key, node in g.nodes.items():
        if not isinstance(node, Node) or NODE_KINDS.get(node.op) is not type(node):
            stale = isinstance(node, Node) and node.op in NODE_KINDS  # a model redeclared with replace=True
            raise GraphError(f"node '{key}' is not an snngraph IR node: {type(node).__name__}" + (
                f" (built with an earlier declaration of '{node.op}'; rebuild the graph)" if stale else ""))
        if key != node.name or not NAME_RE.fullmatch(key):
            raise GraphError(f"node {key!r} is registered under a different or invalid name ({node.name!r})")


def check_arity(g: Graph) -> None:
    """Each node has as many inputs as its kind takes; feedback delays must be connected."""
    for node in g.nodes.values():
        low, high = node.arity
        if isinstance(node, Delay) and not node.inputs:
            raise node.error("feedback delay was never connected (use g.connect)")
        if len(node.inputs) < low or (high is not None and len(node.inputs) > high):
            raise node.error(f"takes {low}{'+' if high is None else '' if high == low else f'..{high}'} inputs, "
                             f"got {len(node.inputs)}")


def check_refs(g: Graph) -> None:
    """Every input names an existing node and one of its output ports."""
    for node in g.nodes.values():
        for ref in node.inputs:
            src = g.nodes.get(ref.node)
            if src is None:
                raise node.error(f"input %{ref.node} does not exist")
            if ref.port not in src.ports:
                raise node.error(f"input {ref.text('')}: '{ref.node}' has no output '{ref.port}'")


def check_acyclic(g: Graph) -> None:
    """Cycles are legal only through a delay (recurrent neurons carry their own state)."""
    topo_order(g.nodes)


def check_nodes(g: Graph) -> None:
    """Each node's own invariants (parameter ranges, finiteness, hyper-parameters)."""
    for node in g.nodes.values():
        node.check()


def check_types(g: Graph) -> None:
    """Shapes and dtypes agree along every edge."""
    infer_types(g)


def check_io(g: Graph) -> None:
    """At least one input, at least one output, outputs name existing values."""
    if not any(isinstance(n, Input) for n in g.nodes.values()):
        raise GraphError(f"graph '{g.name}' has no input")
    if not g.outputs:
        raise GraphError(f"graph '{g.name}' has no output: declare one with g.output(name, value)")
    for key, ref in g.outputs.items():
        check_name(key, "output")
        src = g.nodes.get(ref.node)
        if src is None or ref.port not in src.ports:
            raise GraphError(f"output '{key}' refers to unknown value {ref.text('')}")
        if key in g.inputs:
            raise GraphError(f"output '{key}' has the name of an input")


CHECKS: tuple[Callable[[Graph], None], ...] = (
    check_names, check_arity, check_refs, check_acyclic, check_nodes, check_types, check_io)


def verify(graph: Graph) -> Graph:
    """Run every check of :data:`CHECKS`; return ``graph`` unchanged when it is legal."""
    if not isinstance(graph, Graph):
        raise GraphError(f"expected an snngraph Graph, got {type(graph).__name__}")
    for check in CHECKS:
        check(graph)
    return graph
