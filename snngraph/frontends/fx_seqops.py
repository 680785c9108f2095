"""Sequence-level tracing: a model whose ``forward`` works on the whole ``(T, B, ...)`` sequence
(SpikingJelly's multi-step mode: ``SeqToANNContainer``, the zoo's ``spikformer``) as a per-step graph.

Every traced tensor is a :class:`Seq`: an IR value (its per-step shape) with its leading dims
either ``(T, B)`` or merged into one ``T*B`` dim (``x.flatten(0, 1)``). The translation keeps that
layout through the ops that leave T and B in front and maps them onto the per-step nodes:

- ``flatten(0, 1)`` merges, ``reshape``/``view`` to ``(T, B, ...)`` or ``(T*B, ...)`` (read from the
  result's shape, :mod:`fx_seqtrace`) splits or keeps; ``flatten``/``reshape`` of the per-step dims
  are ``flatten``/``reshape`` nodes; ``transpose``, ``permute`` (T and B kept in front), ``unsqueeze``,
  ``squeeze``, ``cat`` are the per-step nodes with shifted dims; ``chunk``/``split`` are ``slice``
  nodes; ``mean`` over one per-step dim is an ``adaptive_avg_pool1d`` of size 1 between reshapes.
- Elementwise ops and those acting on the trailing dims (``+ - * /``, ``@``, activations,
  ``layer_norm``, ``dropout``, ``contiguous``) take either layout (operands in the same one).
- Modules: spiking neurons take ``(T, B, ...)`` (a multi-step SpikingJelly neuron); SpikingJelly's
  containers and multi-step layers take ``(T, B, ...)`` and are their per-step layers; other torch
  layers take the merged layout as their batch (``Linear``, ``LayerNorm``, activations and dropout
  take ``(T, B, ...)`` too).

Anything else on a sequence value (an op that would mix time or batch with other dims, index
them, or reduce over them) raises ``GraphError`` naming the op and the model's line.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from snngraph.frontends import fx_ops, fx_spatial
from snngraph.frontends.fx import Translator, _fmt, _module_node_name, _named_params
from snngraph.frontends.fx_neurons import is_neuron_module, neuron_kind
from snngraph.frontends.fx_ops import FUNCTIONS, MODULES
from snngraph.frontends.fx_seqtrace import sequence_tracer, stand_in_dims
from snngraph.frontends.fx_spikingjelly import (
    _CONTAINERS,
    _sj_class,
    add_sj_neuron,
    pooled_norms,
    sequence_norms,
    sj_layer_handler,
)
from snngraph.frontends.fx_tracer import NeuronRoot, symbolic_trace
from snngraph.ir.errors import GraphError
from snngraph.ir.graph import Graph, Handle

_TB, _MERGED = "(T, B, ...)", "(T*B, ...)"


class Seq:
    """A traced sequence value: IR value ``handle`` with leading dims ``(T, B)`` or, ``merged``, ``(T*B)``."""

    __slots__ = ("handle", "merged")

    def __init__(self, handle: Handle, merged: bool = False):
        self.handle, self.merged = handle, merged

    @property
    def lead(self) -> int:
        return 1 if self.merged else 2

    @property
    def ndim(self) -> int:
        return len(self.handle.shape) + self.lead

    def __repr__(self) -> str:
        return f"sequence value '{self.handle.name}' {_MERGED if self.merged else _TB}"


def trace_sequence(module: nn.Module, examples: tuple[Any, ...], name: str, output_names: Any,
                   keep_state_outputs: bool) -> Graph:
    """Trace ``module``, which takes whole sequences ``(T, B, ...)``, into its per-step graph."""
    if not all(isinstance(e, Tensor) and e.dim() >= 3 for e in examples if e is not None):
        raise GraphError(f"sg.trace: {type(module).__name__} runs in SpikingJelly's multi-step mode: give the "
                         "example it takes, (T, B, ...)")
    if is_neuron_module(module):
        module = NeuronRoot(module, len(examples) - 1)
    dims = stand_in_dims(examples)
    fx_graph, constants = symbolic_trace(module, sequence_tracer(module, examples, dims))
    with pooled_norms(sequence_norms(module)):  # SpikingJelly's T*B-row batch norms: stats="sequence"
        return SequenceTranslator(module, fx_graph, constants, name, dims).run(examples, output_names,
                                                                               keep_state_outputs)


def _seqs(args: Any, kwargs: dict) -> list[Seq]:
    found: list[Seq] = []
    fx.node.map_aggregate((args, kwargs), lambda v: found.append(v) if isinstance(v, Seq) else None)
    return found


def _unwrap(value: Any) -> Any:
    return fx.node.map_aggregate(value, lambda v: v.handle if isinstance(v, Seq) else v)


def _wrap(value: Any, merged: bool) -> Any:
    if isinstance(value, Handle):
        return Seq(value, merged)
    if isinstance(value, (tuple, list)):
        return type(value)(_wrap(v, merged) for v in value)
    return value


_TRAILING_FUNCTIONS = {
    operator.add, operator.iadd, torch.add, "add", "add_", operator.sub, operator.isub, torch.sub, "sub",
    operator.mul, operator.imul, torch.mul, "mul", operator.truediv, torch.div, "div", operator.neg, "neg",
    torch.relu, F.relu, "relu", "relu_", "contiguous", "clone", torch.clone, F.dropout,
    torch.matmul, operator.matmul, "matmul", torch.sigmoid, F.sigmoid, "sigmoid", torch.tanh, F.tanh, "tanh",
    F.gelu, F.layer_norm,
}
"""Functions that act elementwise or on the trailing dims: the same on ``(T, B, ...)`` as per step."""
_TRAILING_MODULES = (nn.Linear, nn.LayerNorm, nn.Identity, nn.ReLU, nn.Sigmoid, nn.Tanh, nn.GELU, nn.Dropout)


class SequenceTranslator(Translator):
    """:class:`Translator` over :class:`Seq` values (see the module docstring)."""

    def __init__(self, root: nn.Module, fx_graph: fx.Graph, constants: dict[str, Tensor], graph_name: str,
                 dims: tuple[int, int]):
        super().__init__(root, fx_graph, constants, graph_name)
        self.T, self.B = dims

    def _placeholder(self, node: fx.Node, index: int, examples: tuple[Any, ...]) -> Any:
        if not node.users:
            return None
        from snngraph.frontends.fx import example_tensor

        x, dtype = example_tensor(examples, index, 3, "(T, B, *features) sequence:")
        name = self.unique(str(node.target).lstrip("*"), helper=False)
        return Seq(self.g.input(name, tuple(x.shape[2:]), dtype=dtype))

    def _returned(self, node: fx.Node) -> Any:
        def handle(v: Any) -> Any:
            if isinstance(v, Seq) and v.merged:
                raise GraphError(f"forward returns {v}: reshape it to (T, B, ...) (the compiled net returns "
                                 "sequences)")
            return v.handle if isinstance(v, Seq) else v

        return fx.node.map_aggregate(fx.node.map_aggregate(node.args[0], self._load), handle)

    # --- the walk --------------------------------------------------------------------------------------
    def _visit(self, node: fx.Node) -> Any:
        args = fx.node.map_aggregate(node.args, self._load)
        kwargs = fx.node.map_aggregate(node.kwargs, self._load)
        if node.op == "get_attr":
            return self._get_attr(node.target)
        if node.op == "call_module":
            return self._module(node, self.root.get_submodule(node.target), args, kwargs)
        name = self.unique(node.name, helper=False)
        handler = SEQUENCE_FUNCTIONS.get(node.target)
        if handler is not None:
            return handler(self, node, *args, name=name, **kwargs)
        seqs = _seqs(args, kwargs)
        if not seqs:
            return self._function(node, args, kwargs, name)
        merged = {s.merged for s in seqs}
        if len(merged) > 1:
            raise GraphError(f"operands {', '.join(map(repr, seqs))} have different layouts; reshape them alike")
        merged = merged.pop()
        if not merged and node.target not in _TRAILING_FUNCTIONS:
            raise GraphError(f"not supported on {seqs[0]}: only ops that keep T and B in front can be expressed "
                             "per step")
        return _wrap(self._function(node, _unwrap(args), _unwrap(kwargs), name), merged)

    def _function(self, node: fx.Node, args: tuple, kwargs: dict, name: str) -> Any:
        handler = FUNCTIONS.get(node.target)
        if handler is None:
            raise GraphError("unsupported operation (no IR equivalent)")
        return handler(self, *args, name=name, **kwargs)

    def _module(self, node: fx.Node, module: nn.Module, args: tuple, kwargs: dict) -> Any:
        if len(args) != 1 or kwargs or not isinstance(args[0], Seq):
            raise GraphError(f"expected one tensor argument, got {_fmt(args, kwargs)}")
        (x,) = args
        label = f"{type(module).__name__} '{node.target}'"
        sj_layer = _sj_class(module, "layer")
        if is_neuron_module(module):
            if x.merged or getattr(module, "step_mode", "m") != "m":
                raise GraphError(f"{label} gets {x}: a spiking neuron steps through a (T, B, ...) sequence "
                                 "(a multi-step neuron on an unmerged value)")
            return Seq(self._neuron(node, module, (x.handle,), {}, _module_node_name(node.target)))
        if sj_layer is not None and (sj_layer.__name__ in _CONTAINERS or getattr(module, "step_mode", "s") == "m"):
            if x.merged:
                raise GraphError(f"{label} takes (T, B, ...) sequences, got {x}")
            if sj_layer.__name__ in _CONTAINERS:
                return Seq(self._container(node.target, module, x.handle))
            return Seq(self._call_module(node, module, (x.handle,), {}))
        if not x.merged and not isinstance(module, _TRAILING_MODULES):
            raise GraphError(f"{label} on {x} would treat T as its batch and B as a feature dim; wrap it in "
                             "SpikingJelly's layer.SeqToANNContainer or flatten(0, 1) first")
        if x.merged and isinstance(module, nn.modules.batchnorm._BatchNorm):  # over all T*B rows at once
            with pooled_norms(frozenset({id(module)})):
                return Seq(self._call_module(node, module, (x.handle,), {}), x.merged)
        return Seq(self._call_module(node, module, (x.handle,), {}), x.merged)

    def _container(self, target: str, container: nn.Module, x: Handle) -> Handle:
        """The children of a SpikingJelly container, one after the other, per step."""
        for key, child in container.named_children():
            path = f"{target}.{key}"
            cls = _sj_class(child, "layer")
            if cls is not None and cls.__name__ in _CONTAINERS:
                x = self._container(path, child, x)
                continue
            if is_neuron_module(child) and _sj_class(container, "layer").__name__ != "SeqToANNContainer":
                x = self._contained_neuron(path, child, x)  # MultiStepContainer(IFNode()): stepped per step
                continue
            handler = MODULES.get(type(child)) or sj_layer_handler(child, MODULES)
            if handler is None or is_neuron_module(child):
                raise GraphError(f"module '{path}' ({type(child).__module__}.{type(child).__name__}) in a container "
                                 "is not supported")
            if path in self.called and any(True for _ in child.parameters()):
                raise GraphError(f"module '{path}' with parameters is called more than once; the IR does not "
                                 "share weights")
            self.called.add(path)
            self._claim(path, _named_params(path, child))
            x = self._keep_path(handler(self, child, x, self.unique(_module_node_name(path))), path)
        return x

    def _contained_neuron(self, path: str, child: nn.Module, x: Handle) -> Handle:
        label = f"{type(child).__name__} '{path}'"
        if neuron_kind(child, label).library != "spikingjelly" or path in self.called:
            raise GraphError(f"{label}: only a SpikingJelly neuron, called once, can sit in a container")
        self.called.add(path)
        self._claim(path, _named_params(path, child))
        return self._keep_path(add_sj_neuron(self.g, x, child, self.unique(_module_node_name(path)), label), path)

    # --- dims ------------------------------------------------------------------------------------------
    def step_dim(self, x: Seq, dim: Any, what: str, ndim: int | None = None) -> int:
        """Torch dim ``dim`` of ``x`` as the batch-first dim the per-step handlers take (T, B: refused)."""
        n = x.ndim if ndim is None else ndim
        if isinstance(dim, bool) or not isinstance(dim, int) or not -n <= dim < n:
            raise GraphError(f"{what}: dim {dim!r} is out of range for {x}")
        d = dim % n
        if d < x.lead:
            lead = "T*B" if x.merged else ("T", "B")[d]
            raise GraphError(f"{what}: dim {dim} is the {lead} dim of {x}, which cannot be expressed per step")
        return d - x.lead + 1

    def layout_of(self, shape: tuple[int, ...], what: str) -> tuple[bool, tuple[int, ...]]:
        """``(merged, per-step shape)`` of a result of (stand-in) ``shape``, or GraphError when T and B are
        not its leading dims (or its only ones)."""
        if shape[:2] == (self.T, self.B):
            merged, rest = False, shape[2:]
        elif shape[:1] == (self.T * self.B,):
            merged, rest = True, shape[1:]
        else:
            raise GraphError(f"{what}: the result {self._describe(shape)} does not keep T and B (or T*B) as its "
                             "leading dims, which cannot be expressed per step")
        if not rest or any(d % self.T == 0 or d % self.B == 0 for d in rest):
            raise GraphError(f"{what}: the result {self._describe(shape)} mixes time or batch with other dims")
        return merged, tuple(rest)

    def _describe(self, shape: tuple[int, ...]) -> str:
        names = {self.T: "T", self.B: "B", self.T * self.B: "T*B"}
        parts = []
        for d in shape:
            if d in names:
                parts.append(names[d])
            elif d % self.B == 0 or d % self.T == 0:
                parts.append(f"{'B' if d % self.B == 0 else 'T'}*{d // (self.B if d % self.B == 0 else self.T)}")
            else:
                parts.append(str(d))
        return f"({', '.join(parts)})"


def _seq(value: Any, what: str) -> Seq:
    if isinstance(value, Seq):
        return value
    raise GraphError(f"{what}: expected a tensor computed from the inputs, got {value!r}")


def _meta(node: fx.Node) -> Any:
    return node.meta["seq"]


def _flatten(tr: SequenceTranslator, node: fx.Node, x: Any, start_dim: int = 0, end_dim: int = -1,
             name: str = "") -> Seq:
    x = _seq(x, "flatten")
    n = x.ndim
    s, e = (d % n if isinstance(d, int) and -n <= d < n else d for d in (start_dim, end_dim))
    if (s, e) == (0, 1) and not x.merged:
        return Seq(x.handle, True)
    if s == e:
        return x
    a, b = tr.step_dim(x, s, "flatten"), tr.step_dim(x, e, "flatten")
    return Seq(fx_ops.flatten(tr, x.handle, a, b, name=name), x.merged)


def _reshape(tr: SequenceTranslator, node: fx.Node, x: Any, *shape: Any, name: str = "") -> Seq:
    x = _seq(x, "reshape")
    merged, rest = tr.layout_of(tuple(_meta(node).shape), f"reshape to {shape}")
    return Seq(fx_ops._as_flatten(tr, x.handle, rest, shape, name), merged)


def _transpose(tr: SequenceTranslator, node: fx.Node, x: Any, dim0: int, dim1: int, name: str = "") -> Seq:
    x = _seq(x, "transpose")
    if dim0 % x.ndim == dim1 % x.ndim:
        return x
    a, b = tr.step_dim(x, dim0, "transpose"), tr.step_dim(x, dim1, "transpose")
    return Seq(fx_spatial.transpose(tr, x.handle, a, b, name=name), x.merged)


def _permute(tr: SequenceTranslator, node: fx.Node, x: Any, *dims: Any, name: str = "", **kwargs: Any) -> Seq:
    x = _seq(x, "permute")
    dims = kwargs.get("dims", dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims)
    n = x.ndim
    full = [d % n if isinstance(d, int) and -n <= d < n else d for d in dims]
    if sorted(full) != list(range(n)):
        raise GraphError(f"permute dims {tuple(dims)} must be a permutation of 0..{n - 1}")
    if full[:x.lead] != list(range(x.lead)):
        raise GraphError(f"permute {tuple(dims)} moves the T or B dim of {x}, which cannot be expressed per step")
    return Seq(fx_spatial.permute(tr, x.handle, 0, *(d - x.lead + 1 for d in full[x.lead:]), name=name), x.merged)


def _pieces(tr: SequenceTranslator, node: fx.Node, x: Any, dim: int, name: str, what: str) -> tuple[Seq, ...]:
    """``chunk``/``split`` of ``x`` along ``dim`` as slices, sized as the traced results are."""
    x = _seq(x, what)
    d = tr.step_dim(x, dim, what) - 1
    start, out = 0, []
    for i, meta in enumerate(_meta(node)):
        size = int(meta.shape[dim])
        out.append(Seq(tr.g.slice(x.handle, d, start, start + size, name=tr.unique(f"{name}_{i}")), x.merged))
        start += size
    return tuple(out)


def _chunk(tr: SequenceTranslator, node: fx.Node, x: Any, chunks: int, dim: int = 0, name: str = "") -> tuple:
    return _pieces(tr, node, x, dim, name, "chunk")


def _split(tr: SequenceTranslator, node: fx.Node, x: Any, split_size_or_sections: Any, dim: int = 0,
           name: str = "") -> tuple:
    return _pieces(tr, node, x, dim, name, "split")


def _mean(tr: SequenceTranslator, node: fx.Node, x: Any, dim: Any = None, keepdim: bool = False, *,
          dtype: Any = None, name: str = "") -> Seq:
    """Mean over one per-step dim: that dim moved last, the others merged into one, an adaptive average
    pool of size 1, then the result's per-step shape."""
    x = _seq(x, "mean")
    dims = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
    if dtype is not None or len(dims) != 1:
        raise GraphError("mean: only over one dim, without dtype, can be expressed per step")
    d = tr.step_dim(x, dims[0], "mean") - 1
    shape = x.handle.shape
    merged, out_shape = tr.layout_of(tuple(_meta(node).shape), "mean")
    h = x.handle
    if d != len(shape) - 1:
        order = [i for i in range(len(shape)) if i != d] + [d]
        h = tr.g.permute(h, order, name=tr.unique(f"{name}_last"))
    h = tr.g.reshape(h, (math.prod(shape) // shape[d], shape[d]), name=tr.unique(f"{name}_rows"))
    h = tr.g.adaptive_avg_pool1d(h, 1, name=tr.unique(f"{name}_pool"))
    return Seq(tr.g.reshape(h, out_shape, name=name), merged)


def _unsqueeze(tr: SequenceTranslator, node: fx.Node, x: Any, dim: int, name: str = "") -> Seq:
    x = _seq(x, "unsqueeze")
    d = tr.step_dim(x, dim, "unsqueeze", ndim=x.ndim + 1)
    return Seq(fx_spatial.unsqueeze(tr, x.handle, d, name=name), x.merged)


def _squeeze(tr: SequenceTranslator, node: fx.Node, x: Any, dim: Any = None, name: str = "") -> Seq:
    x = _seq(x, "squeeze")
    if dim is None:
        raise GraphError("squeeze() without a dim would also squeeze a T or B of one; give the dim")
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    return Seq(fx_spatial.squeeze(tr, x.handle, tuple(tr.step_dim(x, d, "squeeze") for d in dims), name=name),
               x.merged)


def _cat(tr: SequenceTranslator, node: fx.Node, tensors: Any, dim: int = 0, name: str = "") -> Seq:
    xs = [_seq(t, "torch.cat") for t in tensors]
    if len({x.merged for x in xs}) > 1:
        raise GraphError("torch.cat: the tensors have different layouts ((T, B, ...) and (T*B, ...))")
    d = tr.step_dim(xs[0], dim, "torch.cat")
    return Seq(fx_ops.cat(tr, [x.handle for x in xs], d, name=name), xs[0].merged)


def _getitem(tr: SequenceTranslator, node: fx.Node, value: Any, index: Any, name: str = "") -> Any:
    if isinstance(value, Seq):
        raise GraphError(f"indexing or slicing {value} cannot be expressed per step")
    return operator.getitem(value, index)


SEQUENCE_FUNCTIONS: dict[Any, Any] = {
    torch.flatten: _flatten, "flatten": _flatten,
    "view": _reshape, "reshape": _reshape, torch.reshape: _reshape,
    torch.transpose: _transpose, "transpose": _transpose, torch.swapaxes: _transpose, "swapaxes": _transpose,
    torch.swapdims: _transpose, "swapdims": _transpose,
    torch.permute: _permute, "permute": _permute,
    torch.chunk: _chunk, "chunk": _chunk, torch.split: _split, "split": _split,
    torch.mean: _mean, "mean": _mean,
    torch.unsqueeze: _unsqueeze, "unsqueeze": _unsqueeze, torch.squeeze: _squeeze, "squeeze": _squeeze,
    torch.cat: _cat, torch.concat: _cat,
    operator.getitem: _getitem,
}
"""fx call target -> ``handler(translator, fx node, *args, name=..., **kwargs)`` over :class:`Seq` values
(the ops whose dims count T and B)."""
