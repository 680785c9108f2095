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

Speed (values unchanged): both loops run over blocks of ``BLOCK_ELEMENTS`` neurons, all T steps of a
block before the next, so each step's operands stay in cache; every operation writes into a buffer
(no allocation of a step's size), and no bool tensors are made (their CPU kernels are several times
slower than float ones). The firing test :math:`1 - H(\theta' - h)` is ``1 - [theta' > h]``: the same for
every float, NaN included (a difference of two floats is positive exactly when the first is larger).
With ``scratch_input`` (the input current is private to the node and only the spikes are read,
``lower.scratch_inputs``) the charged membranes are written over the input and the backward writes
the input gradient over them (unless the graph is kept for another backward).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from snngraph.ir.surrogate import Surrogate
from snngraph.runtimes.torch.scan import graph_kept
from snngraph.runtimes.torch.surrogates import spike_gradient_into

BLOCK_ELEMENTS = 2**17
"""Neurons per block of the loops (measured: 2**15..2**17 alike on the 2-core CPU, whole steps slower)."""


@dataclass(frozen=True)
class SjConfig:
    """Static choices: model (``if``/``lif``), reset, ``detach_reset``, ``decay_input``, surrogate, and
    whether the input is scratch space (see the module docstring)."""

    lif: bool
    soft: bool
    detach: bool
    decay_input: bool
    surrogate: Surrogate
    scratch_input: bool = False


def _charge(cfg: SjConfig, u: Tensor, x: Tensor, tau: Tensor, out: Tensor, tmp: Tensor) -> Tensor:
    """The charged membrane into ``out`` (which may be ``x`` itself), by the model's operations in its
    order (``tmp``: scratch)."""
    if not cfg.lif:
        return torch.add(u, x, out=out)
    if cfg.decay_input:  # u + (x - u) / tau
        return torch.add(u, torch.sub(x, u, out=tmp).div_(tau), out=out)
    return torch.add(torch.sub(u, torch.div(u, tau, out=tmp), out=tmp), x, out=out)  # (u - u / tau) + x


def _columns(p: Tensor, shape: tuple[int, ...]) -> Tensor:
    """A parameter as a flat vector over the (B, ...) neurons of a step of ``shape``; a scalar stays a scalar."""
    return p if p.dim() == 0 else p.expand(shape).reshape(-1)


def _at(p: Tensor, cols: slice) -> Tensor:
    return p if p.dim() == 0 else p[cols]


class _SjScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, u0: Tensor, tau: Tensor, threshold: Tensor, v_reset: Tensor,
                cfg: SjConfig) -> tuple[Tensor, Tensor]:
        ctx.set_materialize_grads(False)  # an unused output (often v) gets None, not a zero tensor
        steps = x.shape[0]
        x = x.contiguous()  # (a copy is as private as the scratch input itself)
        charged = x if cfg.scratch_input else torch.empty_like(x)  # saved whole: a view could not be
        flat, spikes = x.view(steps, -1), torch.empty((steps, x[0].numel()), dtype=x.dtype, device=x.device)
        n = flat.shape[1]
        states = None if cfg.scratch_input else torch.empty_like(spikes)
        fire_at = threshold if cfg.soft else threshold - v_reset
        one = x.new_ones(())
        p_tau, p_thr, p_fire = (_columns(p, x.shape[1:]) for p in (tau, threshold, fire_at))
        u_all = u0.expand(x.shape[1:]).reshape(-1)
        width = min(n, BLOCK_ELEMENTS)
        keep, tmp = x.new_empty(width), x.new_empty(width)
        charged_flat = charged.view(steps, -1)
        last = x.new_empty(width) if states is None else None
        for start in range(0, n, width):
            cols = slice(start, start + width)
            size = min(width, n - start)
            k, s_tmp = keep[:size], tmp[:size]
            b_tau, b_thr, b_fire = _at(p_tau, cols), _at(p_thr, cols), _at(p_fire, cols)
            u = u_all[cols]
            for t in range(steps):
                h = _charge(cfg, u, flat[t, cols], b_tau, charged_flat[t, cols], s_tmp)
                torch.gt(b_fire, h, out=k)  # H(theta' - h) = 1 - S
                spike = torch.sub(one, k, out=spikes[t, cols])
                out = last[:size] if states is None else states[t, cols]
                # h - S * theta (soft), (1 - S) * h (hard)
                u = torch.sub(h, torch.mul(spike, b_thr, out=s_tmp), out=out) if cfg.soft else torch.mul(k, h, out=out)
        ctx.save_for_backward(charged, tau, threshold, fire_at)
        ctx.cfg, ctx.u_shape, ctx.x_shape = cfg, u0.shape, x.shape
        v = x.new_empty(0) if states is None else states.view_as(x)
        return spikes.view_as(x), v

    @staticmethod
    def backward(ctx, g_spk: Tensor | None, g_v: Tensor | None):
        charged, tau, threshold, fire_at = ctx.saved_tensors
        cfg: SjConfig = ctx.cfg
        if g_spk is None and g_v is None:
            return None, None, None, None, None, None
        steps = charged.shape[0]
        charged = charged.view(steps, -1)
        n = charged.shape[1]
        like = charged[0]
        gs = None if g_spk is None else g_spk.reshape(steps, -1)
        gv = None if g_v is None else g_v.reshape(steps, -1)
        gx = charged if cfg.scratch_input and not graph_kept() else torch.empty_like(charged)
        g_u0 = torch.empty_like(like)
        p_tau, p_thr, p_fire = (_columns(p, ctx.x_shape[1:]) for p in (tau, threshold, fire_at))
        width = min(n, BLOCK_ELEMENTS)
        z_buf, c_buf, carry_buf, ones = (like.new_empty(width) for _ in range(4))
        ones.fill_(1.0)
        for start in range(0, n, width):
            cols = slice(start, start + width)
            size = min(width, n - start)
            b_tau, b_thr, b_fire = _at(p_tau, cols), _at(p_thr, cols), _at(p_fire, cols)
            carry = None
            for t in range(steps - 1, -1, -1):
                h = charged[t, cols]
                lam = carry
                if gv is not None:
                    lam = gv[t, cols] if lam is None else torch.add(gv[t, cols], lam, out=carry_buf[:size])
                gh = _adjoint(cfg, h, torch.sub(b_fire, h, out=z_buf[:size]), b_thr,
                              None if gs is None else gs[t, cols], lam, c_buf[:size], ones[:size])
                out = gx[t, cols]  # (h is not read after this)
                if not cfg.lif:
                    carry = out.copy_(gh)
                elif cfg.decay_input:
                    torch.div(gh, b_tau, out=out)
                    carry = torch.sub(gh, out, out=carry_buf[:size])
                else:  # (gh may be c_buf: its copy in out is read instead)
                    out.copy_(gh)
                    carry = torch.sub(out, torch.div(out, b_tau, out=c_buf[:size]), out=carry_buf[:size])
            g_u0[cols].copy_(carry)
        g_u0 = g_u0.view(ctx.x_shape[1:])
        grad_u0 = g_u0 if g_u0.shape == ctx.u_shape else g_u0.sum_to_size(ctx.u_shape)
        return gx.view(ctx.x_shape), grad_u0, None, None, None, None


