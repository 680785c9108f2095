r"""Fused time loop of Norse's ``LIFCell``, ``LICell``, ``LIFRecurrentCell`` and ``LIFBoxCell`` (the models
``norse_lif``, ``norse_li``, ``norse_lif_recurrent``, ``norse_lif_box``): one autograd node per population.

Forward: the model's step (:mod:`snngraph.models.norse_lif`) operation for operation, without an autograd
graph, so values are bit-identical to the derived kernel. With the state :math:`u` carried relative to
:math:`v_{leak}`, :math:`a = \Delta t\,\tau_{mem}^{-1}` and :math:`c = -\Delta t\,\tau_{syn}^{-1}`:

.. math::
    V_t &= u_{t-1} + v_{leak},\qquad I_t = i_{t-1} + x_t,\qquad W_t = V_t + a\,((v_{leak} - V_t) + I_t) \\
    z_t &= H(W_t - v_{th}),\qquad u_t = ((1 - z_t) W_t + z_t v_{reset}) - v_{leak},\qquad i_t = I_t + c\,I_t

(``LICell``: no spikes, :math:`u_t = W_t - v_{leak}`, so below :math:`z_t = 0` and :math:`\sigma_t = 0`.
``LIFRecurrentCell``: :math:`I_t = (i_{t-1} + x_t) + W_{rec} z_{t-1}`, one GEMM a step, and the reset
detached, so the term :math:`\lambda_t (v_{reset} - W_t)` of :math:`\bar z_t` is absent and
:math:`\bar z_{t-1}` gains :math:`W_{rec}^\top \bar I_t`. ``LIFBoxCell``: no current, :math:`I_t = x_t` and
:math:`W_t = V_t + a\,((x_t + v_{leak}) - V_t)`; its ``reset_method="subtract"`` makes
:math:`u_t = ((1 - z_t) W_t + z_t (W_t - v_{th})) - v_{leak}`, so :math:`\bar z_t = \bar S_t - \lambda_t v_{th}`,
:math:`\bar W_t = \lambda_t + \sigma_t \bar z_t` and :math:`v_{th}` gains :math:`-\sum \lambda z`.)

It saves the integrated membranes :math:`W` and the currents :math:`I` (spikes are :math:`H(W - v_{th})`).
Backward, the reset not detached (as in Norse's ``LIFCell``), with :math:`\lambda_t`, :math:`\kappa_t` the
gradients reaching :math:`u_t`, :math:`i_t` and :math:`\sigma_t = \sigma'(W_t - v_{th})` the surrogate's:

.. math::
    \bar z_t &= \bar S_t + \lambda_t (v_{reset} - W_t),\qquad \bar W_t = \lambda_t (1 - z_t) + \sigma_t \bar z_t,
    \qquad \bar x_t = \bar I_t = a \bar W_t + (1 + c)\,\kappa_t \\
    \lambda_{t-1} &= \bar u_{t-1} + (1 - a) \bar W_t,\qquad \kappa_{t-1} = \bar i_{t-1} + \bar I_t

and the parameters' gradients :math:`\bar v_{th} = -\sum \sigma \bar z`, :math:`\bar v_{reset} = \sum \lambda z`,
:math:`\bar v_{leak} = \sum (\bar W - \lambda)`,
:math:`\bar\tau_{mem}^{-1} = \Delta t \sum ((v_{leak} - V) + I)\,\bar W`,
:math:`\bar\tau_{syn}^{-1} = -\Delta t \sum I \kappa`. With ``scratch_input`` (the input current is private
to the node and only the spikes are read, ``lower.scratch_inputs``) the currents are written over the
input and the backward writes the input gradient over them (unless the graph is kept for another backward).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from snngraph.ir.surrogate import Surrogate
from snngraph.runtimes.torch.scan import _reduce, graph_kept
from snngraph.runtimes.torch.surrogates import spike_gradient

BLOCK_ELEMENTS = 2**18
"""Neurons times steps per block of the backward's vectorised terms (their temporaries stay cache-sized)."""


@dataclass(frozen=True)
class NorseLifConfig:
    """Static choices: the Euler step ``dt`` (a constant), the surrogate (``None``: ``LICell``, no spikes),
    whether the input is scratch space."""

    dt: float
    surrogate: Surrogate | None
    scratch_input: bool = False
    recurrent: str | None = None  # LIFRecurrentCell: "dense" (F.linear) or "diagonal" (V * z)
    box: bool = False  # LIFBoxCell: no current
    subtract: bool = False  # LIFBoxCell's reset_method="subtract"

    @property
    def spiking(self) -> bool:
        return self.surrogate is not None


