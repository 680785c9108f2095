r"""ONNX lowering of one time step of any neuron model, derived from its declaration.

The model's step function runs on :class:`~snngraph.runtimes.onnx.ops.OnnxOps` values: the input
and state are graph values, the parameters constants, and every operation that reads the input or
state becomes one ONNX node, in the step function's order. The torch kernel runs the same function
with the same float32 constants, so spikes come out exactly equal and membranes equal up to the
rounding of the synapses feeding them. Nothing here restates a model's maths.
"""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from snngraph.ir.errors import LoweringError
from snngraph.ir.node import Node
from snngraph.runtimes.onnx.lower import Emitter
from snngraph.runtimes.onnx.ops import Const, OnnxOps, Sym

Ports = dict[str, str]


def lower_neuron(e: Emitter, node: Node, x: str, state: Ports) -> Ports:
    """One step of ``node``: input ``x`` and previous state by port name -> every output port's value.

    Raises:
        LoweringError: naming the node, when its step function does something ONNX cannot express
            (a Python ``if`` on a value, a non-value result).
    """
    model = getattr(node, "model", None)
    if model is None:
        raise LoweringError(f"{node.op} '{node.name}': not a neuron model")
    ops = OnnxOps(e, node)
    p = {k: ops.param(k) for k in model.params} | {k: getattr(node, k) for k in model.options} | node.dims()
    out, new = model.step(ops, ops.sym(x), {k: ops.sym(state[k]) for k in model.state_ports}, p)
    missing = [k for k in model.state if k not in new]
    if missing:
        raise LoweringError(f"{node.op} '{node.name}': the step function returned no {missing}")
    values = {"spk": out, **new} if model.spiking else dict(new)
    taken = {x, *state.values()}
    return {port: _materialised(e, ops, values[port], x, taken) for port in node.ports}


def _materialised(e: Emitter, ops: OnnxOps, value: object, like: str, taken: set[str]) -> str:
    """A graph value for an output port: constants broadcast to the input's shape; a value that is
    one of the step's own inputs is copied (a Scan body may not return its inputs)."""
    if isinstance(value, Sym):
        return e.op("Identity", value.name, hint=ops.node.name) if value.name in taken else value.name
    if isinstance(value, (Const, int, float)) and not isinstance(value, bool):
        shape = e.op("Shape", like, hint=ops.node.name)
        const = ops.name(value)
        zeros = e.op("ConstantOfShape", shape, hint=ops.node.name,
                     value=numpy_helper.from_array(np.zeros(1, np.float32), name="zero"))
        return e.add(zeros, const, hint=ops.node.name)
    raise LoweringError(f"{ops.context}: the step function produced {type(value).__name__}, not a value")
