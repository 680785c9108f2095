"""``sg.export_onnx``: a graph (or a compiled, possibly trained net) as an ONNX model.

The ONNX graph is built directly from the IR with ``onnx.helper``, node by node, never by tracing
the eager module. ``onnx.helper`` rather than onnxscript / onnx-ir: it adds no dependency beyond
``onnx`` itself, and it gives full control over what matters here, the ``Scan`` over time with
its loop-carried state and the exact operation order that makes spikes bit-identical to the torch
kernels. Everything is exported in float32.

Two modes (SPEC §7):

* ``"sequence"``: inputs ``(T, B, *shape)``, outputs ``(T, B, ...)``; T and B are dynamic unless
  ``num_steps`` fixes T. With ``num_steps`` and ``unroll=True`` the model is straight-line, built
  from the fully unrolled graph, without ``Scan`` (``build_unrolled``).
* ``"step"``: one time step; inputs are the graph inputs ``(B, *shape)`` followed by one tensor per
  state entry, named as ``CompiledNet.init_state`` names them (``lif1.mem``, ``fb.buffer``);
  outputs are the graph outputs followed by the new states (``lif1.mem.next``) in the same order.
  Zeros are a fresh state.

The model's ``metadata_props["snngraph"]`` holds JSON with the mode, inputs, outputs, the state
names and shapes (``"B"`` for the batch dimension) and the time conventions.
"""

from __future__ import annotations

import json
import os
from typing import Any

import onnx
from onnx import helper, numpy_helper

from snngraph import __version__
from snngraph.ir.errors import GraphError, LoweringError
from snngraph.ir.graph import Graph
from snngraph.ir.node import Node
from snngraph.passes import default_pipeline
from snngraph.passes.manager import PassManager
from snngraph.runtimes.onnx.build import BATCH, TIME, build_sequence, build_step, state_entries
from snngraph.runtimes.onnx.build_unrolled import build_unrolled

MODES = ("sequence", "step")
METADATA_KEY = "snngraph"
MIN_OPSET = 15


def export_onnx(g_or_net: Any, path: str | os.PathLike | None, mode: str = "sequence", num_steps: int | None = None,
                opset: int = 17, unroll: bool = False) -> onnx.ModelProto:
    """Export a graph or a compiled net to ONNX; write it to ``path`` (unless ``None``) and return it.

    Args:
        g_or_net: an ``sg.Graph``, or a ``CompiledNet`` (its current, e.g. trained, parameters).
        path: the ``.onnx`` file to write, or ``None`` to only return the model.
        mode: ``"sequence"`` (whole ``(T, B, ...)`` sequences) or ``"step"`` (one step, explicit state).
        num_steps: fixes T in sequence mode; ``None`` keeps it dynamic.
        opset: the ONNX opset (at least 15).
        unroll: with ``num_steps``, a straight-line model (no ``Scan``) of the fully unrolled graph,
            same inputs and outputs; every parameter is stored once.

    Returns:
        The model, checked with ``onnx.checker.check_model(full_check=True)``.

    Raises:
        GraphError: an invalid graph or argument, or a construct without an ONNX lowering
            (the message names the node).
    """
    _check_args(mode, num_steps, opset)
    if unroll is not False and (unroll is not True or num_steps is None):
        raise GraphError(f"export_onnx: unroll=True needs mode='sequence' and num_steps (a fixed T), got "
                         f"unroll={unroll!r}, mode={mode!r}, num_steps={num_steps!r}")
    graph = _prepare(g_or_net)
    if mode == "step":
        nodes, inputs, outputs, e, entries = build_step(graph)
    elif unroll:
        nodes, inputs, outputs, e = build_unrolled(graph, num_steps)
        entries = state_entries(graph)
    else:
        nodes, inputs, outputs, e = build_sequence(graph, num_steps)
        entries = state_entries(graph)
    initializers = [numpy_helper.from_array(v, name=k) for k, v in e.initializers.items()]
    proto = helper.make_graph(nodes, graph.name, inputs, outputs, initializer=initializers,
                              doc_string=graph.to_text())
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(proto, opset_imports=opsets, producer_name="snngraph", producer_version=__version__,
                              ir_version=helper.find_min_ir_version_for(opsets))
    meta = metadata(graph, mode, num_steps, entries, opset) | {"unrolled": unroll}
    helper.set_model_props(model, {METADATA_KEY: json.dumps(meta)})
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        # a lowering bug rather than a user mistake: say which graph
        raise LoweringError(f"ONNX export of graph '{graph.name}' produced an invalid model: {err}") from err
    if path is not None:
        onnx.save_model(model, os.fspath(path))
    return model


