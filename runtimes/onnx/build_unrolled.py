"""The Scan-free sequence model (``export_onnx(..., num_steps=T, unroll=True)``).

Built from the fully unrolled graph (``unroll_time(graph, steps=T)``) as straight-line ONNX: each
input ``(T, B, *shape)`` is split along time (one ``Gather`` per step), every per-step copy is
lowered over ``(B, ...)`` with the step model's per-node lowerings, and each output's ``T`` values
are concatenated back to ``(T, B, ...)``. The model has the inputs, outputs and shapes of the Scan
export with ``num_steps=T`` and no ``Scan`` or ``Loop``.

Parameters are stored once: each copy ``fc1_t3`` is lowered under its source node's name
(``fc1``), so every copy reads the initializer ``fc1.weight`` and shares the constants derived from
it (clamped decays, ``1 / (RC)``). Step 0's neurons start from zeros; the explicit-state copies
read the previous step's ports; the delays left in an unrolled graph have no history and are zeros.
"""

from __future__ import annotations

from onnx import NodeProto

from snngraph.ir import synapses as S
from snngraph.ir.graph import Graph
from snngraph.ir.types import Ref
from snngraph.passes.unroll_full import split_step_name, step_name, unroll_fully
from snngraph.runtimes.onnx.build import BATCH, bind_outputs, explicit_state, tensor_info
from snngraph.runtimes.onnx.lower import Emitter, lower_synapse
from snngraph.runtimes.onnx.lower_neurons import lower_neuron


def build_unrolled(graph: Graph, num_steps: int) -> tuple[list[NodeProto], list, list, Emitter]:
    """The straight-line sequence model of ``graph`` over ``num_steps``: ``(nodes, inputs, outputs, emitter)``."""
    unrolled = unroll_fully(graph, num_steps)
    e = Emitter()
    first = next(iter(graph.inputs))
    batch = e.op("Shape", first, start=1, end=2, hint="batch")
    values: dict[Ref, str] = {}
    for name in graph.inputs:
        for t in range(num_steps):
            copy = step_name(name, t)
            values[Ref(copy, "out")] = e.op("Gather", name, e.const(t, dtype="int64"), axis=0, hint=copy)
    zeros: dict[tuple[int, ...], str] = {}

    def zeros_of(shape: tuple[int, ...]) -> str:
        if shape not in zeros:
            zeros[shape] = e.zeros([batch, *shape], hint="zeros")
        return zeros[shape]

    types = unrolled.types()
    for name in unrolled.topo_order():
        node = unrolled.nodes[name]
        shared = node.replace(name=split_step_name(name)[0])  # one initializer per parameter for all copies
        if isinstance(node, S.Input):
            continue
        if isinstance(node, S.Delay):
            values[Ref(name, "out")] = zeros_of(node.shape)
        elif node.family == "synapse":
            xs = [values[r] for r in node.inputs]
            values[Ref(name, "out")] = lower_synapse(e, shared, xs, [types[r] for r in node.inputs],
                                                     types[Ref(name, "out")])
        else:
            state = explicit_state(node, values) if node.state_inputs else {
                p: zeros_of(node.state_shape(types[node.inputs[0]].shape)) for p in node.state_ports}
            ports = lower_neuron(e, shared, values[node.inputs[0]], state)
            values.update({Ref(name, port): value for port, value in ports.items()})
    source_types = graph.types()
    inputs = [tensor_info(n, (num_steps, BATCH, *node.shape)) for n, node in graph.inputs.items()]
    outputs = [tensor_info(key, (num_steps, BATCH, *source_types[ref].shape)) for key, ref in graph.outputs.items()]
    pairs = []
    for key in graph.outputs:
        steps = [e.op("Unsqueeze", values[unrolled.outputs[step_name(key, t)]], e.ints([0]), hint=key)
                 for t in range(num_steps)]
        pairs.append((e.op("Concat", *steps, axis=0, hint=key) if num_steps > 1 else steps[0], key))
    bind_outputs(e, pairs)
    return e.nodes, inputs, outputs, e
