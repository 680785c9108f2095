"""Torch layers and tensor functions as IR synapse nodes, for :func:`snngraph.frontends.fx.trace`.

Values are per-step tensors *with* the batch dim first; the IR's shapes exclude it, so every
dim argument is shifted by one (``torch.cat(..., dim=1)`` is the IR's ``concat(dim=0)``) and an
operation on the batch dim itself cannot be expressed. ``x.size(0)`` / ``x.shape[0]`` trace to
:data:`BATCH`, so ``x.view(x.size(0), -1)`` is recognised as a flatten.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snngraph.frontends.fx_spikingjelly import batch_norm_stats
from snngraph.ir.errors import GraphError
from snngraph.ir.graph import Handle

if TYPE_CHECKING:
    from snngraph.frontends.fx import Translator


class _Batch:
    """The batch size of the traced step (``x.size(0)``): symbolic, any value at run time."""

    def __repr__(self) -> str:
        return "BATCH"


BATCH = _Batch()


def tensor(value: Any, what: str) -> Handle:
    """``value`` as a graph value, or GraphError saying what it is instead."""
    if isinstance(value, Handle):
        return value
    if isinstance(value, Tensor):
        raise GraphError(f"{what}: a constant tensor (not computed from the inputs) cannot be used here")
    raise GraphError(f"{what}: expected a tensor computed from the inputs, got {value!r}")


def step_dim(dim: int, ndim: int, what: str) -> int:
    """A dim of the batched tensor as a dim of the per-step value (``ndim`` excludes batch)."""
    if not isinstance(dim, int) or not -(ndim + 1) <= dim <= ndim:
        raise GraphError(f"{what}: dim {dim!r} is out of range")
    if dim == 0 or dim == -(ndim + 1):
        raise GraphError(f"{what}: operations along the batch dim (dim 0) cannot be expressed per step")
    return dim - 1 if dim > 0 else dim


def dim_pair_op(tr: Translator, op: str, x: Any, dim0: int, dim1: int, name: str) -> Handle:
    """The graph's ``op`` (flatten, transpose) of batched dims ``dim0`` and ``dim1`` as per-step dims;
    ``x`` itself where they are the same dim."""
    x = tensor(x, op)
    n = len(x.shape)
    a, b = step_dim(dim0, n, op), step_dim(dim1, n, op)
    if a % n == b % n:
        return x
    return getattr(tr.g, op)(x, a, b, name=name)


# --- modules -----------------------------------------------------------------------------------------
def _linear(tr: Translator, m: nn.Linear, x: Handle, name: str) -> Handle:
    h = tr.g.linear(x, m.out_features, bias=m.bias is not None, weight=m.weight, bias_value=m.bias, name=name)
    tr.learnable(name, weight=m.weight, bias=m.bias)
    return h


def _conv(tr: Translator, m: nn.Conv1d | nn.Conv2d, x: Handle, name: str) -> Handle:
    if m.padding_mode != "zeros":
        raise GraphError(f"padding_mode={m.padding_mode!r} is not supported (only 'zeros')")
    build = tr.g.conv1d if isinstance(m, nn.Conv1d) else tr.g.conv2d
    h = build(x, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups, bias=m.bias is not None,
              weight=m.weight, bias_value=m.bias, name=name)
    tr.learnable(name, weight=m.weight, bias=m.bias)
    return h


def _max_pool(tr: Translator, x: Handle, dims: int, kernel_size: Any, stride: Any = None, padding: Any = 0,
              dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False, name: str = "") -> Handle:
    if dilation not in (1, (1,) * dims) or ceil_mode or return_indices:
        raise GraphError("max pooling with dilation, ceil_mode or return_indices is not supported")
    build = tr.g.max_pool1d if dims == 1 else tr.g.max_pool2d
    return build(x, kernel_size, stride or None, padding, name=name)


def _avg_pool(tr: Translator, x: Handle, dims: int, kernel_size: Any, stride: Any = None, padding: Any = 0,
              ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: Any = None,
              name: str = "") -> Handle:
    if ceil_mode or not count_include_pad or divisor_override is not None:
        raise GraphError("average pooling with ceil_mode, count_include_pad=False or divisor_override is not "
                         "supported")
    build = tr.g.avg_pool1d if dims == 1 else tr.g.avg_pool2d
    return build(x, kernel_size, stride or None, padding, name=name)


def _batch_norm(tr: Translator, m: nn.BatchNorm1d | nn.BatchNorm2d, x: Handle, name: str) -> Handle:
    if m.running_mean is None or m.momentum is None:
        raise GraphError("BatchNorm needs track_running_stats=True and a numeric momentum")
    h = tr.g.batch_norm(x, eps=m.eps, momentum=m.momentum, affine=m.affine, weight=m.weight, bias_value=m.bias,
                        running_mean=m.running_mean, running_var=m.running_var, stats=batch_norm_stats(m),
                        name=name)
    tr.learnable(name, weight=m.weight, bias=m.bias)
    return h


def _flatten_module(tr: Translator, m: nn.Flatten, x: Handle, name: str) -> Handle:
    return flatten(tr, x, m.start_dim, m.end_dim, name=name)


MODULES: dict[type, Callable[..., Handle]] = {
    nn.Linear: _linear,
    nn.Conv1d: _conv,
    nn.Conv2d: _conv,
    nn.MaxPool1d: lambda tr, m, x, name: _max_pool(tr, x, 1, m.kernel_size, m.stride, m.padding, m.dilation,
                                                    m.ceil_mode, m.return_indices, name=name),
    nn.MaxPool2d: lambda tr, m, x, name: _max_pool(tr, x, 2, m.kernel_size, m.stride, m.padding, m.dilation,
                                                    m.ceil_mode, m.return_indices, name=name),
    nn.AvgPool1d: lambda tr, m, x, name: _avg_pool(tr, x, 1, m.kernel_size, m.stride, m.padding, m.ceil_mode,
                                                    m.count_include_pad, name=name),
    nn.AvgPool2d: lambda tr, m, x, name: _avg_pool(tr, x, 2, m.kernel_size, m.stride, m.padding, m.ceil_mode,
                                                    m.count_include_pad, m.divisor_override, name=name),
    nn.Flatten: _flatten_module,
    nn.Dropout: lambda tr, m, x, name: tr.g.dropout(x, m.p, name=name),
    nn.BatchNorm1d: _batch_norm,
    nn.BatchNorm2d: _batch_norm,
    nn.ReLU: lambda tr, m, x, name: tr.g.relu(x, name=name),
    nn.Identity: lambda tr, m, x, name: x,
}
"""Exact module class -> ``handler(translator, module, input, node name) -> value``."""


# --- shapes ------------------------------------------------------------------------------------------
def flatten(tr: Translator, x: Any, start_dim: int = 0, end_dim: int = -1, name: str = "") -> Handle:
    """``torch.flatten`` of a batched value (``start_dim`` 0 would merge the batch: not expressible)."""
    return dim_pair_op(tr, "flatten", x, start_dim, end_dim, name)


def reshape(tr: Translator, x: Any, *shape: Any, name: str = "") -> Handle:
    """``view``/``reshape`` whose first dim stays the batch: a flatten node when it merges adjacent dims,
    else a reshape node."""
    x = tensor(x, "reshape")
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    numel = math.prod(x.shape)
    first = shape[0] if shape else None
    if not (first is BATCH or first == tr.batch_size or first == -1):
        raise GraphError(f"reshape to {shape!r}: the first dim must stay the batch (use x.size(0))")
    rest = list(shape[1:])
    if not all(isinstance(d, int) and d is not BATCH for d in rest):
        raise GraphError(f"reshape to {shape!r}: per-step dims must be ints")
    if rest.count(-1) + (first == -1) > 1:
        raise GraphError(f"reshape to {shape!r}: at most one dim may be -1")
    known = math.prod(d for d in rest if d != -1)
    rest = [numel // known if d == -1 else d for d in rest]
    if math.prod(rest) != numel:
        raise GraphError(f"reshape of per-step shape {list(x.shape)} to {shape!r} changes the size per sample (it "
                         "would merge the batch dim with others)")
    return _as_flatten(tr, x, tuple(rest), shape, name)


def _as_flatten(tr: Translator, x: Handle, target: tuple[int, ...], shape: Any, name: str) -> Handle:
    """``x`` in per-step shape ``target``: itself, a flatten of adjacent dims where that is what it is, else
    a reshape."""
    if target == x.shape:
        return x
    dims = x.shape
    for start in range(len(dims)):
        for end in range(start + 1, len(dims)):
            if (*dims[:start], math.prod(dims[start:end + 1]), *dims[end + 1:]) == target:
                return tr.g.flatten(x, start, end, name=name)
    return tr.g.reshape(x, target, name=name)


def size(tr: Translator, x: Any, dim: int | None = None, name: str = "") -> Any:
    x = tensor(x, "size")
    full = (BATCH, *x.shape)
    return full if dim is None else full[dim]


# --- arithmetic --------------------------------------------------------------------------------------
def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _plain(a: Any, b: Any) -> bool:
    """Both operands are Python values (shape arithmetic such as ``x.size(1) * x.size(2)``)."""
    return not any(isinstance(v, (Handle, Tensor, _Batch, NeuronOut, Complement)) for v in (a, b))


def add(tr: Translator, a: Any, b: Any, alpha: Any = 1, name: str = "") -> Any:
    if _plain(a, b):
        return a + alpha * b
    if isinstance(a, Handle) and isinstance(b, Handle):
        if alpha != 1:
            b = tr.g.scale(b, float(alpha), name=tr.unique(f"{name}_alpha"))
        return tr.g.add(a, b, name=name)
    raise GraphError("adding a constant to a tensor cannot be expressed (only tensor + tensor: residual, fan-in)")


class Complement:
    """``c - y`` of a number and a tensor: no IR node, but a factor of a product (SpikingJelly's IAND
    ``x * (1.0 - y)``), which :func:`mul` builds as ``c * x - x * y``."""

    __slots__ = ("c", "y")

    def __init__(self, c: float, y: Handle):
        self.c, self.y = c, y

    def __repr__(self) -> str:
        return f"{self.c!r} - '{self.y.name}' (a number minus a tensor can only multiply a tensor)"


def _times_complement(tr: Translator, x: Handle, comp: Complement, name: str) -> Handle:
    xy = tr.g.mul(x, comp.y, name=tr.unique(f"{name}_xy"))
    cx = x if comp.c == 1.0 else tr.g.scale(x, comp.c, name=tr.unique(f"{name}_cx"))
    return tr.g.sub(cx, xy, name=name)


def sub(tr: Translator, a: Any, b: Any, alpha: Any = 1, name: str = "") -> Any:
    if _plain(a, b):
        return a - alpha * b
    if _is_number(a) and isinstance(b, Handle) and alpha == 1:
        return Complement(float(a), b)
    if isinstance(a, Handle) and isinstance(b, Handle):
        if alpha != 1:
            b = tr.g.scale(b, float(alpha), name=tr.unique(f"{name}_alpha"))
        return tr.g.sub(a, b, name=name)
    raise GraphError("subtracting a constant cannot be expressed (only tensor - tensor)")


def mul(tr: Translator, a: Any, b: Any, name: str = "") -> Any:
    if _plain(a, b):
        return a * b
    if isinstance(a, Handle) and _is_number(b):
        return tr.g.scale(a, float(b), name=name)
    if isinstance(b, Handle) and _is_number(a):
        return tr.g.scale(b, float(a), name=name)
    if isinstance(a, Handle) and isinstance(b, Handle):
        return tr.g.mul(a, b, name=name)
    if isinstance(a, Handle) and isinstance(b, Complement):
        return _times_complement(tr, a, b, name)
    if isinstance(b, Handle) and isinstance(a, Complement):
        return _times_complement(tr, b, a, name)
    raise GraphError("only multiplication of a tensor by a number or by a tensor of the same shape can be expressed")


def div(tr: Translator, a: Any, b: Any, name: str = "") -> Any:
    if _plain(a, b):
        return a / b
    if isinstance(a, Handle) and _is_number(b) and b != 0:
        return tr.g.scale(a, 1.0 / float(b), name=name)
    raise GraphError("only division of a tensor by a non-zero number can be expressed")


def _floordiv(a: Any, b: Any) -> Any:
    if _plain(a, b):
        return a // b
    raise GraphError("floor division cannot be expressed")


def cat(tr: Translator, tensors: Any, dim: int = 0, name: str = "") -> Handle:
    xs = [tensor(t, "torch.cat") for t in tensors]
    return tr.g.concat(*xs, dim=step_dim(dim, len(xs[0].shape), "torch.cat"), name=name)


def dropout(tr: Translator, x: Any, p: float = 0.5, training: bool = True, inplace: bool = False,
            name: str = "") -> Handle:
    """``F.dropout``: an IR dropout node, active when the compiled module is in ``train()``."""
    return tr.g.dropout(tensor(x, "dropout"), p, name=name)


def relu(tr: Translator, x: Any, inplace: bool = False, name: str = "") -> Handle:
    return tr.g.relu(tensor(x, "relu"), name=name)


def identity(tr: Translator, x: Any, *args: Any, name: str = "", **kwargs: Any) -> Handle:
    return tensor(x, "identity")


class NeuronOut:
    """The tuple a neuron module returns (``spk, mem = lif(x, mem)``): one graph value per port."""

    __slots__ = ("handle", "ports")

    def __init__(self, handle: Handle, ports: tuple[str, ...]):
        self.handle = handle
        self.ports = ports

    def values(self) -> list[Any]:
        """One handle per port; a nested tuple of ports (DeltaLeaky's ``(mem, mem_prev)``) gives a tuple."""
        return [tuple(getattr(self.handle, p) for p in port) if isinstance(port, tuple) else getattr(self.handle, port)
                for port in self.ports]

    def __repr__(self) -> str:
        return f"the ({', '.join(self.ports)}) tuple of neuron '{self.handle.name}' (index it or unpack it)"


def getitem(tr: Translator, value: Any, index: Any, name: str = "") -> Any:
    if isinstance(value, NeuronOut):
        return value.values()[index]
    if isinstance(value, Handle):
        raise GraphError("indexing or slicing a tensor cannot be expressed")
    return operator.getitem(value, index)


def _pool_fn(kind: Callable[..., Handle], dims: int) -> Callable[..., Handle]:
    def handler(tr: Translator, x: Any, *args: Any, name: str = "", **kwargs: Any) -> Handle:
        return kind(tr, tensor(x, "pooling"), dims, *args, name=name, **kwargs)

    return handler


FUNCTIONS: dict[Any, Callable[..., Any]] = {
    operator.add: add, operator.iadd: add, torch.add: add, "add": add, "add_": add,
    operator.sub: sub, operator.isub: sub, torch.sub: sub, "sub": sub,
    operator.mul: mul, operator.imul: mul, torch.mul: mul, "mul": mul,
    operator.truediv: div, torch.div: div, "div": div, operator.floordiv: lambda tr, a, b, name="": _floordiv(a, b),
    operator.neg: lambda tr, x, name="": mul(tr, x, -1.0, name=name), "neg": lambda tr, x, name="": mul(tr, x, -1.0,
                                                                                                    name=name),
    torch.cat: cat, torch.concat: cat,
    torch.relu: relu, F.relu: relu, "relu": relu, "relu_": relu,
    torch.flatten: flatten, "flatten": flatten,
    "view": reshape, "reshape": reshape, torch.reshape: reshape,
    "size": size, "contiguous": identity, "clone": identity, torch.clone: identity,
    F.dropout: dropout,
    F.max_pool1d: _pool_fn(_max_pool, 1), F.max_pool2d: _pool_fn(_max_pool, 2),
    F.avg_pool1d: _pool_fn(_avg_pool, 1), F.avg_pool2d: _pool_fn(_avg_pool, 2),
    operator.getitem: getitem,
    getattr: lambda tr, x, attr, name="": size(tr, x) if attr == "shape" and isinstance(x, Handle)
    else _getattr_error(x, attr),
}
"""fx call target (function, or method name) -> ``handler(translator, *args, name=..., **kwargs)``."""


def _getattr_error(x: Any, attr: str) -> Any:
    if isinstance(x, Handle):
        raise GraphError(f"tensor attribute '{attr}' cannot be expressed")
    return getattr(x, attr)


def describe(target: Any) -> str:
    """A readable name of an fx call target (``torch.sigmoid``, ``Tensor.detach``, ``F.gelu``)."""
    if isinstance(target, str):
        return f"Tensor.{target}"
    name = getattr(target, "__name__", None) or repr(target)
    for prefix, namespace in (("torch", torch), ("F", F), ("operator", operator)):
        if getattr(namespace, name, None) is target:
            return f"{prefix}.{name}"
    module = getattr(target, "__module__", None)
    return f"{module}.{name}" if module else name