def _reset(fired: Tensor, w: Tensor, v_reset: Tensor, v_leak: Tensor, out: Tensor, tmp: Tensor) -> Tensor:
    """``((1 - z) W + z v_reset) - v_leak`` into ``out``, by the model's operations in its order."""
    return torch.mul(torch.sub(1, fired, out=out), w, out=out).add_(torch.mul(fired, v_reset, out=tmp)).sub_(v_leak)


def _subtract(fired: Tensor, w: Tensor, v_th: Tensor, v_leak: Tensor, out: Tensor, tmp: Tensor) -> Tensor:
    """``((1 - z) W + z (W - v_th)) - v_leak`` into ``out``, by the model's operations in its order."""
    kept = torch.mul(torch.sub(1, fired, out=out), w, out=out)
    return kept.add_(torch.sub(w, v_th, out=tmp).mul_(fired)).sub_(v_leak)


def _after_spike(cfg: NorseLifConfig, fired: Tensor, w: Tensor, v_th: Tensor, v_reset: Tensor, v_leak: Tensor,
                 out: Tensor, tmp: Tensor) -> Tensor:
    """The state ``u`` after the spikes ``fired`` of the integrated membranes ``w``, into ``out``."""
    if cfg.subtract:
        return _subtract(fired, w, v_th, v_leak, out, tmp)
    return _reset(fired, w, v_reset, v_leak, out, tmp)


def _state(cfg: NorseLifConfig, w: Tensor, v_th: Tensor, v_reset: Tensor, v_leak: Tensor, out: Tensor,
           tmp: Tensor) -> Tensor:
    """The state ``u`` after the integrated membranes ``w``, as the forward makes it, into ``out``."""
    if not cfg.spiking:
        return torch.sub(w, v_leak, out=out)
    return _after_spike(cfg, torch.gt(w, v_th, out=tmp), w, v_th, v_reset, v_leak, out, tmp.clone())


