r"""Fused time loop of the recurrent LIF (``RLeaky``) with a hand-written backward.

Forward, exactly the ``rleaky_step`` kernel's operations (so values are bit-identical), with
:math:`V` a dense layer (``W s + b``) or an element-wise scale (``v * s``):

.. math::
    B_t = \beta U_{t-1} + I_t + V(S_{t-1}),\quad
    U_t = B_t - R_t\theta \ (\text{subtract}),\ (1 - R_t) B_t \ (\text{zero}),\ B_t \ (\text{none}),\quad
    S_t = g\,H(U_t - \theta)

Backward (delayed, detached reset): with :math:`\mu_t = \partial L/\partial B_t`,

.. math::
    \frac{\partial L}{\partial S_t} = \bar S_t + V^\top \mu_{t+1},\quad
    \lambda_t = \bar U_t + g\,\sigma'(U_t - \theta) \frac{\partial L}{\partial S_t} + \beta\,\mu_{t+1},\quad
    \mu_t = \lambda_t \ \text{or}\ (1 - R_t)\lambda_t \ (\text{zero})

one small matmul per step; the weight gradients are one matmul over all T*B rows afterwards.
Saved: the membrane and the spikes (bool); surrogate slopes are recomputed a few steps at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from snngraph.ir.surrogate import Surrogate
from snngraph.runtimes.torch.scan import _reduce
from snngraph.runtimes.torch.surrogates import spike_gradient


@dataclass(frozen=True)
class RecurrentScanConfig:
    """Static choices: reset rule, surrogate, and whether V is dense (``all_to_all``)."""

    reset: str
    surrogate: Surrogate
    all_to_all: bool


def _recurrent(spk: Tensor, weight: Tensor, bias: Tensor | None, dense: bool) -> Tensor:
    return F.linear(spk, weight, bias) if dense else weight * spk


class _RecurrentLeakyScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, spk0, mem0, beta, threshold, graded, weight, bias, cfg: RecurrentScanConfig):
        ctx.set_materialize_grads(False)  # an unused output (often mem) gets None, not a zero tensor
        b = beta.clamp(0, 1)
        mems = torch.empty_like(x)
        spks = torch.empty_like(x)
        spk, mem = spk0, mem0
        for t in range(x.shape[0]):
            reset = (mem > threshold).to(x.dtype) if cfg.reset != "none" else None
            mem = b * mem + x[t] + _recurrent(spk, weight, bias, cfg.all_to_all)
            if cfg.reset == "subtract":
                mem = mem - reset * threshold
            elif cfg.reset == "zero":
                mem = mem - reset * mem
            mems[t] = mem
            spk = (mem > threshold).to(x.dtype) * graded  # a fresh tensor: BLAS rounding can depend on alignment
            spks[t] = spk
        ctx.cfg = cfg
        ctx.save_for_backward(spk0, mem0, beta, threshold, graded, weight, bias, mems, spks > 0)
        return spks, mems

    @staticmethod
    def backward(ctx, grad_spk, grad_mem):
        cfg = ctx.cfg
        spk0, mem0, beta, threshold, graded, weight, bias, mems, fired = ctx.saved_tensors
        needs = ctx.needs_input_grad
        b = beta.clamp(0, 1)
        steps = mems.shape[0]
        dtype = mems.dtype
        spks = fired.to(dtype) * graded
        prev_mem = torch.cat([mem0.unsqueeze(0), mems[:-1]])
        resets = (prev_mem > threshold).to(dtype) if cfg.reset != "none" else None
        slope = torch.empty_like(mems)  # g * sigma'(U - theta), a few steps at a time
        chunk = max(1, -(-steps // 8))
        for t0 in range(0, steps, chunk):
            sl = slice(t0, t0 + chunk)
            slope[sl] = spike_gradient(cfg.surrogate, mems[sl] - threshold, graded.expand_as(mems[sl]))
        g_spk = grad_spk if grad_spk is not None else torch.zeros_like(mems)
        d_spk_all = torch.empty_like(mems)
        lam = torch.empty_like(mems)
        mu = torch.empty_like(mems)
        back = None  # mu_{t+1}
        for t in range(steps - 1, -1, -1):
            d_spk = g_spk[t] if back is None else g_spk[t] + _transpose(back, weight, cfg.all_to_all)
            d_spk_all[t] = d_spk
            lam_t = slope[t] * d_spk
            if grad_mem is not None:
                lam_t = lam_t + grad_mem[t]
            if back is not None:
                lam_t = lam_t + b * back
            lam[t] = lam_t
            mu[t] = lam_t * (1 - resets[t]) if cfg.reset == "zero" else lam_t
            back = mu[t]
        prev_spk = torch.cat([spk0.unsqueeze(0), spks[:-1]])
        grad_w = grad_b = grad_thr = grad_g = grad_beta = None
        if needs[6]:
            if cfg.all_to_all:
                grad_w = mu.reshape(-1, mu.shape[-1]).t() @ prev_spk.reshape(-1, mu.shape[-1])
            else:
                grad_w = _reduce(mu * prev_spk, weight)
        if bias is not None and needs[7]:
            grad_b = mu.reshape(-1, mu.shape[-1]).sum(0)
        if needs[3]:
            inside = ((beta >= 0) & (beta <= 1)).to(beta.dtype)
            grad_beta = _reduce(mu * prev_mem, beta) * inside
        if needs[4]:
            total = -(slope * d_spk_all)
            if cfg.reset == "subtract":
                total = total - lam * resets
            grad_thr = _reduce(total, threshold)
        if needs[5]:
            grad_g = _reduce(d_spk_all * fired.to(dtype), graded)
        grad_spk0 = _transpose(mu[0], weight, cfg.all_to_all) if needs[1] else None
        grad_mem0 = b * mu[0] if needs[2] else None
        return mu if needs[0] else None, grad_spk0, grad_mem0, grad_beta, grad_thr, grad_g, grad_w, grad_b, None


def _transpose(mu: Tensor, weight: Tensor, dense: bool) -> Tensor:
    """The gradient reaching the previous spikes through V."""
    return mu @ weight if dense else weight * mu


def recurrent_leaky_scan(x: Tensor, spk0: Tensor, mem0: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor,
                         weight: Tensor, bias: Tensor | None, cfg: RecurrentScanConfig) -> tuple[Tensor, Tensor]:
    """Run RLeaky (``reset_delay=True``) over ``x`` of shape (T, B, N); returns ``(spk, mem)``."""
    return _RecurrentLeakyScan.apply(x, spk0, mem0, beta, threshold, graded, weight, bias, cfg)
