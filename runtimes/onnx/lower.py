"""Per-node ONNX lowering: an emitter of ONNX nodes and the lowering of every synapse kind.

Synapses are lowered over *rows* ``(N, *shape)`` exactly like the torch runtime's ops, so one
lowering serves a single time step ``(B, ...)`` and a whole sequence flattened to ``(T*B, ...)``.
Neurons lower in :mod:`snngraph.runtimes.onnx.lower_neurons`. Parameters become initializers
named as in the torch ``state_dict`` (``fc1.weight``), in float32; values the kernels derive from
them are computed with the kernels' own operations, once, in the main graph (:meth:`Emitter.once`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from onnx import NodeProto, TensorProto, helper, numpy_helper

from snngraph.ir import synapses as S
from snngraph.ir.errors import LoweringError
from snngraph.ir.node import Node
from snngraph.ir.types import TensorType
from snngraph.runtimes.onnx.lower_layers import KINDS as LAYER_KINDS
from snngraph.runtimes.onnx.lower_layers import lower_layer
from snngraph.runtimes.onnx.lower_math import KINDS as MATH_KINDS
from snngraph.runtimes.onnx.lower_math import lower_math
from snngraph.runtimes.onnx.lower_spatial import KINDS as SPATIAL_KINDS
from snngraph.runtimes.onnx.lower_spatial import lower_spatial

FLOAT = TensorProto.FLOAT


class Emitter:
    """Collects ONNX nodes for one (sub)graph; initializers and fresh names are shared with the root.

    Subgraphs (``Scan`` bodies) read the root's initializers from the outer scope, so every
    parameter is stored once.

    Args:
        root: the emitter of the main graph, or ``None`` for the main graph itself.
    """

    def __init__(self, root: Emitter | None = None):
        self.root = root or self
        self.nodes: list[NodeProto] = []
        if root is None:
            self.initializers: dict[str, np.ndarray] = {}
            self._counts: dict[str, int] = {}
            self._once: dict[str, str] = {}

    def sub(self) -> Emitter:
        """A fresh emitter for a subgraph of this model."""
        return Emitter(self.root)

    def fresh(self, hint: str) -> str:
        """A value name unused in the whole model (``hint/k``: ``/`` never appears in IR names)."""
        counts = self.root._counts
        counts[hint] = counts.get(hint, 0) + 1
        return f"{hint}/{counts[hint]}"

    def op(self, op_type: str, *inputs: str, hint: str = "", outputs: int = 1, **attrs: Any) -> Any:
        """Append a node; return its output name (or the list of names when ``outputs > 1``)."""
        names = [self.fresh(f"{hint or 'v'}/{op_type}") for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=names[0], **attrs))
        return names[0] if outputs == 1 else names

    def const(self, value: Any, name: str | None = None, dtype: Any = np.float32) -> str:
        """An initializer holding ``value``; ``name`` defaults to a name derived from the value."""
        arr = np.array(value, dtype=dtype, order="C")
        if name is None:
            key = arr.tobytes().hex() if arr.size <= 8 else None
            name = f"const/{arr.dtype}/{list(arr.shape)}/{key}" if key is not None else self.fresh("const")
        inits = self.root.initializers
        if name in inits:
            if inits[name].shape != arr.shape or not np.array_equal(inits[name], arr, equal_nan=True):
                raise LoweringError(f"ONNX export: two different constants named {name!r}")
            return name
        inits[name] = arr
        return name

    def ints(self, values: Sequence[int]) -> str:
        """An int64 vector constant (shapes, axes, slice bounds)."""
        return self.const(list(values), dtype=np.int64)

    def param(self, node: Node, key: str) -> str:
        """The initializer ``<node>.<param>`` (public name, float32) of a parameter field."""
        public = node.param_aliases.get(key, key)
        return self.const(param_value(node, key), name=f"{node.name}.{public}")

    def once(self, key: str, make: Callable[[Emitter], str]) -> str:
        """A value computed from constants only: emitted once, in the main graph (never in a loop body).

        onnxruntime folds such nodes at load time, so they cost nothing per step.
        """
        done = self.root._once
        if key not in done:
            done[key] = make(self.root)
        return done[key]

    # --- element-wise helpers (names in, name out) -----------------------------------------------
    def add(self, a: str, b: str, hint: str = "") -> str:
        return self.op("Add", a, b, hint=hint)

    def sub_(self, a: str, b: str, hint: str = "") -> str:
        return self.op("Sub", a, b, hint=hint)

    def mul(self, a: str, b: str, hint: str = "") -> str:
        return self.op("Mul", a, b, hint=hint)

    def div(self, a: str, b: str, hint: str = "") -> str:
        return self.op("Div", a, b, hint=hint)

    def heaviside(self, x: str, hint: str = "") -> str:
        """``(x > 0)`` as float32: the forward pass of every surrogate spike."""
        return self.op("Cast", self.op("Greater", x, self.const(0.0), hint=hint), to=FLOAT, hint=hint)

    def zeros(self, dims: Sequence[Any], hint: str = "") -> str:
        """Zeros of shape ``dims``: ints, or names of int64 vectors holding dynamic dims."""
        parts = [d if isinstance(d, str) else self.ints([d]) for d in dims]
        shape = parts[0] if len(parts) == 1 else self.op("Concat", *parts, axis=0, hint=hint)
        return self.op("ConstantOfShape", shape, hint=hint,
                       value=numpy_helper.from_array(np.zeros(1, np.float32), name="zero"))


def param_value(node: Node, key: str) -> np.ndarray:
    """A parameter field of ``node`` as float32 (export runs in float32).

    Raises:
        LoweringError: naming the node, for float64 values beyond the float32 range.
    """
    value = getattr(node, key).value
    if value.size and float(np.max(np.abs(value))) > float(np.finfo(np.float32).max):
        raise LoweringError(f"{node.op} '{node.name}': parameter '{key}' has values beyond the float32 range, and the "
                            "ONNX export runs in float32")
    return np.asarray(value, dtype=np.float32)


def is_one(node: Node, key: str) -> bool:
    """Whether a parameter is the scalar 1 (multiplying or dividing by it is exact and skipped)."""
    v = param_value(node, key)
    return v.ndim == 0 and float(v) == 1.0


def _row_dim(d: int) -> int:
    """A per-step dim as a dim of the rows tensor ``(N, *shape)``."""
    return d + 1 if d >= 0 else d


def _spatial_attrs(node: Node, conv: bool) -> dict[str, Any]:
    attrs: dict[str, Any] = dict(kernel_shape=list(node.kernel_size), strides=list(node.stride),
                                 pads=list(node.padding) * 2)
    if conv:
        attrs.update(dilations=list(node.dilation), group=node.groups)
        del attrs["kernel_shape"]
    return attrs


def _linear(e: Emitter, node: S.Linear, x: str, rank: int) -> str:
    w = e.param(node, "weight")
    if rank == 2:
        ins = [x, w] + ([e.param(node, "bias")] if node.bias is not None else [])
        return e.op("Gemm", *ins, transB=1, hint=node.name)
    out = e.op("MatMul", x, e.op("Transpose", w, perm=[1, 0], hint=node.name), hint=node.name)
    return e.add(out, e.param(node, "bias"), hint=node.name) if node.bias is not None else out


def _batch_norm(e: Emitter, node: S.BatchNorm, x: str) -> str:
    """Evaluation-mode batch norm with the running statistics (``BatchNormalization``)."""
    c = node.num_features
    scale = e.param(node, "weight") if node.weight is not None else e.const(np.ones(c, np.float32))
    bias = e.param(node, "bias") if node.bias is not None else e.const(np.zeros(c, np.float32))
    return e.op("BatchNormalization", x, scale, bias, e.param(node, "running_mean"), e.param(node, "running_var"),
                epsilon=float(node.eps), hint=node.name)


def _max_pool(e: Emitter, node: Node, x: str) -> str:
    """``MaxPool`` that propagates NaN like torch: a window holding a NaN gives NaN.

    onnxruntime's ``MaxPool`` skips NaN (a window ``[nan, 0]`` gives 0), so a NaN reaching a
    neuron would spike in the export and not in torch. A second ``MaxPool`` over the NaN mask
    (padding never fills a whole window) selects the windows to overwrite with NaN.
    """
    attrs = _spatial_attrs(node, conv=False)
    pooled = e.op("MaxPool", x, hint=node.name, **attrs)
    mask = e.op("Cast", e.op("IsNaN", x, hint=node.name), to=FLOAT, hint=node.name)
    window = e.op("Cast", e.op("MaxPool", mask, hint=node.name, **attrs), to=TensorProto.BOOL, hint=node.name)
    return e.op("Where", window, e.const(np.float32("nan")), pooled, hint=node.name)


def lower_synapse(e: Emitter, node: Node, xs: list[str], in_types: list[TensorType], out_type: TensorType) -> str:
    """Lower a (non-delay) synapse over rows ``(N, *shape)``; return the output's name.

    Args:
        e: where the nodes go.
        node: the synapse.
        xs: its inputs' value names, as rows.
        in_types: the per-step types of its inputs.
        out_type: the per-step type of its output.

    Raises:
        LoweringError: naming the node, for a kind without an ONNX lowering.
    """
    n, x, h = node, xs[0], node.name
    if isinstance(n, S.Linear):
        return _linear(e, n, x, len(in_types[0].shape) + 1)
    if isinstance(n, (S.Conv1d, S.Conv2d)):
        ins = [x, e.param(n, "weight")] + ([e.param(n, "bias")] if n.bias is not None else [])
        return e.op("Conv", *ins, hint=h, **_spatial_attrs(n, conv=True))
    if isinstance(n, (S.MaxPool1d, S.MaxPool2d)):
        return _max_pool(e, n, x)
    if isinstance(n, (S.AvgPool1d, S.AvgPool2d)):
        return e.op("AveragePool", x, hint=h, count_include_pad=1, **_spatial_attrs(n, conv=False))
    if isinstance(n, S.Flatten):
        return e.op("Reshape", x, e.ints([-1, *out_type.shape]), hint=h)
    if isinstance(n, S.Add):
        out = xs[0]
        for other in xs[1:]:
            out = e.add(out, other, hint=h)
        return out
    if isinstance(n, S.Concat):
        return e.op("Concat", *xs, axis=_row_dim(n.dim), hint=h) if len(xs) > 1 else e.op("Identity", x, hint=h)
    if isinstance(n, S.Scale):
        return e.mul(x, e.param(n, "factor"), hint=h)
    if isinstance(n, S.ReLU):
        return e.op("Relu", x, hint=h)
    if isinstance(n, S.Dropout):
        return e.op("Identity", x, hint=h)
    if isinstance(n, S.BatchNorm):
        return _batch_norm(e, n, x)
    if isinstance(n, LAYER_KINDS):
        return lower_layer(e, n, xs, in_types)
    if isinstance(n, MATH_KINDS):
        return lower_math(e, n, xs, in_types)
    if isinstance(n, SPATIAL_KINDS):
        return lower_spatial(e, n, xs, in_types, out_type)
    raise LoweringError(f"{node.op} '{node.name}': no ONNX lowering for this node kind")
