r"""Fused time loop of snnTorch's ``AssociativeLeaky`` (the ``associative_leaky`` model): everything but the
state's recurrence over all T*B rows at once, the recurrence as one op with a hand-written backward.

The model's step (:mod:`snngraph.models.associative_leaky`) operation for operation, so values are
bit-identical to the derived loop: the projections, :math:`\alpha = \sigma(W_\alpha x + b_\alpha)`, the outer
products :math:`U_t = v_t k_t^\top`, the spikes :math:`Z = g\,H(S - \theta)` and the readout :math:`Z Q` are
element-wise or per-sample, so they run once over the whole sequence; only

.. math:: S_t = S_{t-1} \operatorname{diag}(\alpha_t) + U_t

runs step by step (``snngraph::decay_scan``: two operations a step). Its backward, with :math:`\lambda_t` the
gradient reaching :math:`S_t`:

.. math::
    \lambda_{t-1} = \bar S_{t-1} + \lambda_t \operatorname{diag}(\alpha_t),\qquad
    \bar U_t = \lambda_t,\qquad \bar\alpha_t = \textstyle\sum_i (\lambda_t \odot S_{t-1})_{i\cdot},\qquad
    \bar S_0 = \lambda_1 \operatorname{diag}(\alpha_1)

(in the code's indexing, the step before the first reads the initial state). A registered custom op, so
``torch.compile`` / ``torch.export`` keep T symbolic and ``torch.func`` transforms run it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from snngraph.models.common import fire
from snngraph.runtimes.torch.kernels_common import spike_fn
from snngraph.runtimes.torch.ops import TorchOps
from snngraph.runtimes.torch.scan_registry import _fake_grads, _grads, _untangle, backward_call, with_autograd


@torch.library.custom_op("snngraph::decay_scan", mutates_args=())
def _decay_scan(s0: Tensor, decay: Tensor, u: Tensor) -> Tensor:
    """``S_t = S_{t-1} * decay_t + u_t`` over dim 0 of ``u`` (T, B, d, n), ``decay`` (T, B, 1, n), ``S_{-1} = s0``."""
    out = torch.empty_like(u, memory_format=torch.contiguous_format)
    s = s0
    for t in range(u.shape[0]):
        s = torch.mul(s, decay[t], out=out[t]).add_(u[t])  # (the step's S * alpha + outer, in its order)
    return out


@_decay_scan.register_fake
def _(s0, decay, u):
    return torch.empty_like(u, memory_format=torch.contiguous_format)


@torch.library.custom_op("snngraph::decay_scan_backward", mutates_args=())
def _decay_scan_backward(grad: Tensor, s0: Tensor, decay: Tensor, states: Tensor, needs: list[bool]) -> list[Tensor]:
    """The gradients of ``(s0, decay, u)`` (empty where not needed)."""
    lam = grad.clone(memory_format=torch.contiguous_format)
    for t in range(lam.shape[0] - 1, 0, -1):
        lam[t - 1].addcmul_(lam[t], decay[t])
    grad_s0 = lam[0] * decay[0] if needs[0] else None
    grad_decay = None
    if needs[1]:
        prev = torch.cat([s0.expand_as(states[0]).unsqueeze(0), states[:-1]])
        grad_decay = (lam * prev).sum(-2, keepdim=True)
        grad_decay = grad_decay.sum_to_size(decay.shape) if grad_decay.shape != decay.shape else grad_decay
    if grad_s0 is not None and grad_s0.shape != s0.shape:
        grad_s0 = grad_s0.sum_to_size(s0.shape)
    return _grads((grad_s0, grad_decay, lam if needs[2] else None), needs, (s0, decay, states))


@_decay_scan_backward.register_fake
def _(grad, s0, decay, states, needs):
    return _fake_grads(needs, (s0, decay, states))


def _setup(ctx, inputs, output):
    s0, decay, _ = inputs
    ctx.save_for_backward(s0, decay, output)


def _backward(ctx, grad):
    if grad is None:
        return None, None, None
    needs = list(ctx.needs_input_grad)
    return _untangle(backward_call(_decay_scan_backward, grad, *ctx.saved_tensors, needs), needs)


decay_scan = with_autograd(_decay_scan, _setup, _backward)


def associative_scan(z: Tensor, s0: Tensor, kwargs: dict[str, Any]) -> tuple[Tensor, Tensor]:
    """``(spk, S)`` of an ``associative_leaky`` population over its projected input ``z`` (T, B, features)
    (``cell.projected``: every head's projection over all T*B rows), from the initial state ``s0`` (B, d, n)."""
    steps, batch = z.shape[:2]
    d, n = kwargs["d_value"], kwargs["d_key"]
    ops = TorchOps(spike_fn(kwargs.get("spike_grad")), project=kwargs["project"])
    rows = z.reshape(steps * batch, *z.shape[2:])
    alpha = ops.sigmoid(ops.project(rows, "to_alpha"))
    outer = ops.outer(ops.project(rows, "to_v"), ops.project(rows, "to_k"))
    states = decay_scan(s0, alpha.reshape(steps, batch, 1, n), outer.reshape(steps, batch, d, n))
    spikes = fire(ops, states.reshape(steps * batch, d, n), kwargs["threshold"], kwargs["graded_spikes_factor"])
    if kwargs["use_q_projection"]:
        out = ops.matmul(spikes, ops.reshape(ops.project(rows, "to_q"), (n, d))).reshape(steps, batch, d * d)
    else:
        out = spikes.reshape(steps, batch, d * n)
    return out, states
