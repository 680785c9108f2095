"""The ONNX implementation of the ``ops`` interface (see :mod:`snngraph.ir.model`): a model's step
function, run on symbolic values, emits its ONNX nodes.

Values are :class:`Sym` (a value of the graph being built: the input, the state, anything computed
from them) or :class:`Const` (known at export: a parameter, or an expression of parameters only).
Operations between constants are folded at export **with torch**, by the very operations the torch
kernel runs, so they equal the kernel's values bit for bit (the clamp of a decay, Lapicque's
``1 / (R C)``, Alpha's :math:`\\tau_\\alpha`); only operations that read a :class:`Sym` become nodes.
No parameter expression is left in a ``Scan`` body: the body reads initializers only (some runtimes,
OpenVINO among them, reject bodies that read other outer-scope values). A raw parameter is the
initializer named as in the ``state_dict`` (``lif1.beta``); a folded expression is an initializer
named after it. Multiplying or dividing by a scalar constant 1 is skipped (exact).
"""

from __future__ import annotations

import hashlib
import math
import operator
from typing import Any

import numpy as np
import torch
from onnx import TensorProto

from snngraph.ir.errors import LoweringError
from snngraph.ir.node import Node

FLOAT, BOOL = TensorProto.FLOAT, TensorProto.BOOL


class _Value:
    """Arithmetic on values: every operator goes through the :class:`OnnxOps` that made the value."""

    __slots__ = ("ops",)

    def __add__(self, other: Any) -> Any:
        return self.ops.binary("Add", self, other)

    def __radd__(self, other: Any) -> Any:
        return self.ops.binary("Add", other, self)

    def __sub__(self, other: Any) -> Any:
        return self.ops.binary("Sub", self, other)

    def __rsub__(self, other: Any) -> Any:
        return self.ops.binary("Sub", other, self)

    def __mul__(self, other: Any) -> Any:
        return self.ops.binary("Mul", self, other)

    def __rmul__(self, other: Any) -> Any:
        return self.ops.binary("Mul", other, self)

    def __truediv__(self, other: Any) -> Any:
        return self.ops.binary("Div", self, other)

    def __rtruediv__(self, other: Any) -> Any:
        return self.ops.binary("Div", other, self)

    def __neg__(self) -> Any:
        return self.ops.unary("Neg", self)

    def __bool__(self) -> bool:
        raise LoweringError(f"{self.ops.context}: a value's truth is unknown at export; branch on options, "
                            "or use ops.where")


class Sym(_Value):
    """A value of the ONNX graph, by name."""

    __slots__ = ("name",)

    def __init__(self, ops: OnnxOps, name: str):
        self.ops, self.name = ops, name


class Const(_Value):
    """A float32 value known at export (torch tensor) and the initializer name it gets when used."""

    __slots__ = ("value", "label", "param")

    def __init__(self, ops: OnnxOps, value: torch.Tensor, label: str, param: str | None = None):
        self.ops, self.value, self.label, self.param = ops, value, label, param


_ARITHMETIC = {"Add": operator.add, "Sub": operator.sub, "Mul": operator.mul, "Div": operator.truediv}
_TORCH = {"Neg": torch.neg, "Exp": torch.exp, "Log": torch.log, "Abs": torch.abs, "Sigmoid": torch.sigmoid,
          "Tanh": torch.tanh}
_SYMBOL = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/"}


