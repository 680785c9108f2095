"""ONNX lowering of ``conv_transpose2d``, ``upsample``, ``dropout2d`` and the shape synapses
(``transpose``, ``permute``, ``reshape``, ``slice``), over rows ``(N, *shape)`` like every synapse.

``upsample`` is ``Resize``: nearest as ``asymmetric`` coordinates with ``floor`` rounding, bilinear
as ``linear`` with ``half_pixel`` (or ``align_corners``) coordinates, torch's formulas. With a
``scale_factor`` the node passes the factors (float32) as ``scales``, so source positions are
``dst / scale`` as in torch; an export whose float32 factors would give another output size is
refused with a LoweringError naming the node. Without one it passes the output ``sizes``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from snngraph.ir import synapses_shape as H
from snngraph.ir import synapses_spatial as U
from snngraph.ir.errors import LoweringError
from snngraph.ir.node import Node
from snngraph.ir.types import TensorType

if TYPE_CHECKING:
    from snngraph.runtimes.onnx.lower import Emitter

KINDS = (U.ConvTranspose2d, U.Upsample, U.Dropout2d, H.Transpose, H.Permute, H.Reshape, H.Slice)


def _conv_transpose(e: Emitter, node: U.ConvTranspose2d, x: str) -> str:
    """ConvTranspose. onnxruntime refuses ``output_padding >= stride`` (torch allows it up to the
    dilation): such a dim crops ``output_padding`` less at the end instead (asymmetric pads), and where
    the padding is smaller than that, the missing end rows lie beyond the full transposed convolution,
    where torch's output is the bias alone: they are padded with zeros before the bias is added."""
    fits = [op < s for op, s in zip(node.output_padding, node.stride, strict=True)]
    pairs = list(zip(node.padding, node.output_padding, fits, strict=True))
    end = [p if ok else max(p - op, 0) for p, op, ok in pairs]
    extra = [0 if ok else max(op - p, 0) for p, op, ok in pairs]
    out_pad = [op if ok else 0 for _, op, ok in pairs]
    bias_after = any(extra) and node.bias is not None
    ins = [x, e.param(node, "weight")] + ([e.param(node, "bias")] if node.bias is not None and not bias_after else [])
    y = e.op("ConvTranspose", *ins, hint=node.name, kernel_shape=list(node.kernel_size), strides=list(node.stride),
             pads=list(node.padding) + end, output_padding=out_pad, dilations=list(node.dilation), group=node.groups)
    if any(extra):
        y = e.op("Pad", y, e.ints([0, 0, 0, 0, 0, 0, *extra]), hint=node.name)
    if bias_after:
        y = e.op("Add", y, e.op("Reshape", e.param(node, "bias"), e.ints([-1, 1, 1]), hint=node.name), hint=node.name)
    return y


def _upsample(e: Emitter, node: U.Upsample, x: str, in_type: TensorType) -> str:
    h = node.name
    if node.mode == "nearest":
        attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    else:
        # half_pixel, not pytorch_half_pixel: torch keeps (dst + 0.5) / scale - 0.5 for an output of size 1 too
        attrs = dict(mode="linear", coordinate_transformation_mode="align_corners" if node.align_corners
                     else "half_pixel")
    if node.scale_factor is not None:
        scales = np.array([1.0, 1.0, *node.scale_factor], np.float32)
        sizes = [math.floor(n * float(s)) for n, s in zip(in_type.shape[1:], scales[2:], strict=True)]
        if tuple(sizes) != node.size:
            raise LoweringError(f"upsample '{h}': ONNX export: scale_factor {list(node.scale_factor)} in float32 "
                                f"gives size {sizes}, not {list(node.size)}; give the size instead")
        return e.op("Resize", x, "", e.const(scales), hint=h, **attrs)
    rows = e.op("Shape", x, start=0, end=2, hint=h)
    sizes_in = e.op("Concat", rows, e.ints(node.size), axis=0, hint=h)
    return e.op("Resize", x, "", "", sizes_in, hint=h, **attrs)


def lower_spatial(e: Emitter, node: Node, xs: list[str], in_types: list[TensorType], out_type: TensorType) -> str:
    """Lower one of :data:`KINDS` over rows; return the output's name."""
    x, h = xs[0], node.name
    if isinstance(node, U.ConvTranspose2d):
        return _conv_transpose(e, node, x)
    if isinstance(node, U.Upsample):
        return _upsample(e, node, x, in_types[0])
    if isinstance(node, U.Dropout2d):
        return e.op("Identity", x, hint=h)
    if isinstance(node, H.Transpose):
        n = len(in_types[0].shape)
        perm = list(range(n + 1))
        a, b = node.dim0 % n + 1, node.dim1 % n + 1
        perm[a], perm[b] = perm[b], perm[a]
        return e.op("Transpose", x, perm=perm, hint=h)
    if isinstance(node, H.Permute):
        return e.op("Transpose", x, perm=[0, *(d + 1 for d in node.dims)], hint=h)
    if isinstance(node, H.Slice):
        axis = node.dim % len(in_types[0].shape) + 1
        return e.op("Slice", x, e.ints([node.start]), e.ints([node.stop]), e.ints([axis]), hint=h)
    return e.op("Reshape", x, e.ints([-1, *out_type.shape]), hint=h)