def _prepare(g_or_net: Any) -> Graph:
    """The graph to export: a net's ``to_graph()`` through ``sg.compile``'s pass pipeline.

    Running the same passes as ``sg.compile`` (dead nodes removed, stage order, surrogates) makes
    the step model's state entries the very ones, in the same order, as ``CompiledNet.init_state``.
    """
    graph = g_or_net.to_graph() if hasattr(g_or_net, "to_graph") and not isinstance(g_or_net, Graph) else g_or_net
    if not isinstance(graph, Graph):
        raise GraphError(f"export_onnx expects an sg.Graph or a compiled net, got {type(g_or_net).__name__}")
    graph = PassManager(default_pipeline(), verify=True)(graph)
    for node in graph.nodes.values():
        if node.family == "neuron" and node.model.spiking:
            check_heaviside_forward(node)
    return graph


def check_heaviside_forward(node: Node) -> None:
    """The export computes spikes as ``(mem - threshold) > 0``: a user callable must do the same."""
    spec = node.surrogate
    if spec is None or spec.name != "callable":
        return
    import torch

    probe = torch.linspace(-2.0, 2.0, 41)
    try:
        with torch.no_grad():
            out = spec.fn(probe)
    except Exception as err:
        raise node.error(f"cannot export its spike_grad callable: calling it failed ({err})") from err
    if not isinstance(out, torch.Tensor) or out.shape != probe.shape or \
            not torch.equal(out.to(probe.dtype), (probe > 0).to(probe.dtype)):
        raise node.error("cannot export its spike_grad callable: its forward pass is not the Heaviside step "
                         "(mem - threshold) > 0")


def _check_args(mode: str, num_steps: int | None, opset: int) -> None:
    if mode not in MODES:
        raise GraphError(f"export_onnx: mode must be one of {MODES}, got {mode!r}")
    if num_steps is not None and (not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 1):
        raise GraphError(f"export_onnx: num_steps must be a positive int or None, got {num_steps!r}")
    if num_steps is not None and mode == "step":
        raise GraphError("export_onnx: num_steps applies to mode='sequence' only (a step model runs one step)")
    if not isinstance(opset, int) or not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise GraphError(f"export_onnx: opset must be an int in [{MIN_OPSET}, {onnx.defs.onnx_opset_version()}], "
                         f"got {opset!r}")


def metadata(graph: Graph, mode: str, num_steps: int | None, entries: list, opset: int) -> dict[str, Any]:
    """The JSON recorded in ``metadata_props["snngraph"]``."""
    types = graph.types()
    lead = [BATCH] if mode == "step" else [TIME if num_steps is None else num_steps, BATCH]
    neurons = {n: {"op": node.op, "reset_mechanism": getattr(node, "reset_mechanism", None),
                   "reset_delay": getattr(node, "reset_delay", None)}
               for n, node in graph.nodes.items() if node.family == "neuron"}
    return {
        "format": "snngraph-onnx/1",
        "graph": graph.name,
        "mode": mode,
        "opset": opset,
        "dtype": "float32",
        "inputs": {n: [*lead, *node.shape] for n, node in graph.inputs.items()},
        "outputs": {k: [*lead, *types[r].shape] for k, r in graph.outputs.items()},
        "states": [{"name": s.name, "shape": list(s.dims), "next": f"{s.name}.next", "init": "zeros"}
                   for s in entries] if mode == "step" else [],
        "state_layout": [{"name": s.name, "shape": list(s.dims)} for s in entries],
        "time": {"dt": 1, "unit": "step", "num_steps": num_steps,
                 "convention": "x[t] -> y[t]; delays: y[t] = x[t - steps], zeros before; buffers hold the "
                               "last `steps` inputs, oldest first",
                 "neurons": neurons},
    }
