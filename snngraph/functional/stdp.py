r"""Spike-timing-dependent plasticity: snnTorch 1.0.0's ``functional.stdp_learner`` single steps.

snnTorch took these from SpikingJelly's ``activation_based.learning``; the maths below is theirs,
operation for operation. With pre-synaptic spikes :math:`s_{pre}` (the synapse's input), post-
synaptic spikes :math:`s_{post}` (its neuron's output) and weight :math:`W`:

.. math::
    x_{pre}[t] &= x_{pre}[t-1] - x_{pre}[t-1] / \tau_{pre} + s_{pre}[t] \\
    x_{post}[t] &= x_{post}[t-1] - x_{post}[t-1] / \tau_{post} + s_{post}[t] \\
    \Delta W_{ij} &= \textstyle\sum_b f_{post}(W_{ij})\, x_{pre,j}\, s_{post,i}
                     - f_{pre}(W_{ij})\, x_{post,i}\, s_{pre,j}

(summed over the batch, and for convolutions over the positions each kernel tap sees). The
modulated rules (``mstdp``, ``mstdpet``; Florian 2007) decay the traces by :math:`e^{-1/\tau}`
instead and return the per-sample eligibility ``(B, out, in)`` (``mstdpet``: ``(out, in)`` for
unbatched spikes) for the caller to multiply by the reward. Weights are read, never written
(``weight.data``); no autograd graph is built.

Departure from snnTorch 1.0.0: ``mstdpet_linear_single_step`` also takes batched spikes
``(B, N)`` (snnTorch's ``torch.outer`` crashes on them) and then returns ``(B, out, in)`` like
``mstdp``, and ``mstdp_linear_single_step`` also takes unbatched ones (snnTorch's crashes) and then
returns ``(out, in)`` like ``mstdpet``: the two compute the same eligibility; ``tau_trace`` is
accepted and unused in both (the caller decays the eligibility trace).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "mstdp_linear_single_step",
    "mstdpet_linear_single_step",
    "stdp_conv1d_single_step",
    "stdp_conv2d_single_step",
    "stdp_linear_single_step",
]

Trace = float | Tensor | None


def _identity(x: Tensor) -> Tensor:
    return x


def _traces(trace_pre: Trace, trace_post: Trace) -> tuple[float | Tensor, float | Tensor]:
    return (0.0 if trace_pre is None else trace_pre), (0.0 if trace_post is None else trace_post)


def _stdp_traces(in_spike: Tensor, out_spike: Tensor, trace_pre: Trace, trace_post: Trace, tau_pre: float,
                 tau_post: float) -> tuple[Tensor, Tensor]:
    """The traces after a step: :math:`x - x / \\tau + s`."""
    trace_pre, trace_post = _traces(trace_pre, trace_post)
    return trace_pre - trace_pre / tau_pre + in_spike, trace_post - trace_post / tau_post + out_spike


def _modulated_traces(in_spike: Tensor, out_spike: Tensor, trace_pre: Trace, trace_post: Trace, tau_pre: float,
                      tau_post: float) -> tuple[Tensor, Tensor]:
    """The traces after a step of the modulated rules: :math:`x e^{-1/\\tau} + s`."""
    trace_pre, trace_post = _traces(trace_pre, trace_post)
    return trace_pre * math.exp(-1 / tau_pre) + in_spike, trace_post * math.exp(-1 / tau_post) + out_spike


def _pairs(post: Tensor, pre: Tensor, dim: int) -> Tensor:
    """``post_i * pre_j`` with the ``(N_out, N_in)`` axes at ``dim`` (the neuron / channel axis)."""
    return post.unsqueeze(dim + 1) * pre.unsqueeze(dim)


def _delta_w(weight: Tensor, in_spike: Tensor, out_spike: Tensor, trace_pre: Tensor, trace_post: Tensor,
             f_pre: Callable, f_post: Callable, dim: int, reduce: Callable = _identity) -> Tensor:
    """:math:`f_{post}(W) \\cdot R(x_{pre} s_{post}) - f_{pre}(W) \\cdot R(x_{post} s_{pre})`, ``R = reduce``
    (the sum over the batch and positions, or none for a per-sample eligibility)."""
    return (f_post(weight) * reduce(_pairs(out_spike, trace_pre, dim))
            - f_pre(weight) * reduce(_pairs(trace_post, in_spike, dim)))


def _batch_sum(x: Tensor) -> Tensor:
    return x.sum(0)


@torch.no_grad()
def stdp_linear_single_step(
    fc: nn.Linear,
    in_spike: Tensor,
    out_spike: Tensor,
    trace_pre: Trace,
    trace_post: Trace,
    tau_pre: float,
    tau_post: float,
    f_pre: Callable = _identity,
    f_post: Callable = _identity,
) -> tuple[Tensor, Tensor, Tensor]:
    """One STDP step of ``fc``: ``(trace_pre, trace_post, delta_w)``, ``delta_w`` shaped like ``fc.weight``.

    ``in_spike`` is ``(B, N_in)``, ``out_spike`` ``(B, N_out)``; ``None`` traces start at 0.
    """
    trace_pre, trace_post = _stdp_traces(in_spike, out_spike, trace_pre, trace_post, tau_pre, tau_post)
    delta_w = _delta_w(fc.weight.data, in_spike, out_spike, trace_pre, trace_post, f_pre, f_post, 1, _batch_sum)
    return trace_pre, trace_post, delta_w


@torch.no_grad()
def mstdp_linear_single_step(
    fc: nn.Linear,
    in_spike: Tensor,
    out_spike: Tensor,
    trace_pre: Trace,
    trace_post: Trace,
    tau_pre: float,
    tau_post: float,
    f_pre: Callable = _identity,
    f_post: Callable = _identity,
) -> tuple[Tensor, Tensor, Tensor]:
    """Reward-modulated STDP (MSTDP): ``(trace_pre, trace_post, eligibility)``, eligibility ``(B, N_out, N_in)``
    for ``(B, N)`` spikes (``(N_out, N_in)`` for unbatched ones).

    Traces decay by ``exp(-1 / tau)``; multiply the eligibility by the reward to get the update.
    """
    trace_pre, trace_post = _modulated_traces(in_spike, out_spike, trace_pre, trace_post, tau_pre, tau_post)
    eligibility = _delta_w(fc.weight.data, in_spike, out_spike, trace_pre, trace_post, f_pre, f_post,
                           in_spike.dim() - 1)
    return trace_pre, trace_post, eligibility


@torch.no_grad()
def mstdpet_linear_single_step(
    fc: nn.Linear,
    in_spike: Tensor,
    out_spike: Tensor,
    trace_pre: Trace,
    trace_post: Trace,
    tau_pre: float,
    tau_post: float,
    tau_trace: float,
    f_pre: Callable = _identity,
    f_post: Callable = _identity,
) -> tuple[Tensor, Tensor, Tensor]:
    """MSTDP with an eligibility trace (MSTDPET): ``(trace_pre, trace_post, eligibility)``, as
    :func:`mstdp_linear_single_step`.

    Unbatched spikes ``(N_in,)``, ``(N_out,)`` give an ``(N_out, N_in)`` eligibility (snnTorch's
    ``torch.outer``); batched ``(B, N)`` spikes give ``(B, N_out, N_in)``. ``tau_trace`` is unused,
    as in snnTorch and SpikingJelly: the caller decays the eligibility trace with it.
    """
    return mstdp_linear_single_step(fc, in_spike, out_spike, trace_pre, trace_post, tau_pre, tau_post, f_pre, f_post)


def _padded(conv: nn.Module, in_spike: Tensor, none: tuple[int, ...]) -> Tensor:
    """``in_spike`` with ``conv``'s padding applied (snnTorch pads before the traces)."""
    if conv.padding == none:
        return in_spike
    if conv.padding_mode != "zeros":
        return F.pad(in_spike, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
    pad: list[int] = []
    for p in reversed(conv.padding):
        pad += [p, p]
    return F.pad(in_spike, pad=tuple(pad))


def _check_conv(conv: nn.Module, kind: str, ones: tuple[int, ...]) -> None:
    if isinstance(conv.padding, str):
        raise NotImplementedError(f"STDP with padding={conv.padding!r} for {kind} has not been implemented!")
    if conv.dilation != ones:
        raise NotImplementedError(f"STDP with dilation != 1 for {kind} has not been implemented!")
    if conv.groups != 1:
        raise NotImplementedError(f"STDP with groups != 1 for {kind} has not been implemented!")


def _sample_and_position_sum(x: Tensor) -> Tensor:
    """``(B, C_out, C_in, *positions)`` summed to ``(C_out, C_in)`` (snnTorch's permute, then sum)."""
    return x.permute([1, 2, 0, *range(3, x.dim())]).sum(dim=list(range(2, x.dim())))


def _stdp_conv(conv: nn.Module, kind: str, in_spike: Tensor, out_spike: Tensor, trace_pre: Tensor | None,
               trace_post: Tensor | None, tau_pre: float, tau_post: float, f_pre: Callable,
               f_post: Callable) -> tuple[Tensor, Tensor, Tensor]:
    """STDP of a convolution of any dimension: each kernel tap pairs the strided input window it sees with
    the output map."""
    spatial = conv.weight.dim() - 2
    _check_conv(conv, kind, (1,) * spatial)
    in_spike = _padded(conv, in_spike, (0,) * spatial)
    if trace_pre is None:
        trace_pre = torch.zeros_like(in_spike)
    if trace_post is None:
        trace_post = torch.zeros_like(out_spike, dtype=in_spike.dtype)
    trace_pre, trace_post = _stdp_traces(in_spike, out_spike, trace_pre, trace_post, tau_pre, tau_post)
    size = conv.weight.shape[2:]
    delta_w = torch.zeros_like(conv.weight.data)
    for tap in itertools.product(*(range(k) for k in size)):
        window = (slice(None), slice(None), *(slice(i, in_spike.shape[2 + d] - size[d] + 1 + i, conv.stride[d])
                                               for d, i in enumerate(tap)))
        taps = (slice(None), slice(None), *tap)
        delta_w[taps] += _delta_w(conv.weight.data[taps], in_spike[window], out_spike, trace_pre[window],
                                  trace_post, f_pre, f_post, 1, _sample_and_position_sum)
    return trace_pre, trace_post, delta_w


@torch.no_grad()
def stdp_conv2d_single_step(
    conv: nn.Conv2d,
    in_spike: Tensor,
    out_spike: Tensor,
    trace_pre: Tensor | None,
    trace_post: Tensor | None,
    tau_pre: float,
    tau_post: float,
    f_pre: Callable = _identity,
    f_post: Callable = _identity,
) -> tuple[Tensor, Tensor, Tensor]:
    """STDP of a ``Conv2d`` (no dilation, one group): ``(trace_pre, trace_post, delta_w)``.

    ``in_spike`` ``(B, C_in, H, W)``; ``trace_pre`` has the padded input's shape. Each kernel tap
    ``(h, w)`` pairs the strided input window it sees with the output map.
    """
    return _stdp_conv(conv, "Conv2d", in_spike, out_spike, trace_pre, trace_post, tau_pre, tau_post, f_pre, f_post)


@torch.no_grad()
def stdp_conv1d_single_step(
    conv: nn.Conv1d,
    in_spike: Tensor,
    out_spike: Tensor,
    trace_pre: Tensor | None,
    trace_post: Tensor | None,
    tau_pre: float,
    tau_post: float,
    f_pre: Callable = _identity,
    f_post: Callable = _identity,
) -> tuple[Tensor, Tensor, Tensor]:
    """STDP of a ``Conv1d`` (no dilation, one group): ``(trace_pre, trace_post, delta_w)``; as the 2-D case."""
    return _stdp_conv(conv, "Conv1d", in_spike, out_spike, trace_pre, trace_post, tau_pre, tau_post, f_pre, f_post)
