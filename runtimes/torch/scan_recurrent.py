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
Saved: the membrane and the spikes (bool); the backward keeps one sequence-sized buffer (the
gradient of the input) and accumulates the parameter gradients per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from snngraph.ir.surrogate import Surrogate
from snngraph.runtimes.torch.scan import _reduce, graph_kept
from snngraph.runtimes.torch.surrogates import spike_gradient


@dataclass(frozen=True)
class RecurrentScanConfig:
    """Static choices: reset rule, surrogate, and whether V is dense (``all_to_all``)."""

    reset: str
    surrogate: Surrogate
    all_to_all: bool
    scratch_input: bool = False  # the input is private and ``mem`` is not needed (``lower.scratch_inputs``)


def _recurrent(spk: Tensor, weight: Tensor, bias: Tensor | None, dense: bool) -> Tensor:
    return F.linear(spk, weight, bias) if dense else weight * spk


class _RecurrentLeakyScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, spk0, mem0, beta, threshold, graded, weight, bias, cfg: RecurrentScanConfig):
        ctx.set_materialize_grads(False)  # an unused output (often mem) gets None, not a zero tensor
        b = beta.clamp(0, 1)
        mems = x if cfg.scratch_input else torch.empty_like(x)
        spks = torch.empty_like(x)
        leak = torch.empty_like(x[0]) if cfg.scratch_input else None
        unit = bool((graded == 1).all())
        spk, mem = spk0, mem0
        above = (mem0 > threshold).to(x.dtype)  # the reset R_t: the previous step's spike indicator
        for t in range(x.shape[0]):
            # b*mem + x + V(spk) - R*theta, written in place; the reset term is exact (R is 0 or 1),
            # so addcmul_ rounds once like the step kernel's subtraction; x + b*mem is b*mem + x exactly
            if cfg.scratch_input:
                mem = x[t].add_(torch.mul(b, mem, out=leak))
            else:
                mem = torch.mul(b, mem, out=mems[t]).add_(x[t])
            mem.add_(_recurrent(spk, weight, bias, cfg.all_to_all))
            if cfg.reset == "subtract":
                mem.addcmul_(above, threshold, value=-1)
            elif cfg.reset == "zero":
                mem.sub_(above * mem)
            above = torch.gt(mem, threshold, out=spks[t])
            # the recurrent input reads a fresh tensor: BLAS rounding can depend on alignment
            spk = above.clone() if unit else above * graded
        if not unit:
            spks.mul_(graded)
        ctx.cfg = cfg
        ctx.save_for_backward(spk0, mem0, beta, threshold, graded, weight, bias, mems)  # spikes: H(mems - theta)
        return spks, (x.new_empty(0) if cfg.scratch_input else mems)

    @staticmethod
    def backward(ctx, grad_spk, grad_mem):
        cfg = ctx.cfg
        spk0, mem0, beta, threshold, graded, weight, bias, mems = ctx.saved_tensors
        needs = ctx.needs_input_grad
        fired = torch.gt(mems, threshold) if needs[5] or needs[6] else None  # exactly the forward's spikes
        b = beta.clamp(0, 1)
        dtype = mems.dtype
        # step t reads U_t and U_{t-1} before writing mu_t: a scratch scan's own membranes can take it
        own = cfg.scratch_input and not graph_kept()
        mu = mems if own else torch.empty_like(mems)
        acc = {k: torch.zeros_like(mems[0]) for k, need in
               (("beta", needs[3]), ("thr", needs[4]), ("g", needs[5]), ("v", needs[6] and not cfg.all_to_all)) if need}
        unit = bool((graded == 1).all())
        need_reset = cfg.reset == "zero" or (cfg.reset == "subtract" and "thr" in acc)
        back = None  # mu_{t+1}
        for t in range(mems.shape[0] - 1, -1, -1):
            prev_mem = mems[t - 1] if t else mem0
            d_spk = _add(grad_spk[t] if grad_spk is not None else None,
                         None if back is None else _transpose(back, weight, cfg.all_to_all))
            if d_spk is None:
                d_spk = torch.zeros_like(mem0)
            s_term = spike_gradient(cfg.surrogate, mems[t] - threshold, d_spk if unit else d_spk * graded)
            lam = mu[t]  # (s_term + dL/dU_t) + beta mu_{t+1}, built in place
            if grad_mem is not None:
                torch.add(s_term, grad_mem[t], out=lam)
            else:
                lam.copy_(s_term)
            if back is not None:
                lam.add_(b * back)
            reset = (prev_mem > threshold).to(dtype) if need_reset else None
            if "thr" in acc:
                acc["thr"].sub_(s_term)
                if cfg.reset == "subtract":
                    acc["thr"].sub_(lam * reset)
            if cfg.reset == "zero":
                lam.mul_(1 - reset)  # mu_t
            back = lam
            if "g" in acc:
                acc["g"].add_(d_spk * fired[t].to(dtype))
            if "beta" in acc:
                acc["beta"].add_(back * prev_mem)
            if "v" in acc:
                acc["v"].add_(back * (fired[t - 1].to(dtype) * graded if t else spk0))
        grad_w = grad_b = grad_beta = None
        if needs[6]:
            grad_w = _dense_weight_grad(mu, fired, graded, spk0) if cfg.all_to_all else _reduce(acc["v"], weight)
        if bias is not None and needs[7]:
            grad_b = mu.reshape(-1, mu.shape[-1]).sum(0)
        if needs[3]:
            grad_beta = _reduce(acc["beta"], beta) * ((beta >= 0) & (beta <= 1)).to(beta.dtype)
        grad_thr = _reduce(acc["thr"], threshold) if needs[4] else None
        grad_g = _reduce(acc["g"], graded) if needs[5] else None
        grad_spk0 = _transpose(mu[0], weight, cfg.all_to_all) if needs[1] else None
        grad_mem0 = b * mu[0] if needs[2] else None
        return mu if needs[0] else None, grad_spk0, grad_mem0, grad_beta, grad_thr, grad_g, grad_w, grad_b, None


