"""snngraph -> NIR: one converter per node kind (the table in ``docs/nir.md``).

``add``, ``dropout`` and ``dropout2d`` have no NIR node: NIR sums every edge into a node, so an ``add``
becomes the edges of its inputs into its consumers, and dropout (identity at inference) passes its input on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import nir
import numpy as np

from snngraph.frontends.nir import (
    META_DT,
    META_INDEX,
    META_METHOD,
    META_NAME,
    META_PORT,
    META_RESET,
    META_RESET_DELAY,
    META_SHAPES,
    tau_from_decay,
)
from snngraph.ir.errors import GraphError
from snngraph.ir.graph import Graph
from snngraph.ir.node import Node
from snngraph.ir.types import Param, Ref

PASS_THROUGH = ("add", "dropout", "dropout2d")


class _Ctx:
    """What every converter needs: the step, the method and the value types."""

    def __init__(self, graph: Graph, dt: float, method: str):
        self.graph, self.dt, self.method = graph, dt, method
        self.types = graph.types()
        self.mem_outputs = {ref.node for ref in graph.outputs.values()
                            if ref.port != graph.nodes[ref.node].default_port}
        self.alias: dict[str, str] = {}  # neuron -> the Scale node carrying its graded spikes

    def shape(self, node: Node) -> tuple[int, ...]:
        return self.types[Ref(node.name, node.default_port)].shape

    def in_shape(self, node: Node) -> tuple[int, ...]:
        return self.types[node.inputs[0]].shape


def export_graph(graph: Graph, dt: float, method: str) -> nir.NIRGraph:
    """The NIR graph of ``graph`` (see :func:`snngraph.frontends.nir.to_nir`)."""
    ctx = _Ctx(graph, dt, method)
    nodes: dict[str, nir.NIRNode] = {}
    edges: list[tuple[str, str]] = []
    order = [n for n in graph.topo_order() if graph.nodes[n].op not in PASS_THROUGH]
    for name in order:
        node = graph.nodes[name]
        convert = CONVERTERS.get(node.op)
        if convert is None:
            raise node.error("has no NIR counterpart (supported: " + ", ".join(sorted(CONVERTERS)) + ")")
        if getattr(node, "state_inputs", False):
            raise node.error("has explicit state inputs (state_inputs=True), which NIR cannot state")
        nodes[name] = convert(node, ctx)
        _graded(node, ctx, nodes, edges)
    for name in order:  # after every node, so that reads of graded neurons (delays come first) see the Scale
        for ref in graph.nodes[name].inputs:
            for src in _sources(ctx, ref, name):
                _add_edge(edges, src, name)
    _export_outputs(ctx, nodes, edges)
    meta = {META_DT: dt, META_METHOD: method, META_NAME: graph.name}
    try:
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)
    except (ValueError, AssertionError) as err:
        raise GraphError(f"graph '{graph.name}': NIR rejected the exported graph: {err}") from err


def _add_edge(edges: list[tuple[str, str]], src: str, dst: str) -> None:
    if (src, dst) in edges:
        raise GraphError(f"'{dst}' reads '{src}' twice (through add): NIR cannot state a repeated edge")
    edges.append((src, dst))


def _graded(node: Node, ctx: _Ctx, nodes: dict, edges: list) -> None:
    """Spikes of amplitude ``g != 1``: the NIR neuron's unit spikes, then ``Scale(g)`` named ``<node>_graded``."""
    factor = getattr(node, "graded_spikes_factor", None)
    if factor is None or np.all(factor.value == 1):
        return
    key, i = f"{node.name}_graded", 1
    while key in ctx.graph.nodes or key in nodes:
        i += 1
        key = f"{node.name}_graded_{i}"
    nodes[key] = nir.Scale(scale=np.broadcast_to(_f32(factor), ctx.shape(node)).copy(),
                           metadata={META_SHAPES: {"factor": _shape_text(factor)}})
    edges.append((node.name, key))
    ctx.alias[node.name] = key


def _sources(ctx: _Ctx, ref: Ref, reader: str) -> list[str]:
    """The NIR nodes whose sum is the value ``ref`` (``add``/``dropout`` dissolved)."""
    node = ctx.graph.nodes[ref.node]
    if node.op in PASS_THROUGH:
        return [s for r in node.inputs for s in _sources(ctx, r, node.name)]
    if ref.port != node.default_port:
        raise GraphError(f"'{reader}' reads '{ref.node}.{ref.port}': NIR edges carry only a node's main output "
                         f"('{node.default_port}')")
    return [ctx.alias.get(ref.node, ref.node)]