def _adjoint(cfg: SjConfig, h: Tensor, z: Tensor, threshold: Tensor, g: Tensor | None, lam: Tensor | None,
             c: Tensor, ones: Tensor) -> Tensor:
    r""":math:`\partial h_t = \sigma_t\,\partial S_t + \lambda_t\,C_t` for one step of a block, with :math:`C_t` the
    reset's factor of the module docstring. ``z`` holds :math:`\theta' - h_t` and ``c`` is scratch: the result
    is one of them or a new tensor, never ``g`` nor ``lam``."""
    hard_keep = not cfg.soft and lam is not None
    if hard_keep:
        torch.gt(z, 0, out=c)  # 1 - S
    if cfg.detach:
        gh = None if g is None else spike_gradient_into(cfg.surrogate, z, g, out=z)  # sigma * g
        if lam is None:
            return gh if gh is not None else torch.zeros_like(h)
        if cfg.soft:  # C = 1
            return lam.clone() if gh is None else gh.add_(lam)
        return torch.mul(lam, c, out=c) if gh is None else gh.addcmul_(lam, c)
    sg = spike_gradient_into(cfg.surrogate, z, ones, out=z)
    if lam is not None:
        if cfg.soft:
            torch.sub(ones, torch.mul(sg, threshold, out=c), out=c)  # 1 - theta * sigma
        else:
            c.addcmul_(h, sg, value=-1)  # (1 - S) - h * sigma
    gh = None if g is None else sg.mul_(g)
    if lam is None:
        return gh if gh is not None else torch.zeros_like(h)
    return torch.mul(lam, c, out=c) if gh is None else gh.addcmul_(lam, c)


def sj_scan(x: Tensor, u0: Tensor, tau: Tensor, threshold: Tensor, v_reset: Tensor,
            cfg: SjConfig) -> tuple[Tensor, Tensor]:
    """Spikes and states ``v`` (both ``(T, B, ...)``; ``v`` empty with ``cfg.scratch_input``, which
    hands ``x`` over as the scan's buffer) of an ``sj_if``/``sj_lif`` population over ``x``."""
    return _SjScan.apply(x, u0, tau, threshold, v_reset, cfg)
