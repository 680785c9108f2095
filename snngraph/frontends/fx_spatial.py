"""Up-sampling, channel dropout and shape ops as IR nodes, for :func:`snngraph.frontends.fx.trace`:
``nn.ConvTranspose2d``, ``nn.Upsample`` (and ``UpsamplingNearest2d/Bilinear2d``), ``F.interpolate``,
``nn.Dropout2d`` / ``F.dropout2d``, ``x.transpose`` / ``torch.transpose`` / ``swapaxes``, ``x.permute`` /
``torch.permute``, ``unsqueeze`` / ``squeeze(dim)`` (as reshapes). (``view`` / ``reshape`` are handled in
:mod:`fx_ops`.)

Dims of the traced tensors count the batch as dim 0; the IR's per-step dims do not, so they are
shifted by one, and an op that would move the batch dim raises GraphError.

Importing this module adds the handlers to :data:`fx_ops.MODULES` and :data:`fx_ops.FUNCTIONS`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from snngraph.frontends.fx_ops import FUNCTIONS, MODULES, dim_pair_op, step_dim, tensor
from snngraph.ir.errors import GraphError
from snngraph.ir.graph import Handle

if TYPE_CHECKING:
    from snngraph.frontends.fx import Translator


def _conv_transpose(tr: Translator, m: nn.ConvTranspose2d, x: Handle, name: str) -> Handle:
    if m.padding_mode != "zeros":
        raise GraphError(f"padding_mode={m.padding_mode!r} is not supported (only 'zeros')")
    h = tr.g.conv_transpose2d(x, m.out_channels, m.kernel_size, m.stride, m.padding, m.output_padding, m.groups,
                              bias=m.bias is not None, dilation=m.dilation, weight=m.weight, bias_value=m.bias,
                              name=name)
    tr.learnable(name, weight=m.weight, bias=m.bias)
    return h


def interpolate(tr: Translator, x: Any, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                align_corners: Any = None, recompute_scale_factor: Any = None, antialias: bool = False,
                name: str = "") -> Handle:
    """``F.interpolate`` / ``nn.Upsample``: nearest or bilinear, by ``size`` or ``scale_factor``."""
    x = tensor(x, "interpolate")
    if mode not in ("nearest", "bilinear"):
        raise GraphError(f"mode {mode!r} is not supported (only 'nearest' and 'bilinear')")
    if antialias:
        raise GraphError("antialias=True is not supported")
    if recompute_scale_factor and scale_factor is not None:  # torch then maps positions by the sizes
        factors = scale_factor if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * (len(x.shape) - 1)
        size = tuple(math.floor(n * float(s)) for n, s in zip(x.shape[1:], factors, strict=True))
        scale_factor = None
    return tr.g.upsample(x, size, scale_factor, mode, align_corners, name=name)


def _upsample_module(tr: Translator, m: nn.Upsample, x: Handle, name: str) -> Handle:
    return interpolate(tr, x, m.size, m.scale_factor, m.mode, m.align_corners, m.recompute_scale_factor, name=name)


def dropout2d(tr: Translator, x: Any, p: float = 0.5, training: bool = True, inplace: bool = False,
              name: str = "") -> Handle:
    """``F.dropout2d``: an IR dropout2d node, active when the compiled module is in ``train()``."""
    return tr.g.dropout2d(tensor(x, "dropout2d"), p, name=name)


def transpose(tr: Translator, x: Any, dim0: int, dim1: int, name: str = "") -> Handle:
    """``x.transpose(dim0, dim1)`` of batched dims (neither may be the batch dim 0)."""
    return dim_pair_op(tr, "transpose", x, dim0, dim1, name)


def permute(tr: Translator, x: Any, *dims: Any, name: str = "", **kwargs: Any) -> Handle:
    """``x.permute(0, ...)`` / ``torch.permute(x, dims)``: the batch dim must stay first."""
    x = tensor(x, "permute")
    if kwargs:
        if set(kwargs) != {"dims"} or dims:
            raise GraphError(f"unsupported arguments {sorted(kwargs)}")
        dims = kwargs["dims"]
    elif len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = dims[0]
    n = len(x.shape) + 1
    full = [d % n if isinstance(d, int) and -n <= d < 0 else d for d in dims]
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in full) or sorted(full) != list(range(n)):
        raise GraphError(f"permute dims {tuple(dims)} must be a permutation of 0..{n - 1}")
    if full[0] != 0:
        raise GraphError(f"permute {tuple(dims)} moves the batch dim (dim 0), which cannot be expressed per step")
    if full == list(range(n)):
        return x
    return tr.g.permute(x, [d - 1 for d in full[1:]], name=name)


def unsqueeze(tr: Translator, x: Any, dim: int, name: str = "") -> Handle:
    """``x.unsqueeze(dim)`` after the batch dim: a reshape adding a per-step dim of size 1."""
    x = tensor(x, "unsqueeze")
    n = len(x.shape) + 1  # dims of the batched result
    if not isinstance(dim, int) or not -(n + 1) <= dim <= n:
        raise GraphError(f"unsqueeze: dim {dim!r} is out of range")
    d = dim % (n + 1)
    if d == 0:
        raise GraphError("unsqueeze(0) would put a dim before the batch dim, which cannot be expressed per step")
    return tr.g.reshape(x, (*x.shape[:d - 1], 1, *x.shape[d - 1:]), name=name)


def squeeze(tr: Translator, x: Any, dim: Any = None, name: str = "") -> Handle:
    """``x.squeeze(dim)`` of a per-step dim: a reshape (size 1: removed, else unchanged, as torch does)."""
    x = tensor(x, "squeeze")
    if dim is None:
        raise GraphError("squeeze() without a dim would also squeeze a batch of one; give the dim")
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    drop = {step_dim(d, len(x.shape), "squeeze") % len(x.shape) for d in dims}
    shape = tuple(n for i, n in enumerate(x.shape) if not (i in drop and n == 1))
    if shape == x.shape:
        return x
    if not shape:
        raise GraphError("squeeze would leave a per-step value without dims, which the IR cannot state")
    return tr.g.reshape(x, shape, name=name)


MODULES.update({
    nn.ConvTranspose2d: _conv_transpose,
    nn.Upsample: _upsample_module,
    nn.UpsamplingNearest2d: _upsample_module,
    nn.UpsamplingBilinear2d: _upsample_module,
    nn.Dropout2d: lambda tr, m, x, name: tr.g.dropout2d(x, m.p, name=name),
})

FUNCTIONS.update({
    F.interpolate: interpolate, F.upsample: interpolate,
    F.dropout2d: dropout2d,
    torch.transpose: transpose, "transpose": transpose, torch.swapaxes: transpose, "swapaxes": transpose,
    torch.swapdims: transpose, "swapdims": transpose,
    torch.permute: permute, "permute": permute,
    torch.unsqueeze: unsqueeze, "unsqueeze": unsqueeze, torch.squeeze: squeeze, "squeeze": squeeze,
})
