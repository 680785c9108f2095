"""The surrogate spike as a registered custom op, ``snngraph::spike``, for ``torch.compile``.

Eager runs use ``surrogates._Spike`` (an ``autograd.Function``); under ``torch.compile`` the unfused
neurons' step kernels spike through this op instead: Heaviside forward, the named surrogate's
gradient (``surrogates.spike_gradient``) as its backward op, so dynamo traces no data-dependent
code of a surrogate formula. A ``custom`` surrogate (user code) keeps the autograd function.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from snngraph.ir.surrogate import Surrogate
from snngraph.runtimes.torch.surrogates import GRADIENTS, spike_gradient


@functools.cache
def _surrogate(name: str, values: tuple[float, ...]) -> Surrogate:
    return Surrogate(name, tuple(zip(GRADIENTS[name][1], values, strict=True)))


@torch.library.custom_op("snngraph::spike", mutates_args=())
def _spike_op(x: Tensor, surrogate: str, params: list[float]) -> Tensor:
    """``(x > 0)`` in ``x``'s dtype."""
    return (x > 0).to(x.dtype)


@_spike_op.register_fake
def _(x, surrogate, params):
    return torch.empty_like(x)


@torch.library.custom_op("snngraph::spike_backward", mutates_args=())
def _spike_backward_op(x: Tensor, grad: Tensor, surrogate: str, params: list[float]) -> Tensor:
    """The surrogate's gradient with respect to ``x``."""
    out = spike_gradient(_surrogate(surrogate, tuple(params)), x, grad)
    return out.clone() if out is grad else out


@_spike_backward_op.register_fake
def _(x, grad, surrogate, params):
    return torch.empty_like(x)


def _setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])
    ctx.options = inputs[1:]


def _backward(ctx, grad):
    (x,) = ctx.saved_tensors
    return _spike_backward_op(x, grad, *ctx.options), None, None


_spike_op.register_autograd(_backward, setup_context=_setup)


def spike_op(spec: Surrogate, x: Tensor) -> Tensor:
    """Spike ``x`` (membrane minus threshold) with the named surrogate ``spec`` as one custom op."""
    return _spike_op(x, spec.name, [v for _, v in spec.params])