class _NorseLifScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, u0: Tensor, i0: Tensor, spk0: Tensor | None, tau_syn_inv: Tensor, tau_mem_inv: Tensor,
                v_leak: Tensor, v_th: Tensor, v_reset: Tensor, weight: Tensor | None, bias: Tensor | None,
                cfg: NorseLifConfig) -> tuple[Tensor, Tensor, Tensor]:
        ctx.set_materialize_grads(False)  # unused outputs (often v and i) get None, not zero tensors
        a, c = cfg.dt * tau_mem_inv, -cfg.dt * tau_syn_inv
        currents = x if cfg.scratch_input or cfg.box else torch.empty_like(x)  # (LIFBoxCell: I = x)
        charged = torch.empty_like(x)
        spikes = torch.empty_like(x) if cfg.spiking else x.new_empty(0)
        keep = not cfg.scratch_input
        us = torch.empty_like(x) if keep else None
        is_ = torch.empty_like(x) if keep and not cfg.box else None
        v_buf, tmp = torch.empty_like(x[0]), torch.empty_like(x[0])
        ping = [torch.empty_like(x[0]) for _ in range(4)] if not keep else None
        # Norse's defaults v_leak = v_reset = 0 drop operations whose results are exact anyway: u + 0,
        # (0 - V) + I = I - V, (x + 0) - V, z * 0 and - 0 change at most the sign of a zero
        no_leak = not bool(v_leak.any())
        no_reset = no_leak and not cfg.subtract and not bool(v_reset.any())
        u, i, z = u0, i0, spk0
        for t in range(x.shape[0]):
            v = u if no_leak else torch.add(u, v_leak, out=v_buf)  # V = u + v_leak
            if cfg.box:  # V + a ((x + v_leak) - V)
                inner = torch.sub(x[t], v, out=tmp) if no_leak else torch.add(x[t], v_leak, out=tmp).sub_(v)
                w = torch.add(v, inner.mul_(a), out=charged[t])
            else:
                cur = torch.add(i, x[t], out=currents[t])  # I = i + x (x[t] read before it is overwritten)
                if cfg.recurrent is not None:  # (i + x) + W_rec z
                    cur.add_(_recurrent(cfg, z, weight, bias))
                inner = torch.sub(cur, v, out=tmp) if no_leak else torch.sub(v_leak, v, out=tmp).add_(cur)
                w = torch.add(v, inner.mul_(a), out=charged[t])
            out = us[t] if keep else ping[t % 2]
            if cfg.spiking:
                z = torch.gt(w, v_th, out=spikes[t])  # H(W - v_th) == (W > v_th) exactly for finite floats
                if no_reset:  # (1 - z) W
                    u = torch.mul(torch.sub(1, z, out=out), w, out=out)
                else:
                    u = _after_spike(cfg, z, w, v_th, v_reset, v_leak, out, tmp)
            else:
                u = torch.sub(w, v_leak, out=out)
            if not cfg.box:
                i = torch.add(cur, torch.mul(c, cur, out=tmp), out=is_[t] if is_ is not None else ping[2 + t % 2])
        ctx.cfg = cfg
        ctx.save_for_backward(u0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias, charged,
                              currents)
        return spikes, (us if keep else x.new_empty(0)), (is_ if is_ is not None else x.new_empty(0))

    @staticmethod
    def backward(ctx, g_spk: Tensor | None, g_v: Tensor | None, g_i: Tensor | None):
        cfg: NorseLifConfig = ctx.cfg
        u0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias, charged, currents = ctx.saved_tensors
        needs = ctx.needs_input_grad  # x, u0, i0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias
        rec = cfg.recurrent
        a, c = cfg.dt * tau_mem_inv, -cfg.dt * tau_syn_inv
        keep_a, keep_i = 1 - a, 1 + c
        steps, like = charged.shape[0], charged[0]
        # the taus' gradients read the currents after the loop; otherwise a scratch scan's own buffer takes gx
        own = cfg.scratch_input and not graph_kept() and not (needs[4] or needs[5])
        gx = currents if own else torch.empty_like(currents)
        params = any(needs[4:9])
        dws = torch.empty_like(charged) if params else None
        dw_step, lam = torch.empty_like(like), torch.empty_like(like)
        have_lam, have_kappa = False, g_i is not None
        kappa = g_i[steps - 1] if g_i is not None else None
        block = max(1, BLOCK_ELEMENTS // max(1, like.numel()))
        for t1 in range(steps, 0, -block):
            t0 = max(0, t1 - block)
            w = charged[t0:t1]
            # dW = lam (1 - z + sigma' (v_reset - W)) + sigma' (dS + W_rec^T dI'): the terms without the
            # adjoint, a block at once (the reset term only where it is not detached)
            coeff = direct = sig = None  # (LICell: dW = lam)
            if cfg.spiking:
                sig = spike_gradient(cfg.surrogate, w - v_th, torch.ones_like(w))
                if cfg.subtract:  # du/dW = 1, du/dz = -v_th
                    coeff = torch.ones_like(w).addcmul_(sig, v_th.expand_as(w[0]), value=-1)
                else:
                    coeff = torch.gt(w, v_th, out=torch.empty_like(w)).neg_().add_(1)
                if rec is None and not cfg.subtract:
                    coeff.addcmul_(sig, v_reset - w)
                direct = sig * g_spk[t0:t1] if g_spk is not None else None
            for t in range(t1 - 1, t0 - 1, -1):
                k = t - t0
                if g_v is not None:
                    lam = torch.add(lam, g_v[t], out=lam) if have_lam else lam.copy_(g_v[t])
                    have_lam = True
                dw = dws[t] if dws is not None else dw_step
                if have_lam and coeff is None:
                    dw.copy_(lam)
                elif have_lam:
                    torch.mul(lam, coeff[k], out=dw)
                    if direct is not None:
                        dw.add_(direct[k])
                elif direct is not None:
                    dw.copy_(direct[k])
                else:
                    dw.zero_()
                if rec is not None and t + 1 < steps:  # dz_t += W_rec^T dI_{t+1}
                    dw.addcmul_(sig[k], _recurrent_transposed(cfg, gx[t + 1], weight))
                di = torch.mul(dw, a, out=gx[t])  # (the current of step t is not read after this)
                if have_kappa:
                    di.addcmul_(kappa, keep_i)
                kappa = di if g_i is None or t == 0 else torch.add(di, g_i[t - 1])
                have_kappa = not cfg.box  # (LIFBoxCell: no current carries a gradient back)
                torch.mul(dw, keep_a, out=lam)
                have_lam = True
        grads = _parameter_grads(cfg, needs, g_v, g_i, u0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset,
                                 charged, currents, dws, gx) if params else (None,) * 5
        grad_i0 = kappa.clone() if needs[2] else None  # (kappa may be a step of gx)
        grad_spk0 = _recurrent_transposed(cfg, gx[0], weight) if rec is not None and needs[3] else None
        grad_w = grad_b = None
        if rec is not None and (needs[9] or (bias is not None and needs[10])):
            grad_w, grad_b = _recurrent_grads(cfg, needs, gx, charged, v_th, spk0, weight, bias)
        return (gx if needs[0] else None, lam if needs[1] else None, grad_i0, grad_spk0, *grads, grad_w, grad_b,
                None)


def _recurrent(cfg: NorseLifConfig, z: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    return F.linear(z, weight, bias) if cfg.recurrent == "dense" else weight * z


def _recurrent_transposed(cfg: NorseLifConfig, grad: Tensor, weight: Tensor) -> Tensor:
    """The gradient reaching the previous spikes through the recurrence."""
    return grad.mm(weight) if cfg.recurrent == "dense" else weight * grad


def _recurrent_grads(cfg: NorseLifConfig, needs, gx: Tensor, charged: Tensor, v_th: Tensor, spk0: Tensor,
                     weight: Tensor, bias: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    r"""The recurrence's weight (and bias) gradients: :math:`\sum_t \bar I_t^\top z_{t-1}`, one GEMM."""
    previous = torch.cat([spk0.unsqueeze(0), (charged[:-1] > v_th).to(charged.dtype)])
    grad_w = grad_b = None
    if needs[9]:
        if cfg.recurrent == "dense":
            grad_w = gx.reshape(-1, gx.shape[-1]).t().mm(previous.reshape(-1, previous.shape[-1]))
        else:
            grad_w = _reduce(gx * previous, weight)
    if bias is not None and needs[10]:
        grad_b = gx.reshape(-1, gx.shape[-1]).sum(0)
    return grad_w, grad_b


def _parameter_grads(cfg: NorseLifConfig, needs, g_v, g_i, u0, tau_syn_inv, tau_mem_inv, v_leak, v_th,
                     v_reset, charged, currents, dws, gx) -> tuple[Tensor | None, ...]:
    r"""The gradients of ``(tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset)`` from the whole sequences, after the
    loop: :math:`\lambda_t = \bar u_t + (1 - a) \bar W_{t+1}`, :math:`\kappa_t = \bar i_t + \bar I_{t+1}`."""
    a = cfg.dt * tau_mem_inv
    zero = charged.new_zeros((1, *charged.shape[1:]))
    lam = torch.cat([(1 - a) * dws[1:], zero])
    if g_v is not None:
        lam = lam + g_v
    fired = (charged > v_th).to(charged.dtype) if cfg.spiking else None
    grads: list[Tensor | None] = [None] * 5
    if needs[4]:
        kappa = torch.cat([gx[1:], zero])
        if g_i is not None:
            kappa = kappa + g_i
        grads[0] = _reduce(-cfg.dt * (currents * kappa), tau_syn_inv)
    if needs[5]:  # ((v_leak - V) + I) dW, V as the forward made it
        u = _state(cfg, charged, v_th, v_reset, v_leak, torch.empty_like(charged), torch.empty_like(charged))
        v = torch.cat([u0.expand_as(charged[0]).unsqueeze(0), u[:-1]]) + v_leak
        grads[1] = _reduce(cfg.dt * ((v_leak - v) + currents) * dws, tau_mem_inv)
    if needs[6]:
        grads[2] = _reduce(dws - lam, v_leak)
    if needs[7]:  # -sigma' dz = -(dW - lam (1 - z))
        grads[3] = _reduce(lam * (1 - fired) - dws, v_th)
    if needs[8] and not cfg.subtract:  # (subtract: v_reset is not read)
        grads[4] = _reduce(lam * fired, v_reset)
    return tuple(grads)


def _plus(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    if a is None:
        return b
    return a if b is None else a + b


def norse_lif_scan(x: Tensor, u0: Tensor, i0: Tensor, tau_syn_inv: Tensor, tau_mem_inv: Tensor, v_leak: Tensor,
                   v_th: Tensor, v_reset: Tensor, cfg: NorseLifConfig, spk0: Tensor | None = None,
                   weight: Tensor | None = None, bias: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Norse's LIFCell / LICell / LIFRecurrentCell (``cfg.recurrent``: ``spk0`` and the recurrence's
    ``weight``, ``bias``) over ``x`` of shape (T, B, ...) from the state ``(u0, i0)``: ``(spk, v, i)``
    sequences (``v`` relative to ``v_leak``; ``spk`` empty for LICell; ``v``, ``i`` empty with
    ``cfg.scratch_input``, which hands ``x`` over as the scan's buffer). Under ``torch.compile`` /
    ``torch.export`` / ``torch.func`` it runs as the custom op ``snngraph::norse_lif_scan``
    (``scan_norse_ops``: same values)."""
    from snngraph.runtimes.torch import scan_norse_ops, scan_ops

    if scan_ops.tracing():
        return scan_norse_ops.norse_lif_scan_op(x, u0, i0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, cfg, spk0,
                                                weight, bias)
    return _NorseLifScan.apply(x, u0, i0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias, cfg)
