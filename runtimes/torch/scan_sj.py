r"""Fused time loop of SpikingJelly's IF and LIF (``sj_if``, ``sj_lif``): one autograd node per population.

Forward: the model's step (:mod:`snngraph.models.spikingjelly`) operation for operation, without an
autograd graph, saving only the charged membranes :math:`h_t` (so values are bit-identical to the
derived kernel). With :math:`z_t = \theta' - h_t` (:math:`\theta' = \theta - V_{reset}` for the hard reset),
:math:`S_t = 1 - H(z_t)`, and :math:`\sigma_t = H'(z_t)` the surrogate's gradient (:math:`dS_t/dh_t`):

.. math::
    \partial h_t &= \sigma_t\,\partial S_t + \lambda_t \Big((1 - S_t) - [\neg d]\,h_t\sigma_t\Big)\ \text{(hard)},\quad
        \lambda_t\big(1 - [\neg d]\,\theta\sigma_t\big)\ \text{(soft)} \\
    \partial x_t &= \partial h_t / \tau\ \text{(LIF, decay\_input)},\quad \partial h_t\ \text{(otherwise)},\qquad
    \lambda_{t-1} = \partial v_{t-1} + \partial h_t\,(1 - 1/\tau)\ \text{(LIF)},\quad \partial h_t\ \text{(IF)}

where :math:`\lambda_t` is the gradient reaching the state after step :math:`t` and :math:`d` is
``detach_reset``. The parameters are constants (``sj_if``/``sj_lif`` declare none learnable).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from snngraph.ir.surrogate import Surrogate
from snngraph.runtimes.torch.surrogates import spike_gradient


@dataclass(frozen=True)
class SjConfig:
    """Static choices: model (``if``/``lif``), reset, ``detach_reset``, ``decay_input``, surrogate."""

    lif: bool
    soft: bool
    detach: bool
    decay_input: bool
    surrogate: Surrogate


def _charge(cfg: SjConfig, u: Tensor, x: Tensor, tau: Tensor, out: Tensor, tmp: Tensor) -> Tensor:
    """The charged membrane into ``out``, by the model's operations in its order (``tmp``: scratch)."""
    if not cfg.lif:
        return torch.add(u, x, out=out)
    if cfg.decay_input:  # u + (x - u) / tau
        return torch.add(u, torch.sub(x, u, out=tmp).div_(tau), out=out)
    return torch.sub(u, torch.div(u, tau, out=tmp), out=out).add_(x)  # u - u / tau + x


class _SjScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, u0: Tensor, tau: Tensor, threshold: Tensor, v_reset: Tensor,
                cfg: SjConfig) -> tuple[Tensor, Tensor]:
        spikes, states, charged = torch.empty_like(x), torch.empty_like(x), torch.empty_like(x)
        fire_at = threshold if cfg.soft else threshold - v_reset
        u, tmp = u0, torch.empty_like(x[0])
        for t in range(x.shape[0]):
            h = _charge(cfg, u, x[t], tau, charged[t], tmp)
            spike = torch.gt(torch.sub(fire_at, h, out=tmp), 0, out=spikes[t]).neg_().add_(1)  # 1 - H(fire_at - h)
            u = torch.sub(h, torch.mul(spike, threshold, out=tmp), out=states[t]) if cfg.soft else \
                torch.mul(torch.rsub(spike, 1.0), h, out=states[t])
        ctx.save_for_backward(charged, tau, threshold, fire_at)
        ctx.cfg = cfg
        return spikes, states

    @staticmethod
    def backward(ctx, g_spk: Tensor, g_v: Tensor):
        charged, tau, threshold, fire_at = ctx.saved_tensors
        cfg: SjConfig = ctx.cfg
        gx = torch.empty_like(charged)
        carry = torch.zeros_like(charged[0])
        for t in range(charged.shape[0] - 1, -1, -1):
            h = charged[t]
            z = fire_at - h
            sg = spike_gradient(cfg.surrogate, z, torch.ones_like(z))
            lam = g_v[t] + carry
            if cfg.soft:
                through = lam if cfg.detach else lam * (1 - threshold * sg)
            else:
                keep = torch.gt(z, 0).to(h.dtype)  # 1 - S_t
                through = lam * keep if cfg.detach else lam * (keep - h * sg)
            gh = g_spk[t] * sg + through
            if cfg.lif:
                gx[t] = gh / tau if cfg.decay_input else gh
                carry = gh - gh / tau
            else:
                gx[t] = gh
                carry = gh
        return gx, carry, None, None, None, None


def sj_scan(x: Tensor, u0: Tensor, tau: Tensor, threshold: Tensor, v_reset: Tensor,
            cfg: SjConfig) -> tuple[Tensor, Tensor]:
    """Spikes and states ``v`` (both ``(T, B, ...)``) of an ``sj_if``/``sj_lif`` population over ``x``."""
    return _SjScan.apply(x, u0, tau, threshold, v_reset, cfg)
