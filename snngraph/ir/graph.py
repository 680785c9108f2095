"""The graph: named nodes, the values they exchange, inputs and outputs.

A graph is built with the builder methods (``g.linear(...)``) and read as data by passes,
which return new graphs (``with_nodes``) and never mutate the one they were given.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from snngraph.ir.builder import GraphBuilder
from snngraph.ir.errors import GraphError
from snngraph.ir.node import Node
from snngraph.ir.synapses import Delay, Input
from snngraph.ir.types import Ref, TensorType, check_name

if TYPE_CHECKING:
    from snngraph.ir.types import Param


class Handle:
    """A value of a graph under construction, returned by the builder methods.

    Used as an argument it is the node's default output (``spk`` for spiking neurons);
    ``.mem``, ``.syn`` ... name the node's other outputs.
    """

    __slots__ = ("graph", "ref")

    def __init__(self, graph: Graph, ref: Ref):
        self.graph = graph
        self.ref = ref

    @property
    def name(self) -> str:
        return self.ref.node

    @property
    def node(self) -> Node:
        return self.graph.nodes[self.ref.node]

    @property
    def type(self) -> TensorType:
        return self.graph.type_of(self.ref)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    def __getattr__(self, port: str) -> Handle:
        if port.startswith("_"):
            raise AttributeError(port)
        node = self.graph.nodes[self.ref.node]
        if port not in node.ports:
            raise AttributeError(f"{node.op} '{node.name}' has no output '{port}' (it has {', '.join(node.ports)})")
        return Handle(self.graph, Ref(node.name, port))

    def __repr__(self) -> str:
        return f"<{self.ref.text('')}: {self.type}>"


class Graph(GraphBuilder):
    """A spiking network as a typed dataflow graph over one time step.

    Args:
        name: the graph's name (an identifier).
    """

    def __init__(self, name: str = "graph", nodes: Iterable[Node] = (), outputs: Mapping[str, Ref] | None = None,
                 module_paths: Mapping[str, str] | None = None):
        self.name = check_name(name, "graph")
        self.module_paths: dict[str, str] = check_module_paths(module_paths or {})
        self._nodes: dict[str, Node] = {}
        self._outputs: dict[str, Ref] = {}
        self._types: dict[Ref, TensorType] | None = {}
        self._counts: dict[str, int] = {}
        for node in nodes:
            if node.name in self._nodes:
                raise GraphError(f"duplicate node name '{node.name}'")
            self._nodes[node.name] = node
        self._types = None
        for key, ref in (outputs or {}).items():
            self._outputs[key] = ref

    # --- reading -------------------------------------------------------------------------
    @property
    def nodes(self) -> Mapping[str, Node]:
        return self._nodes

    @property
    def outputs(self) -> Mapping[str, Ref]:
        return dict(self._outputs)

    @property
    def inputs(self) -> dict[str, Input]:
        return {k: n for k, n in self._nodes.items() if isinstance(n, Input)}

    def type_of(self, ref: Ref | Handle) -> TensorType:
        """The per-step type of a value."""
        ref = ref.ref if isinstance(ref, Handle) else ref
        types = self.types()
        if ref not in types:
            raise GraphError(f"unknown value {ref.text('')!r} in graph '{self.name}'")
        return types[ref]

    def types(self) -> dict[Ref, TensorType]:
        """Every value's type, inferred in topological order (cached until the graph changes)."""
        if self._types is None:
            self._types = infer_types(self)
        return self._types

    def topo_order(self) -> list[str]:
        """Node names so that each node follows its inputs (edges into a delay excluded)."""
        return topo_order(self._nodes)

    def params(self) -> dict[str, Param]:
        """Every parameter as ``'<node>.<param>'`` -> Param."""
        return {f"{n}.{k}": p for n, node in self._nodes.items() for k, p in node.params().items()}

    def consumers(self) -> dict[str, list[str]]:
        """Node name -> names of the nodes reading any of its outputs."""
        out: dict[str, list[str]] = {n: [] for n in self._nodes}
        for node in self._nodes.values():
            for ref in node.inputs:
                if ref.node in out and node.name not in out[ref.node]:
                    out[ref.node].append(node.name)
        return out

    # --- functional updates (passes) -----------------------------------------------------
    def with_nodes(self, changes: Mapping[str, Node | None]) -> Graph:
        """A new graph with nodes replaced (or removed when mapped to None), order kept."""
        nodes = []
        for name, node in self._nodes.items():
            new = changes.get(name, node)
            if new is not None:
                nodes.append(new)
        known = {n.name for n in nodes}
        nodes += [n for k, n in changes.items() if n is not None and k not in self._nodes and n.name not in known]
        kept = {n.name for n in nodes}
        return Graph(self.name, nodes, self._outputs, {k: v for k, v in self.module_paths.items()
                                                       if k.split(".")[0] in kept})

    def with_outputs(self, outputs: Mapping[str, Ref]) -> Graph:
        return Graph(self.name, self._nodes.values(), outputs, self.module_paths)

    def with_module_paths(self, paths: Mapping[str, str]) -> Graph:
        """The graph whose compiled net registers node ``n``'s module at ``paths[n]`` (``"0"``,
        ``"block.conv1"``: a traced model's own ``state_dict`` keys) instead of at its node name. A key
        ``"<node>.<param>"`` names one parameter's ``state_dict`` key instead (``"cell_input.weight":
        "cell.input_weights"``, for a model that keeps two nodes' parameters in one module)."""
        return Graph(self.name, self._nodes.values(), self._outputs, paths)

    def copy(self) -> Graph:
        return Graph(self.name, self._nodes.values(), self._outputs, self.module_paths)

    # --- comparison and printing ----------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        return (self.name == other.name and list(self._nodes.items()) == list(other._nodes.items())
                and list(self._outputs.items()) == list(other._outputs.items()))

    __hash__ = None  # type: ignore[assignment]

    def to_text(self, with_params: bool = False) -> str:
        from snngraph.ir.text import to_text

        return to_text(self, with_params=with_params)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return f"<Graph '{self.name}': {len(self._nodes)} nodes, outputs {list(self._outputs)}>"

    def _invalidate(self) -> None:
        self._types = None

    def __reduce__(self) -> tuple:
        """Pickling for ``copy.deepcopy`` and ``torch.save`` of a compiled net, as torch users expect.
        ``sg.save`` stays the format to share graphs: it holds no pickle and loading it runs nothing."""
        return (Graph, (self.name, tuple(self._nodes.values()), dict(self._outputs), dict(self.module_paths)))


