r"""Max pooling over non-overlapping windows that keeps, for its backward, only where each maximum was.

``F.max_pool2d`` saves its input and an int64 index per output element; when the windows tile the input
(stride = kernel, no padding, no dilation) the backward needs neither: each output's gradient goes to the
one input position its maximum came from. This pooling runs ``F.max_pool2d`` itself (so values, ties and
NaNs are torch's) and keeps each window's offset of the maximum as one byte, :math:`o = r\,k_w + c` for
row :math:`r` and column :math:`c` in a :math:`k_h \times k_w` window; the backward scatters the gradient back:

.. math:: \bar X[h_o k_h + \lfloor o / k_w \rfloor,\ w_o k_w + o \bmod k_w] = \bar Y[h_o, w_o],\quad 0 \text{ elsewhere}

which torch's own backward computes from the rebuilt indices (it adds each gradient to a zero at the one
index). Before a
spiking layer, ``conv -> max_pool -> neuron``, the convolution's output is then freed after the forward
instead of living until the backward (the convolution saves its input, not its output).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _window_starts(shape: tuple[int, ...], kernel: tuple[int, int], out_hw: tuple[int, int], device) -> Tensor:
    """The flat input index (over H*W) of each output's window's first element, shape (H_o, W_o)."""
    width = shape[-1]
    rows = torch.arange(out_hw[0], device=device).mul_(kernel[0] * width).view(-1, 1)
    return rows + torch.arange(out_hw[1], device=device).mul_(kernel[1]).view(1, -1)


def _rows_of(rel: Tensor, step: int, count: int) -> Tensor:
    """``rel // step`` for ``0 <= rel < count * step``, by ``count - 1`` comparisons (integer division is slow)."""
    row = (rel >= step).to(rel.dtype) if count > 1 else torch.zeros_like(rel)
    for j in range(2, count):
        row += rel >= j * step
    return row


class _LeanMaxPool2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, kernel: tuple[int, int]) -> Tensor:
        out, index = F.max_pool2d(x, kernel, kernel, return_indices=True)
        (kh, kw), width = kernel, x.shape[-1]
        starts = _window_starts(x.shape, kernel, out.shape[-2:], x.device).to(torch.int32)
        rel = torch.sub(index, starts, out=torch.empty(index.shape, dtype=torch.int32, device=x.device))  # r W + c
        row = _rows_of(rel, width, kh)
        ctx.save_for_backward(rel.sub_(row, alpha=width - kw).to(torch.uint8))  # r k_w + c (int32: half the bytes)
        ctx.kernel, ctx.in_shape = kernel, x.shape
        channels_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        ctx.layout = torch.channels_last if channels_last else torch.contiguous_format  # (the gradient's, as torch's)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (offset,) = ctx.saved_tensors
        (kh, kw), shape = ctx.kernel, ctx.in_shape
        offset = offset.to(torch.int32)
        row = _rows_of(offset, kw, kh)
        starts = _window_starts(shape, ctx.kernel, grad.shape[-2:], grad.device).to(torch.int32)
        index = torch.add(offset.add_(row, alpha=shape[-1] - kw), starts,
                          out=torch.empty(offset.shape, dtype=torch.int64, device=grad.device))
        # torch's own backward from the indices; it reads only the input's shape and layout, never its values
        like = torch.empty(shape, dtype=grad.dtype, device=grad.device, memory_format=ctx.layout)
        return torch.ops.aten.max_pool2d_with_indices_backward(grad, like, list(ctx.kernel), list(ctx.kernel), [0, 0],
                                                               [1, 1], False, index), None


def tiles(kernel: object, stride: object, padding: object, dilation: object, ceil_mode: bool) -> bool:
    """Whether a max pooling's windows tile its input: stride = kernel (or unset), no padding, no dilation,
    floor mode (sizes as ``nn.MaxPool2d`` holds them: ints or pairs)."""
    def pair(v: object) -> tuple:
        return tuple(v) if isinstance(v, (tuple, list)) else (v, v)

    return (pair(stride) in (pair(kernel), (None, None)) and pair(padding) == (0, 0) and pair(dilation) == (1, 1)
            and not ceil_mode and all(isinstance(k, int) and 1 <= k <= 16 for k in pair(kernel)))


def lean_max_pool2d(x: Tensor, kernel: int | tuple[int, int]) -> Tensor:
    """``F.max_pool2d(x, kernel)`` (stride = kernel) saving one byte per output for the backward (windows of at
    most 16x16: an offset fits a byte); without autograd it is ``F.max_pool2d`` itself."""
    k = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
    if not (torch.is_grad_enabled() and x.requires_grad):
        return F.max_pool2d(x, k, k)
    return _LeanMaxPool2d.apply(x, k)
