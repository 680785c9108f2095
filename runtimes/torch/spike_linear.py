r"""A linear layer over 0/1 spikes that keeps its input for the backward as one byte per spike.

``F.linear`` saves its float input; for a layer fed by a neuron's unit-amplitude spikes the same
information fits in a bool tensor (a quarter of float32, an eighth of float64). The forward is
``F.linear`` itself, and the backward makes the same matrix products as ``F.linear``'s, so every
value is identical. The weight gradient is formed before the input gradient, which then
overwrites the float copy of the spikes in the same buffer:

.. math:: \bar W = \bar Y^\top S,\qquad \bar b = \textstyle\sum_r \bar Y_r,\qquad \bar S = \bar Y W
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class _SpikeLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spikes: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(spikes.bool(), weight)
        ctx.has_bias = bias is not None
        ctx.in_dtype = spikes.dtype
        return F.linear(spikes, weight, bias)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        fired, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad_w = grad_b = grad_x = None
        # one buffer holds the float spikes, then the input gradient (same shape): one allocation. Under
        # autocast the forward ran in a lower precision (grad's dtype): the backward computes in it too,
        # and each gradient takes its tensor's dtype
        buffer = grad.new_empty(fired.shape) if needs[0] or needs[1] else None
        if needs[1]:
            grad_w = grad.t().mm(buffer.copy_(fired.view(torch.uint8))).to(weight.dtype)  # via uint8: vectorised
        if ctx.has_bias and needs[2]:
            grad_b = grad.sum(0).to(weight.dtype)
        if needs[0]:
            grad_x = torch.mm(grad, weight.to(grad.dtype), out=buffer).to(ctx.in_dtype)
        return grad_x, grad_w, grad_b


def spike_linear(spikes: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``F.linear(spikes, weight, bias)`` for 0/1 ``spikes`` of shape ``(..., in)``, saving them as bool.

    The caller guarantees every entry is exactly 0 or 1 (a neuron's spikes with unit amplitude).
    Without autograd it is ``F.linear``.
    """
    if not torch.is_grad_enabled() or not (spikes.requires_grad or weight.requires_grad
                                           or (bias is not None and bias.requires_grad)):
        return F.linear(spikes, weight, bias)
    if spikes.dim() == 2:
        return _SpikeLinear.apply(spikes, weight, bias)
    rows = spikes.reshape(-1, spikes.shape[-1])  # F.linear folds leading dims the same way
    return _SpikeLinear.apply(rows, weight, bias).reshape(*spikes.shape[:-1], weight.shape[0])
