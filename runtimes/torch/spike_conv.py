r"""A convolution over 0/1 spikes that keeps its input for the backward as one byte per spike.

As :mod:`~snngraph.runtimes.torch.spike_linear` for ``F.linear``: ``F.conv1d`` / ``F.conv2d`` save their float
input for the weight's gradient; for a convolution fed by a neuron's unit-amplitude spikes the same
information fits in a bool tensor (a quarter of float32). The forward is ``F.conv1d`` / ``F.conv2d`` itself and
the backward is the op autograd's own convolution backward calls (``aten.convolution_backward``) on the
float spikes rebuilt from the bools, so every value is identical:

.. math:: \bar W = \bar Y \star S,\qquad \bar b = \textstyle\sum \bar Y,\qquad \bar S = \bar Y \star^\top W
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _SpikeConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spikes: Tensor, weight: Tensor, bias: Tensor | None, conv: nn.Module) -> Tensor:
        ctx.save_for_backward(spikes.bool(), weight)
        ctx.in_dtype, ctx.has_bias = spikes.dtype, bias is not None
        ctx.stride, ctx.padding, ctx.dilation, ctx.groups = conv.stride, conv.padding, conv.dilation, conv.groups
        run = F.conv1d if spikes.dim() == 3 else F.conv2d
        return run(spikes, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        fired, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        # under autocast the forward ran in grad's dtype: the backward computes in it, each gradient then takes
        # its tensor's dtype (as the casts' backward would)
        spikes = grad.new_empty(fired.shape).copy_(fired.view(torch.uint8))  # (via uint8: vectorised)
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad, spikes, weight.to(grad.dtype), [weight.shape[0]] if ctx.has_bias else None, list(ctx.stride),
            list(ctx.padding), list(ctx.dilation), False, [0] * len(ctx.stride), ctx.groups,
            [needs[0], needs[1], ctx.has_bias and needs[2]])
        return (grad_x.to(ctx.in_dtype) if needs[0] else None, grad_w.to(weight.dtype) if needs[1] else None,
                grad_b.to(weight.dtype) if ctx.has_bias and needs[2] else None, None)


def spike_conv(spikes: Tensor, conv: nn.Conv1d | nn.Conv2d) -> Tensor:
    """``conv(spikes)`` for 0/1 ``spikes`` (rows, channels, ...), saving them as bool; the caller guarantees every
    entry is exactly 0 or 1 (a neuron's spikes with unit amplitude). Without autograd, or with padding given as a
    string or not by zeros (the IR has neither), it is the convolution itself."""
    weight, bias = conv.weight, conv.bias
    if (not torch.is_grad_enabled() or isinstance(conv.padding, str) or conv.padding_mode != "zeros"
            or not (spikes.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad))):
        return conv._conv_forward(spikes, weight, bias)  # noqa: SLF001 (torch's own method: the module's call)
    return _SpikeConv.apply(spikes, weight, bias, conv)
