"""Assembling the ONNX graphs of the two export modes from the per-node lowerings.

* step: one time step over ``(B, ...)`` with explicit state inputs and outputs (:func:`build_step`).
* sequence: ``(T, B, ...)``; each feed-forward synapse runs once over the ``T*B`` rows, each neuron
  population and each loop through delays runs inside an ONNX ``Scan`` over time whose body is
  the same one-step lowering the step mode uses (:func:`build_sequence`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from onnx import NodeProto, ValueInfoProto, helper

from snngraph.ir import synapses as S
from snngraph.ir.graph import Graph
from snngraph.ir.types import Ref
from snngraph.passes.time_structure import stages
from snngraph.runtimes.onnx.lower import FLOAT, Emitter, lower_synapse
from snngraph.runtimes.onnx.lower_neurons import lower_neuron

BATCH, TIME = "B", "T"


@dataclass(frozen=True)
class StateEntry:
    """One state tensor: its name (``lif1.mem``, ``fb.buffer``), node, port and per-stream dims."""

    name: str
    node: str
    port: str
    dims: tuple  # with BATCH for the batch dimension

    @property
    def is_buffer(self) -> bool:
        return self.port == "buffer"


def state_entries(graph: Graph, names: tuple[str, ...] | None = None) -> list[StateEntry]:
    """The state of ``names`` (default: all nodes) in ``CompiledNet.init_state``'s order and naming."""
    types, out = graph.types(), []
    for name, node in graph.nodes.items():
        if names is not None and name not in names:
            continue
        if isinstance(node, S.Delay):
            out.append(StateEntry(f"{name}.buffer", name, "buffer", (node.steps, BATCH, *node.shape)))
        elif node.family == "neuron" and not node.state_inputs:  # explicit state comes in as inputs
            shape = node.state_shape(types[node.inputs[0]].shape)
            out.extend(StateEntry(f"{name}.{p}", name, p, (BATCH, *shape)) for p in node.state_ports)
    return out


def tensor_info(name: str, dims: tuple | list | None) -> ValueInfoProto:
    return helper.make_tensor_value_info(name, FLOAT, None if dims is None else list(dims))


def step_nodes(e: Emitter, graph: Graph, names: list[str], values: dict[Ref, str], state: dict[str, str]) -> dict:
    """Emit one time step of ``names`` (topological order) over ``(B, ...)``; return the new state.

    ``values`` holds the inputs (and receives every port computed); ``state`` maps the entries
    of :func:`state_entries` to value names, as in ``CompiledNet._step_nodes``.
    """
    types, new_state = graph.types(), dict(state)
    for name in names:
        node = graph.nodes[name]
        if isinstance(node, S.Input):
            continue
        if isinstance(node, S.Delay):
            values[Ref(name, "out")] = e.op("Gather", state[f"{name}.buffer"], e.const(0, dtype="int64"), axis=0,
                                            hint=name)
        elif node.family == "synapse":
            xs = [values[r] for r in node.inputs]
            values[Ref(name, "out")] = lower_synapse(e, node, xs, [types[r] for r in node.inputs],
                                                     types[Ref(name, "out")])
        elif node.state_inputs:
            ports = lower_neuron(e, node, values[node.inputs[0]], explicit_state(node, values))
            values.update({Ref(name, port): value for port, value in ports.items()})
        else:
            ports = lower_neuron(e, node, values[node.inputs[0]], {p: state[f"{name}.{p}"] for p in node.state_ports})
            for port, value in ports.items():
                values[Ref(name, port)] = value
            new_state.update({f"{name}.{p}": ports[p] for p in node.state_ports})
    for name in names:
        node = graph.nodes[name]
        if isinstance(node, S.Delay):
            x = e.op("Unsqueeze", values[node.inputs[0]], e.ints([0]), hint=name)
            if node.steps > 1:
                rest = e.op("Slice", state[f"{name}.buffer"], e.ints([1]), e.ints([node.steps]), e.ints([0]), hint=name)
                x = e.op("Concat", rest, x, axis=0, hint=name)
            new_state[f"{name}.buffer"] = x
    return new_state