MODULE_PATH_RE = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*")


def check_module_paths(paths: Mapping[str, str]) -> dict[str, str]:
    """Node name -> dotted module path (``"0"``, ``"block.conv1"``), or ``"<node>.<param>"`` -> that parameter's
    ``state_dict`` key; GraphError for a malformed or shared path."""
    if not isinstance(paths, Mapping):
        raise GraphError(f"module_paths must map node names to module paths, got {type(paths).__name__}")
    out: dict[str, str] = {}
    for node, path in paths.items():
        if not isinstance(node, str) or not isinstance(path, str) or len(path) > 255 \
                or not MODULE_PATH_RE.fullmatch(path):
            raise GraphError(f"module path {path!r:.80} of node {node!r:.80}: use dot-separated parts of letters, "
                             "digits and '_'")
        out[node] = path
    if len(set(out.values())) != len(out):
        raise GraphError("module_paths: two nodes share a module path")
    return out


def topo_order(nodes: Mapping[str, Node]) -> list[str]:
    """Kahn's algorithm over data edges, ignoring edges into ``Delay`` nodes (state).

    Raises GraphError naming the nodes of a cycle that does not pass through a delay.
    """
    deps = {n: {r.node for r in node.inputs if r.node in nodes} if not isinstance(node, Delay) else set()
            for n, node in nodes.items()}
    order, ready = [], [n for n in nodes if not deps[n]]
    users: dict[str, list[str]] = {n: [] for n in nodes}
    for n, ds in deps.items():
        for d in ds:
            users[d].append(n)
    remaining = {n: len(ds) for n, ds in deps.items()}
    while ready:
        n = ready.pop(0)
        order.append(n)
        for u in users[n]:
            remaining[u] -= 1
            if remaining[u] == 0:
                ready.append(u)
    if len(order) != len(nodes):
        stuck = [n for n in nodes if n not in set(order)]
        raise GraphError(f"cycle without a delay through nodes {stuck}: close recurrent loops with g.delay / "
                         "g.feedback or use a recurrent neuron")
    return order


def infer_types(graph: Graph) -> dict[Ref, TensorType]:
    """Infer every value's type; raise GraphError naming the first node that does not type-check."""
    nodes = graph.nodes
    types: dict[Ref, TensorType] = {}
    dtype = next((n.dtype for n in nodes.values() if isinstance(n, Input)), "float32")
    order = topo_order(nodes)
    for name in order:
        node = nodes[name]
        if isinstance(node, Delay):
            types[Ref(name, "out")] = TensorType(node.shape, dtype)
            continue
        ins = []
        for ref in node.inputs:
            if ref not in types:
                raise node.error(f"input {ref.text('')!r} does not exist")
            ins.append(types[ref])
        for port, t in checked_infer(node, tuple(ins)).items():
            types[Ref(name, port)] = t
    for name in order:
        node = nodes[name]
        if isinstance(node, Delay) and node.inputs:
            ref = node.inputs[0]
            if ref not in types:
                raise node.error(f"input {ref.text('')!r} does not exist")
            node.infer((types[ref],))
    return types


MAX_NUMEL = 2**31


def checked_infer(node: Node, ins: tuple[TensorType, ...]) -> dict[str, TensorType]:
    """``node.infer(ins)``, rejecting absurd output sizes (more than 2**31 elements per step)."""
    outs = node.infer(ins)
    for port, t in outs.items():
        if math.prod(t.shape) > MAX_NUMEL:
            raise node.error(f"output {port} of per-step shape {list(t.shape)} is too large")
    return outs