def _export_outputs(ctx: _Ctx, nodes: dict, edges: list) -> None:
    graph = ctx.graph
    types = graph.types()
    for index, (out_name, ref) in enumerate(graph.outputs.items()):
        key = out_name if out_name not in nodes else f"{out_name}_output"
        meta: dict[str, Any] = {META_INDEX: index} if key == out_name else {META_INDEX: index, META_NAME: out_name}
        node = graph.nodes[ref.node]
        if node.op not in PASS_THROUGH and ref.port != node.default_port:  # a state port: metadata
            meta[META_PORT] = ref.port
            srcs = [ref.node]
        else:
            srcs = _sources(ctx, ref, f"output {out_name}")
        nodes[key] = nir.Output(output_type=np.array(types[ref].shape), metadata=meta)
        for src in srcs:
            _add_edge(edges, src, key)


# --- synapses ----------------------------------------------------------------------------------------
def _f32(value: Any) -> np.ndarray:
    return np.array(value.value if isinstance(value, Param) else value, dtype=np.float32)


def _input(node: Node, ctx: _Ctx) -> nir.NIRNode:
    return nir.Input(input_type=np.array(node.shape))


def _linear(node: Node, ctx: _Ctx) -> nir.NIRNode:
    if len(ctx.in_shape(node)) != 1:
        raise node.error(f"NIR Affine/Linear needs a 1-D input, got per-step shape {list(ctx.in_shape(node))}")
    if node.bias is None:
        return nir.Linear(weight=_f32(node.weight))
    return nir.Affine(weight=_f32(node.weight), bias=_f32(node.bias))


def _conv_bias(node: Node) -> np.ndarray:
    return _f32(node.bias) if node.bias is not None else np.zeros(node.out_channels, np.float32)


def _typed(conv: nir.NIRNode, node: Node, ctx: _Ctx) -> nir.NIRNode:
    """Set a conv node's types from snngraph's inference: NIR's own takes the input channels from
    ``weight.shape[1]`` (wrong for groups > 1) and one kernel size for both dims (wrong for non-square kernels)."""
    conv.input_type = {"input": np.array(ctx.in_shape(node))}
    conv.output_type = {"output": np.array(ctx.shape(node))}
    return conv


def _conv1d(node: Node, ctx: _Ctx) -> nir.NIRNode:
    conv = nir.Conv1d(input_shape=ctx.in_shape(node)[1], weight=_f32(node.weight), stride=node.stride[0],
                      padding=node.padding[0], dilation=node.dilation[0], groups=node.groups, bias=_conv_bias(node))
    return _typed(conv, node, ctx)


def _conv2d(node: Node, ctx: _Ctx) -> nir.NIRNode:
    conv = nir.Conv2d(input_shape=tuple(ctx.in_shape(node)[1:]), weight=_f32(node.weight), stride=node.stride,
                      padding=node.padding, dilation=node.dilation, groups=node.groups, bias=_conv_bias(node))
    return _typed(conv, node, ctx)


def _avg_pool2d(node: Node, ctx: _Ctx) -> nir.NIRNode:
    return nir.AvgPool2d(kernel_size=np.array(node.kernel_size), stride=np.array(node.stride),
                         padding=np.array(node.padding))


def _flatten(node: Node, ctx: _Ctx) -> nir.NIRNode:
    shape = ctx.in_shape(node)
    n = len(shape)
    return nir.Flatten(input_type={"input": np.array(shape)}, start_dim=node.start_dim % n, end_dim=node.end_dim % n)


def _scale(node: Node, ctx: _Ctx) -> nir.NIRNode:
    factor = np.broadcast_to(_f32(node.factor), ctx.shape(node)).copy()
    return nir.Scale(scale=factor, metadata={META_SHAPES: {"factor": _shape_text(node.factor)}})


def _delay(node: Node, ctx: _Ctx) -> nir.NIRNode:
    return nir.Delay(delay=np.full(node.shape, node.steps * ctx.dt, dtype=np.float64))


# --- neurons -----------------------------------------------------------------------------------------
def _shape_text(param: Param | None) -> str:
    return "" if param is None else ",".join(str(d) for d in param.shape)


def _meta(node: Node, ctx: _Ctx, keys: tuple[str, ...]) -> dict[str, Any]:
    if getattr(node, "inhibition", False) or getattr(node, "state_quant", None) is not None:
        raise node.error("inhibition and state_quant have no NIR counterpart")
    meta: dict[str, Any] = {META_METHOD: ctx.method, META_DT: ctx.dt,
                            META_SHAPES: {k: _shape_text(getattr(node, k, None)) for k in keys
                                         if getattr(node, k, None) is not None}}
    if hasattr(node, "reset_mechanism"):
        meta[META_RESET] = node.reset_mechanism
        meta[META_RESET_DELAY] = bool(getattr(node, "reset_delay", False))  # nir_lif: reset in the spiking step
    if node.op == "nir_lif":
        meta["snngraph_model"] = "nir_lif"
    return meta