def _add(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    if a is None:
        return b
    return a if b is None else a + b


def _dense_weight_grad(mu: Tensor, fired: Tensor, graded: Tensor, spk0: Tensor, chunks: int = 8) -> Tensor:
    """``sum_t mu_t^T S_{t-1}`` as matmuls over blocks of steps (a fraction of the sequence in memory)."""
    n = mu.shape[-1]
    grad = mu[0].reshape(-1, n).t() @ spk0.reshape(-1, n)
    step = max(1, -(-(mu.shape[0] - 1) // chunks))
    for t0 in range(1, mu.shape[0], step):
        sl = slice(t0, t0 + step)
        prev = fired[t0 - 1:t0 - 1 + mu[sl].shape[0]].to(mu.dtype) * graded
        grad = grad + mu[sl].reshape(-1, n).t() @ prev.reshape(-1, n)
    return grad


def _transpose(mu: Tensor, weight: Tensor, dense: bool) -> Tensor:
    """The gradient reaching the previous spikes through V (in the scan's dtype: under autocast the
    forward's recurrent matmul ran in a lower precision than the float32 weight)."""
    weight = weight.to(mu.dtype)
    return mu @ weight if dense else weight * mu


def recurrent_leaky_scan(x: Tensor, spk0: Tensor, mem0: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor,
                         weight: Tensor, bias: Tensor | None, cfg: RecurrentScanConfig) -> tuple[Tensor, Tensor]:
    """Run RLeaky (``reset_delay=True``) over ``x`` of shape (T, B, N); returns ``(spk, mem)``
    (as the custom op ``snngraph::recurrent_leaky_scan`` under tracing, see ``scan_ops``)."""
    from snngraph.runtimes.torch import scan_ops

    if scan_ops.tracing():
        return scan_ops.recurrent_leaky_scan_op(x, spk0, mem0, beta, threshold, graded, weight, bias, cfg)
    return _RecurrentLeakyScan.apply(x, spk0, mem0, beta, threshold, graded, weight, bias, cfg)