def explicit_state(node: Any, values: Mapping[Ref, str]) -> dict[str, str]:
    """The state of an explicit-state neuron (``state_inputs``): its inputs after the current one."""
    return {p: values[r] for p, r in zip(node.state_ports, node.inputs[1:], strict=True)}


def build_step(graph: Graph) -> tuple[list[NodeProto], list, list, Emitter, list[StateEntry]]:
    """The step model: ``(nodes, inputs, outputs, emitter, state entries)``."""
    e = Emitter()
    entries = state_entries(graph)
    inputs = [tensor_info(n, (BATCH, *node.shape)) for n, node in graph.inputs.items()]
    inputs += [tensor_info(s.name, s.dims) for s in entries]
    values = {Ref(n, "out"): n for n in graph.inputs}
    new_state = step_nodes(e, graph, graph.topo_order(), values, {s.name: s.name for s in entries})
    types = graph.types()
    outputs = [tensor_info(key, (BATCH, *types[ref].shape)) for key, ref in graph.outputs.items()]
    outputs += [tensor_info(f"{s.name}.next", s.dims) for s in entries]
    bind_outputs(e, [(values[ref], key) for key, ref in graph.outputs.items()] +
                 [(new_state[s.name], f"{s.name}.next") for s in entries])
    return e.nodes, inputs, outputs, e, entries


def bind_outputs(e: Emitter, pairs: list[tuple[str, str]]) -> None:
    """Give each value ``src`` the model output name ``dst``.

    The producing node's output is renamed where it can be (one node less per output, which
    counts in a streaming step); a graph input, or a value wanted under a second name, gets an
    ``Identity``. Only main-graph values are renamed; loop bodies never read those.
    """
    produced = {out for node in e.nodes for out in node.output}
    renamed: dict[str, str] = {}
    for src, dst in pairs:
        if src in produced and src not in renamed:
            renamed[src] = dst
        else:
            e.nodes.append(helper.make_node("Identity", [src], [dst], name=f"output/{dst}"))
    for node in e.nodes:
        for field in (node.input, node.output):
            names = [renamed.get(n, n) for n in field]
            del field[:]
            field.extend(names)


class SequenceValues:
    """Values of the sequence model, each available as ``(T, B, ...)`` ("seq") or ``(T*B, ...)`` ("rows")."""

    def __init__(self, e: Emitter, graph: Graph, tb: str):
        self.e, self.types, self.tb = e, graph.types(), tb
        self._seq: dict[Ref, str] = {}
        self._rows: dict[Ref, str] = {}

    def set(self, ref: Ref, name: str, layout: str) -> None:
        (self._seq if layout == "seq" else self._rows)[ref] = name

    def seq(self, ref: Ref) -> str:
        if ref not in self._seq:
            shape = self.e.op("Concat", self.tb, self.e.ints(self.types[ref].shape), axis=0, hint=ref.node)
            self._seq[ref] = self.e.op("Reshape", self._rows[ref], shape, hint=ref.node)
        return self._seq[ref]

    def rows(self, ref: Ref) -> str:
        if ref not in self._rows:
            self._rows[ref] = self.e.op("Reshape", self._seq[ref], self.e.ints([-1, *self.types[ref].shape]),
                                        hint=ref.node)
        return self._rows[ref]