def _full(node: Node, key: str, shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(np.asarray(getattr(node, key).value, np.float64), shape).copy()


def _check_spiking(node: Node) -> None:
    if not np.all(node.graded_spikes_factor.value == 1):
        raise node.error("graded_spikes_factor != 1 in a recurrent neuron has no NIR counterpart")


def _time_constant(node: Node, key: str, shape: tuple[int, ...], ctx: _Ctx) -> tuple[np.ndarray, np.ndarray]:
    """``(tau, r)`` for decay ``key``, with ``r = 1/(1-decay)`` so the input gain ``r (1-decay)`` is 1."""
    decay = _full(node, key, shape)
    if np.any(decay >= 1):
        raise node.error(f"{key} = 1 (no leak): NIR's {type(node).__name__} counterpart needs a finite time constant")
    with np.errstate(divide="ignore"):
        return tau_from_decay(decay, ctx.dt, ctx.method), 1.0 / (1.0 - decay)


def _leaky(node: Node, ctx: _Ctx) -> nir.NIRNode:
    shape = ctx.shape(node)
    thr = _full(node, "threshold", shape)
    beta = _full(node, "beta", shape)
    meta = _meta(node, ctx, ("beta", "threshold"))
    if np.all(beta == 0) and node.reset_mechanism == "none" and node.name not in ctx.mem_outputs:
        return nir.Threshold(threshold=thr, metadata=meta)
    if np.all(beta == 1):
        return nir.IF(r=np.ones(shape), v_threshold=thr, v_reset=np.zeros(shape), metadata=meta)
    tau, r = _time_constant(node, "beta", shape, ctx)
    return nir.LIF(tau=tau, r=r, v_leak=np.zeros(shape), v_threshold=thr, v_reset=np.zeros(shape), metadata=meta)


def _integrate_fire(node: Node, ctx: _Ctx) -> nir.NIRNode:
    shape = ctx.shape(node)
    return nir.IF(r=np.ones(shape), v_threshold=_full(node, "threshold", shape),
                  v_reset=np.zeros(shape), metadata=_meta(node, ctx, ("threshold",)))


def _cuba(node: Node, ctx: _Ctx, shape: tuple[int, ...]) -> nir.CubaLIF:
    tau_syn, w_in = _time_constant(node, "alpha", shape, ctx)
    tau_mem, r = _time_constant(node, "beta", shape, ctx)
    return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=r, v_leak=np.zeros(shape), w_in=w_in,
                       v_threshold=_full(node, "threshold", shape), v_reset=np.zeros(shape),
                       metadata=_meta(node, ctx, ("alpha", "beta", "threshold", "V")))


def _synaptic(node: Node, ctx: _Ctx) -> nir.NIRNode:
    return _cuba(node, ctx, ctx.shape(node))


def _leaky_integrator(node: Node, ctx: _Ctx) -> nir.NIRNode:
    shape = ctx.shape(node)
    meta = _meta(node, ctx, ("beta",))
    if np.all(node.beta.value == 1):
        return nir.I(r=np.ones(shape), metadata=meta)
    tau, r = _time_constant(node, "beta", shape, ctx)
    return nir.LI(tau=tau, r=r, v_leak=np.zeros(shape), metadata=meta)


def _recurrent(node: Node, ctx: _Ctx) -> nir.NIRNode:
    """RLeaky / RSynaptic as snnTorch exports them: a sub-graph ``input -> lif <-> w_rec``, ``lif -> output``."""
    shape = ctx.shape(node)
    if len(shape) != 1:
        raise node.error(f"NIR recurrence needs a 1-D population, got per-step shape {list(shape)}")
    _check_spiking(node)
    if node.op == "rsynaptic":
        cell = _cuba(node, ctx, shape)
    else:
        tau, r = _time_constant(node, "beta", shape, ctx)
        cell = nir.LIF(tau=tau, r=r, v_leak=np.zeros(shape), v_threshold=_full(node, "threshold", shape),
                       v_reset=np.zeros(shape), metadata=_meta(node, ctx, ("beta", "threshold", "V")))
    if node.all_to_all:
        w_rec = nir.Affine(weight=_f32(node.recurrent_weight), bias=_f32(node.recurrent_bias))
    else:
        w_rec = nir.Linear(weight=np.diag(np.broadcast_to(_f32(node.V), shape)).astype(np.float32))
    nodes = {"input": nir.Input(input_type=np.array(shape)), "lif": cell, "w_rec": w_rec,
             "output": nir.Output(output_type=np.array(shape))}
    edges = [("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={})


CONVERTERS: dict[str, Callable[[Node, _Ctx], nir.NIRNode]] = {
    "input": _input, "linear": _linear, "conv1d": _conv1d, "conv2d": _conv2d, "avg_pool2d": _avg_pool2d,
    "flatten": _flatten, "scale": _scale, "delay": _delay, "leaky": _leaky, "nir_lif": _leaky,
    "integrate_fire": _integrate_fire,
    "synaptic": _synaptic, "leaky_integrator": _leaky_integrator, "rleaky": _recurrent, "rsynaptic": _recurrent,
}
