"""Synapse nodes: the per-time-step, stateless operations between neuron populations
(and ``delay``, whose state is a buffer of past inputs)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from snngraph.ir.node import Node, broadcastable, conv_out, require_range, same_type
from snngraph.ir.types import Param, TensorType, check_shape

frozen = dataclasses.dataclass(frozen=True, kw_only=True)
MAX_INT = 2**31 - 1  # kernel sizes, strides, paddings and dilations: what torch and ONNX take as int


def _check_spatial(node: Node, keys: tuple[str, ...]) -> None:
    """Raise GraphError unless each of ``keys`` holds ``node.dims`` ints of at most ``MAX_INT``."""
    for key in keys:
        value = getattr(node, key)
        if len(value) != node.dims:
            raise node.error(f"{key} must have {node.dims} entries, got {value}")
        if max(value) > MAX_INT:
            raise node.error(f"{key} {value} is too large (at most {MAX_INT})")


class Synapse(Node):
    family: ClassVar[str] = "synapse"


@frozen
class Input(Node):
    """A graph input; its values at each step have ``shape``."""

    shape: tuple[int, ...]
    dtype: str = "float32"
    op: ClassVar[str] = "input"
    family: ClassVar[str] = "input"
    arity: ClassVar[tuple[int, int | None]] = (0, 0)

    def check(self):
        check_shape(self.shape, f"input '{self.name}'")

    def infer(self, ins):
        return {"out": TensorType(self.shape, self.dtype)}


@frozen
class Linear(Synapse):
    """``y = x W^T + b`` over the last dimension (``torch.nn.Linear``)."""

    in_features: int
    out_features: int
    weight: Param
    bias: Param | None = None
    op: ClassVar[str] = "linear"

    def infer(self, ins):
        (t,) = ins
        if t.shape[-1] != self.in_features:
            raise self.error(f"expects {self.in_features} input features, got shape {list(t.shape)}")
        if self.weight.shape != (self.out_features, self.in_features):
            raise self.error(f"weight must have shape {[self.out_features, self.in_features]}, "
                             f"got {list(self.weight.shape)}")
        if self.bias is not None and self.bias.shape != (self.out_features,):
            raise self.error(f"bias must have shape [{self.out_features}], got {list(self.bias.shape)}")
        return {"out": TensorType((*t.shape[:-1], self.out_features), t.dtype)}


@frozen
class _ConvBase(Synapse):
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int = 1
    weight: Param
    bias: Param | None = None
    dims: ClassVar[int] = 0

    def check(self):
        super().check()
        _check_spatial(self, ("kernel_size", "stride", "padding", "dilation"))
        for key in ("kernel_size", "stride", "dilation"):
            if len(getattr(self, key)) != self.dims or min(getattr(self, key)) < 1:
                raise self.error(f"{key} must be {self.dims} positive ints, got {getattr(self, key)}")
        if len(self.padding) != self.dims or min(self.padding) < 0:
            raise self.error(f"padding must be {self.dims} non-negative ints, got {self.padding}")
        if self.groups < 1 or self.in_channels % self.groups or self.out_channels % self.groups:
            raise self.error(f"groups={self.groups} must divide in_channels and out_channels")

    def infer(self, ins):
        (t,) = ins
        if len(t.shape) != self.dims + 1 or t.shape[0] != self.in_channels:
            raise self.error(f"expects input of shape [{self.in_channels}, {', '.join('L' * self.dims)}] per step, "
                             f"got {list(t.shape)}")
        wshape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        if self.weight.shape != wshape:
            raise self.error(f"weight must have shape {list(wshape)}, got {list(self.weight.shape)}")
        if self.bias is not None and self.bias.shape != (self.out_channels,):
            raise self.error(f"bias must have shape [{self.out_channels}], got {list(self.bias.shape)}")
        spatial = [conv_out(n, k, s, p, d) for n, k, s, p, d in
                   zip(t.shape[1:], self.kernel_size, self.stride, self.padding, self.dilation, strict=True)]
        if min(spatial) < 1:
            raise self.error(f"kernel {self.kernel_size} is larger than the padded input {list(t.shape[1:])}")
        return {"out": TensorType((self.out_channels, *spatial), t.dtype)}


@frozen
class Conv1d(_ConvBase):
    """``torch.nn.Conv1d`` applied at each step to (C, L) inputs."""

    op: ClassVar[str] = "conv1d"
    dims: ClassVar[int] = 1


@frozen
class Conv2d(_ConvBase):
    """``torch.nn.Conv2d`` applied at each step to (C, H, W) inputs."""

    op: ClassVar[str] = "conv2d"
    dims: ClassVar[int] = 2


@frozen
class _PoolBase(Synapse):
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dims: ClassVar[int] = 0

    def check(self):
        if len(self.kernel_size) != self.dims or len(self.stride) != self.dims or len(self.padding) != self.dims:
            raise self.error(f"kernel_size, stride and padding must each have {self.dims} entries")
        _check_spatial(self, ("kernel_size", "stride", "padding"))
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise self.error("kernel_size and stride must be positive, padding non-negative")
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size, strict=True)):
            raise self.error("padding must be at most half the kernel size")

    def infer(self, ins):
        (t,) = ins
        if len(t.shape) != self.dims + 1:
            raise self.error(f"expects (C, {', '.join('L' * self.dims)}) per step, got {list(t.shape)}")
        spatial = [conv_out(n, k, s, p) for n, k, s, p in
                   zip(t.shape[1:], self.kernel_size, self.stride, self.padding, strict=True)]
        if min(spatial) < 1:
            raise self.error(f"kernel {self.kernel_size} is larger than the input {list(t.shape[1:])}")
        return {"out": TensorType((t.shape[0], *spatial), t.dtype, t.spike and self.op.startswith("max"))}


@frozen
class MaxPool1d(_PoolBase):
    """``torch.nn.MaxPool1d`` per step."""

    op: ClassVar[str] = "max_pool1d"
    dims: ClassVar[int] = 1


@frozen
class MaxPool2d(_PoolBase):
    """``torch.nn.MaxPool2d`` per step."""

    op: ClassVar[str] = "max_pool2d"
    dims: ClassVar[int] = 2


@frozen
class AvgPool1d(_PoolBase):
    """``torch.nn.AvgPool1d`` per step (zero padding counted)."""

    op: ClassVar[str] = "avg_pool1d"
    dims: ClassVar[int] = 1


@frozen
class AvgPool2d(_PoolBase):
    """``torch.nn.AvgPool2d`` per step (zero padding counted)."""

    op: ClassVar[str] = "avg_pool2d"
    dims: ClassVar[int] = 2


@frozen
class Flatten(Synapse):
    """Flattens per-step dims ``start_dim..end_dim`` (batch excluded: 0 is the first feature dim)."""

    start_dim: int = 0
    end_dim: int = -1
    op: ClassVar[str] = "flatten"

    def infer(self, ins):
        (t,) = ins
        n = len(t.shape)
        start, end = self.start_dim % n if -n <= self.start_dim < n else None, \
            self.end_dim % n if -n <= self.end_dim < n else None
        if start is None or end is None or start > end:
            raise self.error(f"dims {self.start_dim}..{self.end_dim} invalid for per-step shape {list(t.shape)}")
        merged = int(np.prod(t.shape[start:end + 1]))
        return {"out": TensorType((*t.shape[:start], merged, *t.shape[end + 1:]), t.dtype, t.spike)}


@frozen
class Add(Synapse):
    """Element-wise sum of two or more values of one shape (fan-in, residual)."""

    op: ClassVar[str] = "add"
    arity: ClassVar[tuple[int, int | None]] = (2, None)

    def infer(self, ins):
        for t in ins[1:]:
            if t.shape != ins[0].shape:
                raise self.error(f"shapes differ: {[list(t.shape) for t in ins]}")
        return {"out": TensorType(ins[0].shape, ins[0].dtype)}


@frozen
class Concat(Synapse):
    """Concatenation along per-step dim ``dim`` (``torch.cat`` on features)."""

    dim: int = 0
    op: ClassVar[str] = "concat"
    arity: ClassVar[tuple[int, int | None]] = (1, None)

    def infer(self, ins):
        n = len(ins[0].shape)
        if not -n <= self.dim < n:
            raise self.error(f"dim {self.dim} out of range for per-step shape {list(ins[0].shape)}")
        d = self.dim % n
        for t in ins:
            if len(t.shape) != n or t.shape[:d] + t.shape[d + 1:] != ins[0].shape[:d] + ins[0].shape[d + 1:]:
                raise self.error(f"shapes {[list(t.shape) for t in ins]} differ outside dim {self.dim}")
        size = sum(t.shape[d] for t in ins)
        spike = all(t.spike for t in ins)
        return {"out": TensorType((*ins[0].shape[:d], size, *ins[0].shape[d + 1:]), ins[0].dtype, spike)}


@frozen
class Scale(Synapse):
    """Multiplication by a constant or learnable ``factor`` broadcasting to the value."""

    factor: Param
    op: ClassVar[str] = "scale"

    def infer(self, ins):
        broadcastable(self, "factor", ins[0].shape)
        return {"out": same_type(self, ins, spike=False)}


@frozen
class ReLU(Synapse):
    """``max(x, 0)``."""

    op: ClassVar[str] = "relu"

    def infer(self, ins):
        return {"out": same_type(self, ins)}


@frozen
class Dropout(Synapse):
    """Inverted dropout with probability ``p`` in training, identity in evaluation."""

    p: float = 0.5
    op: ClassVar[str] = "dropout"

    def check(self):
        require_range(self, "p", 0.0, 1.0)

    def infer(self, ins):
        return {"out": same_type(self, ins, spike=False)}


BATCH_NORM_STATS = ("step", "sequence")


@frozen
class BatchNorm(Synapse):
    """``torch.nn.BatchNorm1d/2d`` over channel dim 0 of the per-step value.

    In training mode the batch statistics are those of each time step's ``B`` rows
    (``stats="step"``: snnTorch's layers, what stepping computes) or of all ``T * B`` rows of the
    sequence at once (``stats="sequence"``: SpikingJelly's multi-step ``layer.BatchNorm2d`` and
    ``SeqToANNContainer``), with one running-statistics update per time step or per sequence. In
    evaluation mode both are the same affine map of the running statistics."""

    num_features: int
    eps: float = 1e-5
    momentum: float = 0.1
    weight: Param | None = None
    bias: Param | None = None
    running_mean: Param
    running_var: Param
    stats: str = "step"
    op: ClassVar[str] = "batch_norm"
    quiet_defaults: ClassVar[dict[str, object]] = {"stats": "step"}

    def check(self):
        super().check()
        if self.stats not in BATCH_NORM_STATS:
            raise self.error(f"stats must be one of {list(BATCH_NORM_STATS)}, got {self.stats!r}")
        for key in ("weight", "bias", "running_mean", "running_var"):
            p = getattr(self, key)
            if p is not None and p.shape != (self.num_features,):
                raise self.error(f"{key} must have shape [{self.num_features}], got {list(p.shape)}")
        if np.any(self.running_var.value < 0) or not self.eps > 0:
            raise self.error("running_var must be non-negative and eps positive")
        if not (np.isfinite(self.eps) and np.isfinite(self.momentum)):
            raise self.error(f"eps and momentum must be finite, got eps={self.eps!r}, momentum={self.momentum!r}")

    def infer(self, ins):
        if ins[0].shape[0] != self.num_features:
            raise self.error(f"expects {self.num_features} channels, got shape {list(ins[0].shape)}")
        return {"out": same_type(self, ins, spike=False)}


@frozen
class Delay(Synapse):
    """``y[t] = x[t - steps]`` (zeros for ``t < steps``); the only legal way to close a cycle."""

    steps: int = 1
    shape: tuple[int, ...]
    op: ClassVar[str] = "delay"
    arity: ClassVar[tuple[int, int | None]] = (0, 1)  # 0 only while a feedback is unconnected

    def check(self):
        if self.steps < 1:
            raise self.error(f"steps must be >= 1, got {self.steps}")
        check_shape(self.shape, f"delay '{self.name}'")
        if self.steps * int(np.prod(self.shape, dtype=np.float64)) > 2**31:
            raise self.error(f"a buffer of {self.steps} steps of shape {list(self.shape)} is too large")

    def infer(self, ins):
        """Delays are typed by their declared shape, so a loop can be typed before it is closed."""
        if ins and ins[0].shape != self.shape:
            raise self.error(f"declared shape {list(self.shape)} but input has {list(ins[0].shape)}")
        return {"out": TensorType(self.shape, ins[0].dtype if ins else "float32")}
