r"""The linear layer as the custom op ``snngraph::linear``, for ``torch.compile``, ``torch.export`` and ``torch.func``.

Under tracing (``scan_ops.tracing``) the compiled net's ``Linear`` modules call this op instead of
``F.linear``, for two reasons:

- the bias gradient :math:`\bar b = \sum_r \bar Y_r` runs inside the op. As a graph reduction,
  inductor's CPU code generator guards on its length (``T*B > 4096``, its accumulation chunk), so
  a net compiled with dynamic T and B recompiled once when ``T*B`` crossed 4096;
- fed a neuron's spikes (values :math:`0` or :math:`g`, the graded factor), the op saves them as
  one bool per spike plus :math:`g`, as :func:`spike_linear` does eagerly, without reading
  :math:`g` on the host.

The forward is ``F.linear`` and the backward makes ``F.linear``'s matrix products:

.. math:: \bar W = \bar Y^\top X,\qquad \bar b = \textstyle\sum_r \bar Y_r,\qquad \bar X = \bar Y W,
          \qquad X = [S \ne 0]\, g \ \text{(spike-fed)}

Autocast: the op is not autocast-aware, so :func:`linear_op` applies ``F.linear``'s autocast policy
itself (floating inputs, except float64, in the autocast dtype) and calls the op with autocast off.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from snngraph.runtimes.torch.scan_registry import _fake_grads, backward_call, with_autograd


@torch.library.custom_op("snngraph::linear", mutates_args=())
def _linear_op(x: Tensor, weight: Tensor, bias: Tensor | None, graded: Tensor | None) -> tuple[Tensor, Tensor]:
    """``(F.linear(x, weight, bias), x.bool() (x != 0) if graded is given, else empty)`` for 2-D ``x``."""
    fired = x.bool() if graded is not None else x.new_empty(0, dtype=torch.bool)  # (faster than x != 0)
    return F.linear(x, weight, bias), fired


@_linear_op.register_fake
def _(x, weight, bias, graded):
    fired = torch.empty_like(x, dtype=torch.bool) if graded is not None else x.new_empty(0, dtype=torch.bool)
    return x.new_empty(x.shape[0], weight.shape[0]), fired


def _unit_on_host(graded: Tensor) -> bool:
    """Whether the graded factor is 1, read only where that costs no device synchronisation (CPU)."""
    return graded.device.type == "cpu" and bool((graded == 1).all())


@torch.library.custom_op("snngraph::linear_backward", mutates_args=())
def _linear_backward_op(grad: Tensor, x: Tensor, fired: Tensor, graded: Tensor | None, weight: Tensor,
                        has_bias: bool, needs: list[bool]) -> list[Tensor]:
    """The gradients of ``(x, weight, bias)`` (empty where not needed); ``x`` is empty when ``fired``
    and ``graded`` stand for it."""
    grad_x = grad_w = grad_b = None
    # spike-fed, one buffer holds the float spikes, then the input gradient (as spike_linear does eagerly)
    buffer = grad.new_empty(fired.shape) if graded is not None and (needs[0] or needs[1]) else None
    if needs[1]:
        if graded is None:
            rows = x
        else:  # via uint8: vectorised; then times g in place, exactly fired.to(dtype) * g
            rows = buffer.copy_(fired.view(torch.uint8))
            if not _unit_on_host(graded):
                rows.mul_(graded.to(grad.dtype))
        grad_w = grad.t().mm(rows)
    if has_bias and needs[2]:
        grad_b = grad.sum(0)
    if needs[0]:
        grad_x = grad.mm(weight) if buffer is None else torch.mm(grad, weight, out=buffer)
    return [g if g is not None else weight.new_empty(0) for g in (grad_x, grad_w, grad_b)]  # all fresh tensors


@_linear_backward_op.register_fake
def _(grad, x, fired, graded, weight, has_bias, needs):
    likes = (x if graded is None else fired.to(grad.dtype), weight, grad[0] if has_bias else None)
    return _fake_grads(needs, likes)


def _setup(ctx, inputs, output):
    x, weight, bias, graded = inputs
    ctx.set_materialize_grads(False)
    ctx.has_bias, ctx.spike_fed = bias is not None, graded is not None
    saved_x = x.new_empty(0) if ctx.spike_fed else x
    ctx.save_for_backward(saved_x, output[1], graded, weight)


def _backward(ctx, grad, grad_fired):
    if grad is None:
        return None, None, None, None
    needs = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
    grads = backward_call(_linear_backward_op, grad, *ctx.saved_tensors, ctx.has_bias, needs)
    return *(g if need else None for g, need in zip(grads, needs, strict=True)), None


_run = with_autograd(_linear_op, _setup, _backward)


def _autocast(tensors: Sequence[Tensor | None]) -> list[Tensor | None]:
    """``F.linear``'s autocast policy: floating tensors other than float64 in the autocast dtype."""
    device = next(t for t in tensors if t is not None).device.type
    if not torch.is_autocast_enabled(device):
        return list(tensors)
    dtype = torch.get_autocast_dtype(device)
    return [t.to(dtype) if t is not None and t.is_floating_point() and t.dtype != torch.float64 else t
            for t in tensors]


def linear_op(x: Tensor, weight: Tensor, bias: Tensor | None, graded: Tensor | None = None) -> Tensor:
    """``F.linear(x, weight, bias)`` as the custom op, for ``x`` of shape ``(..., in)``.

    ``graded``: ``x`` holds a neuron's spikes, each exactly 0 or ``graded`` (its graded factor,
    broadcast over the last dim); they are saved as bool.
    """
    x, weight, bias = _autocast((x, weight, bias))
    rows = x.reshape(-1, x.shape[-1])
    with torch.autocast(x.device.type, enabled=False):
        y, _ = _run(rows, weight, bias, graded)
    return y.reshape(*x.shape[:-1], weight.shape[0])
