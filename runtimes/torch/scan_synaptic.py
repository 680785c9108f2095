r"""Fused time loop of the current-based LIF (``Synaptic``, delayed reset) with a hand-written
backward.

Forward, exactly the ``synaptic_step`` kernel's operations (values are bit-identical):

.. math::
    I_t = \alpha I_{t-1} + X_t,\quad B_t = \beta U_{t-1} + I_t,\quad
    U_t = B_t - R_t\theta\ (\text{subtract}),\ B_t - B_t R_t\ (\text{zero}),\ B_t\ (\text{none}),\quad
    S_t = g\,H(U_t - \theta)

Backward: the surrogate terms are computed for all steps at once, then two coupled linear
recurrences run backwards: :math:`\lambda_t = \bar U_t + g\sigma'_t \bar S_t + \beta\mu_{t+1}`,
:math:`\mu_t = \lambda_t` (or :math:`(1-R_t)\lambda_t` for zero), and
:math:`\nu_t = \bar I_t + \mu_t + \alpha\nu_{t+1}` (the gradient of the input current).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from snngraph.ir.surrogate import Surrogate
from snngraph.runtimes.torch.scan import _reduce, _surrogate_terms, graph_kept


@dataclass(frozen=True)
class SynapticScanConfig:
    """Static choices: the reset rule and the surrogate."""

    reset: str
    surrogate: Surrogate
    scratch_input: bool = False  # the input is private and ``syn``/``mem`` are not needed (``lower.scratch_inputs``)


class _SynapticScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, syn0, mem0, alpha, beta, threshold, graded, cfg: SynapticScanConfig):
        ctx.set_materialize_grads(False)
        a, b = alpha.clamp(0, 1), beta.clamp(0, 1)
        syns = x if cfg.scratch_input else torch.empty_like(x)
        mems, spks = torch.empty_like(x), torch.empty_like(x)
        syn, mem = syn0, mem0
        above = torch.gt(mem0, threshold).to(x.dtype)
        leak = torch.empty_like(x[0]) if cfg.scratch_input else None
        for t in range(x.shape[0]):
            if cfg.scratch_input:  # x[t] + a*syn is a*syn + x[t] exactly
                syn = x[t].add_(torch.mul(a, syn, out=leak))
            else:
                syn = torch.mul(a, syn, out=syns[t]).add_(x[t])
            base = b * mem + syn
            if cfg.reset == "subtract":
                mem = torch.sub(base, above * threshold, out=mems[t])
            elif cfg.reset == "zero":
                mem = torch.sub(base, base * above, out=mems[t])
            else:
                mems[t] = base
                mem = mems[t]
            above = torch.gt(mem, threshold, out=spks[t])
        unit = bool((graded == 1).all())
        ctx.cfg = cfg
        # spikes are H(mems - theta); the currents are needed only for alpha's gradient
        kept_syns = syns if ctx.needs_input_grad[3] else x.new_empty(0)
        ctx.save_for_backward(syn0, mem0, alpha, beta, threshold, graded, kept_syns, mems)
        if cfg.scratch_input:
            return (spks if unit else spks * graded), x.new_empty(0), x.new_empty(0)
        return (spks if unit else spks * graded), syns, mems

    @staticmethod
    def backward(ctx, grad_spk, grad_syn, grad_mem):
        cfg = ctx.cfg
        syn0, mem0, alpha, beta, threshold, graded, syns, mems = ctx.saved_tensors
        needs = ctx.needs_input_grad
        # the spikes, recomputed exactly as the forward's spike test (bool), only where a reset's or a
        # parameter's gradient reads them: the default (subtract, fixed threshold) needs none
        fired = None
        if cfg.reset == "zero" or (needs[5] and cfg.reset == "subtract") or (needs[6] and grad_spk is not None):
            fired = torch.gt(mems, threshold)
        a, b = alpha.clamp(0, 1), beta.clamp(0, 1)
        dtype = mems.dtype
        # a scratch scan's membranes are its own: the adjoint may overwrite them (see scan._backward_delayed)
        overwrite = cfg.scratch_input and not needs[4] and not graph_kept()
        if grad_spk is not None:
            lam = _surrogate_terms(cfg.surrogate, mems, threshold, graded, grad_spk, grad_mem,
                                   mems if overwrite else None)
        else:
            lam = grad_mem.clone() if grad_mem is not None else torch.zeros_like(mems)
        surrogate_part = None
        if needs[5] and grad_spk is not None:
            surrogate_part = lam - grad_mem if grad_mem is not None else lam.clone()
        first = torch.gt(mem0, threshold)  # R_0; R_t = S_{t-1}
        nu = grad_syn.clone() if grad_syn is not None else torch.zeros_like(mems)
        mu_next = nu_next = None
        for t in range(mems.shape[0] - 1, -1, -1):
            if mu_next is not None:
                lam[t].addcmul_(mu_next, b)
            if cfg.reset == "zero":
                lam[t].mul_((fired[t - 1] if t else first).logical_not())  # lam now holds mu_t
            nu[t].add_(lam[t])
            if nu_next is not None:
                nu[t].addcmul_(nu_next, a)
            mu_next, nu_next = lam[t], nu[t]
        mu = lam
        grad_alpha = grad_beta = grad_thr = grad_g = None
        if needs[3]:
            prev_syn = torch.cat([syn0.unsqueeze(0), syns[:-1]])
            grad_alpha = _reduce(nu * prev_syn, alpha) * ((alpha >= 0) & (alpha <= 1)).to(alpha.dtype)
        if needs[4]:
            prev_mem = torch.cat([mem0.unsqueeze(0), mems[:-1]])
            grad_beta = _reduce(mu * prev_mem, beta) * ((beta >= 0) & (beta <= 1)).to(beta.dtype)
        if needs[5]:
            total = -surrogate_part if surrogate_part is not None else torch.zeros_like(mems)
            if cfg.reset == "subtract":
                total = total - mu * torch.cat([first.unsqueeze(0), fired[:-1]]).to(dtype)
            grad_thr = _reduce(total, threshold)
        if needs[6] and grad_spk is not None:
            grad_g = _reduce(grad_spk * fired.to(dtype), graded)
        grad_syn0 = a * nu[0] if needs[1] else None
        grad_mem0 = b * mu[0] if needs[2] else None
        return nu if needs[0] else None, grad_syn0, grad_mem0, grad_alpha, grad_beta, grad_thr, grad_g, None


def synaptic_scan(x: Tensor, syn0: Tensor, mem0: Tensor, alpha: Tensor, beta: Tensor, threshold: Tensor,
                  graded: Tensor, cfg: SynapticScanConfig) -> tuple[Tensor, Tensor, Tensor]:
    """Run Synaptic (``reset_delay=True``) over ``x`` of shape (T, B, ...); returns ``(spk, syn, mem)``
    (as the custom op ``snngraph::synaptic_scan`` under tracing, see ``scan_ops``)."""
    from snngraph.runtimes.torch import scan_ops

    if scan_ops.tracing():
        return scan_ops.synaptic_scan_op(x, syn0, mem0, alpha, beta, threshold, graded, cfg)
    return _SynapticScan.apply(x, syn0, mem0, alpha, beta, threshold, graded, cfg)