def _scan(e: Emitter, graph: Graph, names: tuple[str, ...], vals: SequenceValues, batch: str, needed: set[Ref],
          time_source: str) -> None:
    """Run ``names`` (one neuron, or a loop through delays) one step at a time inside a ``Scan``."""
    order = [n for n in graph.topo_order() if n in names]
    types = graph.types()
    entries = state_entries(graph, names)
    external = list(dict.fromkeys(r for n in order for r in graph.nodes[n].inputs if r.node not in names))
    body = e.sub()
    state_in = {s.name: e.fresh(f"{s.name}/in") for s in entries}
    values = {r: e.fresh(f"{r.node}.{r.port}/t") for r in external}
    new_state = step_nodes(body, graph, order, values, state_in)
    produced = [Ref(n, p) for n in order for p in graph.nodes[n].ports if Ref(n, p) in needed]
    outs = []
    for key in [s.name for s in entries] + produced:
        src = new_state[key] if isinstance(key, str) else values[key]
        outs.append(body.op("Identity", src, hint="scan_out"))
    body_inputs = [tensor_info(state_in[s.name], s.dims) for s in entries]
    body_inputs += [tensor_info(values[r], (BATCH, *types[r].shape)) for r in external]
    scan_inputs = [vals.seq(r) for r in external]
    if not scan_inputs:  # a loop fed by nothing outside: the graph input still sets the number of steps
        body_inputs.append(tensor_info(e.fresh("time/t"), None))
        scan_inputs.append(time_source)
    body_outputs = [tensor_info(o, None) for o in outs]
    graph_proto = helper.make_graph(body.nodes, f"scan_{order[0]}", body_inputs, body_outputs)
    init = [e.zeros([d if d != BATCH else batch for d in s.dims], hint=s.name) for s in entries]
    results = e.op("Scan", *init, *scan_inputs, hint=f"{order[0]}/loop", outputs=len(outs), body=graph_proto,
                   num_scan_inputs=len(scan_inputs))
    results = [results] if isinstance(results, str) else results
    for ref, name in zip(produced, results[len(entries):], strict=True):
        vals.set(ref, name, "seq")


def build_sequence(graph: Graph, num_steps: int | None) -> tuple[list[NodeProto], list, list, Emitter]:
    """The sequence model: ``(nodes, inputs, outputs, emitter)``; inputs and outputs are ``(T, B, ...)``."""
    e = Emitter()
    time_dim = TIME if num_steps is None else num_steps
    inputs = [tensor_info(n, (time_dim, BATCH, *node.shape)) for n, node in graph.inputs.items()]
    first = next(iter(graph.inputs))
    tb = e.op("Shape", first, start=0, end=2, hint="time_batch")
    batch = e.op("Shape", first, start=1, end=2, hint="batch")
    steps = e.op("Shape", first, start=0, end=1, hint="time")
    vals = SequenceValues(e, graph, tb)
    needed = {r for node in graph.nodes.values() for r in node.inputs} | set(graph.outputs.values())
    types = graph.types()
    for stage in stages(graph):
        name = stage.nodes[0]
        node = graph.nodes[name]
        out = Ref(name, "out")
        if stage.kind == "seq" and node.family == "neuron" and node.state_inputs:  # no state: over all rows
            rows = {r: vals.rows(r) for r in node.inputs}
            for port, value in lower_neuron(e, node, rows[node.inputs[0]], explicit_state(node, rows)).items():
                vals.set(Ref(name, port), value, "rows")
        elif stage.kind == "loop" or node.family == "neuron":
            _scan(e, graph, stage.nodes, vals, batch, needed, first)
        elif isinstance(node, S.Input):
            vals.set(out, name, "seq")
        elif isinstance(node, S.Delay):
            zeros = e.zeros([node.steps, batch, *node.shape], hint=name)
            shifted = e.op("Concat", zeros, vals.seq(node.inputs[0]), axis=0, hint=name)
            vals.set(out, e.op("Slice", shifted, e.ints([0]), steps, e.ints([0]), hint=name), "seq")
        else:
            xs = [vals.rows(r) for r in node.inputs]
            vals.set(out, lower_synapse(e, node, xs, [types[r] for r in node.inputs], types[out]), "rows")
    outputs = [tensor_info(key, (time_dim, BATCH, *types[ref].shape)) for key, ref in graph.outputs.items()]
    bind_outputs(e, [(vals.seq(ref), key) for key, ref in graph.outputs.items()])
    return e.nodes, inputs, outputs, e