class OnnxOps:
    """``ops`` emitting ONNX nodes for one step of ``node`` into emitter ``e``."""

    def __init__(self, e: Any, node: Node):
        self.e, self.node, self.context = e, node, f"{node.op} '{node.name}'"
        self._quantised: set[str] = set()

    # --- values -------------------------------------------------------------------------------------
    def sym(self, name: str) -> Sym:
        return Sym(self, name)

    def param(self, key: str) -> Const:
        """The parameter field ``key`` of the node, as float32 (export runs in float32)."""
        public = self.node.param_aliases.get(key, key)
        value = torch.from_numpy(np.asarray(getattr(self.node, key).value, dtype=np.float32).copy())
        return Const(self, value, public, param=f"{self.node.name}.{public}")

    def _const(self, value: Any, label: str) -> Const:
        return Const(self, torch.as_tensor(value, dtype=torch.float32), label)

    def name(self, v: Any) -> str:
        """The graph name of ``v``: a Sym's own, or the initializer of a constant."""
        if isinstance(v, Sym):
            return v.name
        if isinstance(v, Const):
            arr = v.value.numpy()
            if v.param is not None:
                return self.e.const(arr, name=v.param)
            if arr.size <= 8:
                return self.e.const(arr)
            label = v.label if len(v.label) <= 64 else hashlib.sha1(v.label.encode()).hexdigest()[:12]
            return self.e.const(arr, name=f"{self.node.name}/{label}")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return self.e.const(np.float32(v))
        raise LoweringError(f"{self.context}: the step function produced {type(v).__name__}, not a value")

    def _folded(self, v: Any) -> tuple[Any, str] | None:
        """``(torch value or float, label)`` of a constant, ``None`` for a Sym."""
        if isinstance(v, Const):
            return v.value, v.label
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v), repr(float(v))
        if isinstance(v, Sym):
            return None
        raise LoweringError(f"{self.context}: cannot use {type(v).__name__} in the step function")

    def _op(self, op_type: str, *values: Any, **attrs: Any) -> Sym:
        return Sym(self, self.e.op(op_type, *(self.name(v) for v in values), hint=self.node.name, **attrs))

    @staticmethod
    def _is_one(v: Any) -> bool:
        if isinstance(v, Const):
            return v.value.dim() == 0 and float(v.value) == 1.0
        return isinstance(v, (int, float)) and not isinstance(v, bool) and v == 1.0

    def binary(self, op_type: str, a: Any, b: Any) -> Any:
        fa, fb = self._folded(a), self._folded(b)
        if fa is not None and fb is not None:
            value = _fold(op_type, fa[0], fb[0])  # the Python operators, as the torch kernel applies them
            if isinstance(value, float):
                return value
            return self._const(value, f"({fa[1]}{_SYMBOL.get(op_type, op_type)}{fb[1]})")
        if op_type == "Mul" and self._is_one(a):
            return b
        if op_type in ("Mul", "Div") and self._is_one(b):
            return a
        return self._op(op_type, a, b)

    def unary(self, op_type: str, v: Any) -> Any:
        folded = self._folded(v)
        if folded is not None:
            if isinstance(folded[0], float):
                return _scalar_unary(op_type, folded[0])
            return self._const(_TORCH[op_type](folded[0]), f"{op_type.lower()}({folded[1]})")
        return self._op(op_type, v)

    # --- the ops interface --------------------------------------------------------------------------
    def spike(self, v: Any) -> Any:
        """``H(v) = [v > 0]`` as float32: the forward pass of every surrogate."""
        return self.gt(v, 0.0)

    @staticmethod
    def detach(v: Any) -> Any:
        return v

    def clamp(self, v: Any, lo: float | None = None, hi: float | None = None) -> Any:
        folded = self._folded(v)
        if folded is not None:
            value = folded[0]
            if isinstance(value, float):
                value = value if lo is None else max(value, lo)
                return value if hi is None else min(value, hi)
            return self._const(value.clamp(lo, hi), f"clip({folded[1]},{lo},{hi})")
        bounds = ["" if b is None else self.name(float(b)) for b in (lo, hi)]
        return Sym(self, self.e.op("Clip", v.name, *bounds, hint=self.node.name))

    def exp(self, v: Any) -> Any:
        return self.unary("Exp", v)

    def log(self, v: Any) -> Any:
        return self.unary("Log", v)

    def abs(self, v: Any) -> Any:
        return self.unary("Abs", v)

    def sigmoid(self, v: Any) -> Any:
        return self.unary("Sigmoid", v)

    def minimum(self, a: Any, b: Any) -> Any:
        return self.binary("Min", a, b)

    def maximum(self, a: Any, b: Any) -> Any:
        return self.binary("Max", a, b)

    def _compare(self, op_type: str, fold: Any, a: Any, b: Any) -> Any:
        fa, fb = self._folded(a), self._folded(b)
        if fa is not None and fb is not None:
            result = fold(torch.as_tensor(fa[0], dtype=torch.float32), torch.as_tensor(fb[0], dtype=torch.float32))
            return self._const(result.to(torch.float32), f"{op_type.lower()}({fa[1]},{fb[1]})")
        return self._op("Cast", self._op(op_type, a, b), to=FLOAT)

    def gt(self, a: Any, b: Any) -> Any:
        return self._compare("Greater", torch.gt, a, b)

    def ge(self, a: Any, b: Any) -> Any:
        return self._compare("GreaterOrEqual", torch.ge, a, b)

    def lt(self, a: Any, b: Any) -> Any:
        return self._compare("Less", torch.lt, a, b)

    def le(self, a: Any, b: Any) -> Any:
        return self._compare("LessOrEqual", torch.le, a, b)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        folded = [self._folded(v) for v in (cond, a, b)]
        if all(f is not None for f in folded):
            c, x, y = (torch.as_tensor(f[0], dtype=torch.float32) for f in folded)
            return self._const(torch.where(c != 0, x, y), f"where({folded[0][1]},{folded[1][1]},{folded[2][1]})")
        return self._op("Where", self._op("Cast", cond, to=BOOL), a, b)

    def quant(self, v: Any) -> Any:
        """The nearest of the node's ``state_quant`` levels (``ArgMin`` of the distances, first on ties);
        the identity without levels, and for a value just quantised (the levels map to themselves)."""
        levels = getattr(self.node, "state_quant", None)
        if levels is None or (isinstance(v, Sym) and v.name in self._quantised):
            return v
        if not isinstance(v, Sym):
            raise LoweringError(f"{self.context}: state_quant of a constant")
        grid = self.e.const(np.asarray(levels, dtype=np.float32), name=f"{self.node.name}/state_quant_levels")
        e, hint = self.e, self.node.name
        distance = e.op("Abs", e.op("Sub", e.op("Unsqueeze", v.name, e.ints([-1]), hint=hint), grid, hint=hint),
                        hint=hint)
        index = e.op("ArgMin", distance, axis=-1, keepdims=0, select_last_index=0, hint=hint)
        out = Sym(self, e.op("Gather", grid, index, axis=0, hint=hint))
        self._quantised.add(out.name)
        return out

    def winner(self, v: Any) -> Any:
        """Each sample's one-hot largest value over all its neurons (``ArgMax``, first on ties), as float."""
        if not isinstance(v, Sym):
            raise LoweringError(f"{self.context}: inhibition of a constant")
        e, hint = self.e, self.node.name
        flat = e.op("Flatten", v.name, axis=1, hint=hint)
        index = e.op("ArgMax", flat, axis=1, keepdims=0, select_last_index=0, hint=hint)
        depth = e.op("Shape", flat, start=1, end=2, hint=hint)
        hot = e.op("OneHot", index, depth, e.const(np.array([0.0, 1.0], np.float32)), axis=-1, hint=hint)
        return Sym(self, e.op("Reshape", hot, e.op("Shape", v.name, hint=hint), hint=hint))

    def pool(self, v: Any) -> Any:
        """The node's pooling of the spikes' membrane (``spike_pool`` models): ``MaxPool`` / ``AveragePool``
        with window = stride = ``pool_size``; the identity without."""
        kind, size = getattr(self.node, "pool", "none"), getattr(self.node, "pool_size", None)
        if kind == "none":
            return v
        if not isinstance(v, Sym):
            raise LoweringError(f"{self.context}: pooling of a constant")
        e, hint, attrs = self.e, self.node.name, {"kernel_shape": list(size), "strides": list(size)}
        if kind == "avg":
            return Sym(self, e.op("AveragePool", v.name, hint=hint, **attrs))
        # onnxruntime's MaxPool skips NaN, torch's propagates it: a second MaxPool over the NaN mask
        pooled = e.op("MaxPool", v.name, hint=hint, **attrs)
        mask = e.op("Cast", e.op("IsNaN", v.name, hint=hint), to=FLOAT, hint=hint)
        window = e.op("Cast", e.op("MaxPool", mask, hint=hint, **attrs), to=BOOL, hint=hint)
        return Sym(self, e.op("Where", window, e.const(np.float32("nan")), pooled, hint=hint))

    def recurrent(self, spk: Any) -> Any:
        """``V(S[t-1])``: ``Gemm`` with ``recurrent.weight``/``.bias`` (all-to-all) or ``V * spk``; a cell
        model's hidden-to-gates map."""
        node = self.node
        if node.model.cell is not None:
            return self._cell_recurrent(spk)
        if node.all_to_all:
            ins = [spk, self.param("recurrent_weight")]
            if node.recurrent_bias is not None:
                ins.append(self.param("recurrent_bias"))
            return self._op("Gemm", *ins, transB=1)
        return self.binary("Mul", self.param("V"), spk)

    # --- cell models (snngraph.ir.model_cell) ---------------------------------------------------------
    def tanh(self, v: Any) -> Any:
        return self.unary("Tanh", v)

    def split(self, v: Any, n: int) -> tuple[Any, ...]:
        """``n`` equal chunks along the feature axis (axis 1)."""
        size = self._hidden()
        names = self.e.op("Split", self.name(v), self.e.ints([size] * n), axis=1, outputs=n, hint=self.node.name)
        return tuple(Sym(self, name) for name in ([names] if n == 1 else names))

    def _hidden(self) -> int:
        """A cell's hidden features (channels)."""
        node = self.node
        return node.weight_hh.shape[1] if node.model.cell == "linear" else node.conv_weight.shape[0] // node.model.gates

    # --- heads models (snngraph.ir.model_heads) ------------------------------------------------------
    def _head(self, x: Any, head: str) -> Any:
        """``Gemm`` with ``<head>.weight`` / ``<head>.bias``."""
        ins = [x, self.param(f"{head}_weight")]
        if getattr(self.node, f"{head}_bias") is not None:
            ins.append(self.param(f"{head}_bias"))
        return self._op("Gemm", *ins, transB=1)

    def _sym(self, v: Any) -> Sym:
        if not isinstance(v, Sym):
            raise LoweringError(f"{self.context}: a shape op on a constant")
        return v

    def reshape(self, v: Any, shape: tuple[int, ...]) -> Any:
        """``Reshape`` to ``(B, *shape)`` (0 keeps the batch)."""
        return self._op("Reshape", self._sym(v), Sym(self, self.e.ints([0, *shape])))

    def outer(self, a: Any, b: Any) -> Any:
        """``Unsqueeze(a, 2) * Unsqueeze(b, 1)``: ``(B, d, n)``."""
        e, hint = self.e, self.node.name
        left = Sym(self, e.op("Unsqueeze", self._sym(a).name, e.ints([2]), hint=hint))
        right = Sym(self, e.op("Unsqueeze", self._sym(b).name, e.ints([1]), hint=hint))
        return self._op("Mul", left, right)

    def matmul(self, a: Any, b: Any) -> Any:
        return self._op("MatMul", self._sym(a), self._sym(b))

    def project(self, x: Any, head: str | None = None) -> Any:
        """The cell's input projection: ``Gemm`` with ``lstm_cell.weight_ih``/``bias_ih``, or ``Conv``
        with the input channels of ``conv.weight`` and ``conv.bias``."""
        node = self.node
        if head is not None:
            return self._head(x, head)
        if node.model.cell == "linear":
            ins = [x, self.param("weight_ih")] + ([self.param("bias_ih")] if node.bias_ih is not None else [])
            return self._op("Gemm", *ins, transB=1)
        w, cin = self.param("conv_weight"), self.node.conv_weight.shape[1] - self._hidden()
        part = Const(self, w.value[:, :cin].contiguous(), "conv.weight.input")
        ins = [x, part] + ([self.param("conv_bias")] if node.conv_bias is not None else [])
        return self._conv(*ins)

    def _conv(self, *ins: Any) -> Any:
        ph, pw = self.node.conv_weight.shape[2] // 2, self.node.conv_weight.shape[3] // 2
        return self._op("Conv", *ins, pads=[ph, pw, ph, pw])

    def _cell_recurrent(self, h: Any) -> Any:
        node = self.node
        if node.model.cell == "linear":
            ins = [h, self.param("weight_hh")] + ([self.param("bias_hh")] if node.bias_hh is not None else [])
            return self._op("Gemm", *ins, transB=1)
        w, cin = self.param("conv_weight"), self.node.conv_weight.shape[1] - self._hidden()
        return self._conv(h, Const(self, w.value[:, cin:].contiguous(), "conv.weight.hidden"))


def _fold(op_type: str, a: Any, b: Any) -> Any:
    """``a <op> b`` for numbers and tensors, exactly as torch evaluates it in the kernel."""
    if op_type in _ARITHMETIC:
        return _ARITHMETIC[op_type](a, b)
    if isinstance(a, float) and isinstance(b, float):
        return min(a, b) if op_type == "Min" else max(a, b)
    a, b = (torch.as_tensor(v, dtype=torch.float32) for v in (a, b))
    return torch.minimum(a, b) if op_type == "Min" else torch.maximum(a, b)


def _scalar_unary(op_type: str, v: float) -> float:
    if op_type == "Neg":
        return -v
    if op_type == "Abs":
        return abs(v)
    if op_type == "Exp":
        return math.exp(v)
    if op_type == "Sigmoid":
        return float(torch.sigmoid(torch.tensor(v, dtype=torch.float64)))
    return math.log(v) if v > 0 else (-math.inf if v == 0 else math.nan)
