"""Up-sampling and channel-dropout synapses on (C, H, W) per-step maps: ``conv_transpose2d``
(``torch.nn.ConvTranspose2d``), ``upsample`` (``torch.nn.Upsample``, nearest or bilinear) and
``dropout2d`` (``torch.nn.Dropout2d``)."""

from __future__ import annotations

import math
from typing import ClassVar

from snngraph.ir.node import require_range, same_type
from snngraph.ir.synapses import Synapse, _check_spatial, frozen
from snngraph.ir.types import Param, TensorType

UPSAMPLE_MODES = ("nearest", "bilinear")


def transposed_out(size: int, kernel: int, stride: int, padding: int, output_padding: int, dilation: int) -> int:
    """``(size - 1) stride - 2 padding + dilation (kernel - 1) + output_padding + 1`` (torch's formula)."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def _expects_map(node: Synapse, t: TensorType, ranks: tuple[int, ...] = (3,)) -> None:
    if len(t.shape) not in ranks:
        dims = " or ".join({2: "(C, L)", 3: "(C, H, W)"}[r] for r in ranks)
        raise node.error(f"expects {dims} per step, got {list(t.shape)}")


def _check_spatial_len(node: Synapse, key: str, value: tuple[int, ...]) -> None:
    if len(value) not in (1, 2) or max(value) > 2**31 - 1:
        raise node.error(f"{key} must be 1 or 2 ints of at most {2**31 - 1}, got {list(value)}")


@frozen
class ConvTranspose2d(Synapse):
    """``torch.nn.ConvTranspose2d`` at each step on (C, H, W) inputs; ``weight`` has torch's layout
    ``(in_channels, out_channels / groups, kH, kW)``. Per spatial dim the output size is
    ``(n - 1) stride - 2 padding + dilation (k - 1) + output_padding + 1``."""

    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    output_padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int = 1
    weight: Param
    bias: Param | None = None
    op: ClassVar[str] = "conv_transpose2d"
    dims: ClassVar[int] = 2

    def check(self):
        super().check()
        _check_spatial(self, ("kernel_size", "stride", "padding", "output_padding", "dilation"))
        for key in ("kernel_size", "stride", "dilation"):
            if min(getattr(self, key)) < 1:
                raise self.error(f"{key} must be 2 positive ints, got {getattr(self, key)}")
        if min(self.padding) < 0 or min(self.output_padding) < 0:
            raise self.error(f"padding and output_padding must be non-negative, got {self.padding} and "
                             f"{self.output_padding}")
        for op_, s, d in zip(self.output_padding, self.stride, self.dilation, strict=True):
            if op_ >= s and op_ >= d:
                raise self.error(f"output_padding {self.output_padding} must be smaller than either stride "
                                 f"{self.stride} or dilation {self.dilation}")
        if self.groups < 1 or self.in_channels % self.groups or self.out_channels % self.groups:
            raise self.error(f"groups={self.groups} must divide in_channels and out_channels")

    def infer(self, ins):
        (t,) = ins
        if len(t.shape) != 3 or t.shape[0] != self.in_channels:
            raise self.error(f"expects input of shape [{self.in_channels}, H, W] per step, got {list(t.shape)}")
        wshape = (self.in_channels, self.out_channels // self.groups, *self.kernel_size)
        if self.weight.shape != wshape:
            raise self.error(f"weight must have shape {list(wshape)}, got {list(self.weight.shape)}")
        if self.bias is not None and self.bias.shape != (self.out_channels,):
            raise self.error(f"bias must have shape [{self.out_channels}], got {list(self.bias.shape)}")
        spatial = [transposed_out(*a) for a in zip(t.shape[1:], self.kernel_size, self.stride, self.padding,
                                                   self.output_padding, self.dilation, strict=True)]
        if min(spatial) < 1:
            raise self.error(f"padding {self.padding} leaves no output for the input {list(t.shape[1:])}")
        return {"out": TensorType((self.out_channels, *spatial), t.dtype)}


@frozen
class Upsample(Synapse):
    """``torch.nn.Upsample`` at each step on (C, L) (nearest) or (C, H, W) (nearest, bilinear) inputs.

    ``size`` is the output's spatial size. With ``scale_factor`` (one factor per spatial dim) the
    size is ``floor(n * scale_factor)`` and source positions are ``dst / scale_factor``, as torch
    computes them; without it ``dst * n / size``. ``nearest`` takes the source index
    ``floor(position)``; ``bilinear`` interpolates the four neighbours at ``(dst + 0.5) / scale - 0.5``
    (clamped at 0), or at ``dst (n - 1) / (size - 1)`` with ``align_corners``."""

    mode: str = "nearest"
    size: tuple[int, ...]
    scale_factor: tuple[float, ...] | None = None
    align_corners: bool = False
    op: ClassVar[str] = "upsample"

    def check(self):
        if self.mode not in UPSAMPLE_MODES:
            raise self.error(f"mode must be one of {list(UPSAMPLE_MODES)}, got {self.mode!r}")
        if not self.size or min(self.size) < 1:
            raise self.error(f"size must be positive ints, got {list(self.size)}")
        _check_spatial_len(self, "size", self.size)
        if self.scale_factor is not None and (len(self.scale_factor) != len(self.size) or not all(
                math.isfinite(s) and s > 0 for s in self.scale_factor)):
            raise self.error(f"scale_factor must be {len(self.size)} positive finite numbers, got "
                             f"{list(self.scale_factor)}")
        if self.align_corners and self.mode == "nearest":
            raise self.error("align_corners applies to bilinear mode only")

    def infer(self, ins):
        (t,) = ins
        _expects_map(self, t, (3,) if self.mode == "bilinear" else (2, 3))
        if len(self.size) != len(t.shape) - 1:
            raise self.error(f"size {list(self.size)} must have one entry per spatial dim of {list(t.shape)}")
        if self.scale_factor is not None:
            want = tuple(math.floor(n * s) for n, s in zip(t.shape[1:], self.scale_factor, strict=True))
            if want != self.size:
                raise self.error(f"size {list(self.size)} is not floor(input {list(t.shape[1:])} * scale_factor "
                                 f"{list(self.scale_factor)}) = {list(want)}")
        return {"out": TensorType((t.shape[0], *self.size), t.dtype, t.spike and self.mode == "nearest")}


@frozen
class Dropout2d(Synapse):
    """Channel dropout (``torch.nn.Dropout2d``) on (C, H, W) per-step maps: in training each
    (sample, channel) map is zeroed with probability ``p`` and the others scaled by ``1 / (1 - p)``,
    with a fresh mask at every time step (what the torch module called once per step draws);
    identity in evaluation."""

    p: float = 0.5
    op: ClassVar[str] = "dropout2d"

    def check(self):
        require_range(self, "p", 0.0, 1.0)

    def infer(self, ins):
        _expects_map(self, ins[0])
        return {"out": same_type(self, ins, spike=False)}
