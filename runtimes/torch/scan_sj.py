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
block before the next (a large layer's operands stay cache-sized); every operation writes into a
buffer (no allocation of a step's size), and no bool tensors are made (their CPU kernels are several
times slower than float ones). The firing test :math:`1 - H(\theta' - h)` is ``1 - [theta' > h]``: the
same for every float, NaN included (a difference of two floats is positive exactly when the first is
larger). atan's gradient takes two passes (``surrogates.gradient_into``), the backward of a detached
reset five a step. With ``scratch_input`` (the input current is private to the node and only the
spikes are read, ``lower.scratch_inputs``) the charged membranes are written over the input and the
backward writes the input gradient over them (unless the graph is kept for another backward).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from snngraph.ir.surrogate import Surrogate
from snngraph.runtimes.torch.scan import graph_kept
from snngraph.runtimes.torch.surrogates import gradient_into

BLOCK_ELEMENTS = 2**20
"""Neurons per block of the loops. Measured on the 2-core CPU (a 16x32x32x32 LIF, T=4, CPU time on one
thread): 2**15 33 ms (each op's overhead), 2**17 15 ms, whole steps (2**19) 13 ms, SpikingJelly 32 ms; with
two threads every op is a parallel region, so fewer, larger blocks also wait less on a busy machine (blocks
of torch's grain size, 2**15, whose ops run on one core, shared among Python threads: faster only while
another process holds a core)."""


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


def _columns(p: Tensor, shape: tuple[int, ...], width: int, blocks: int) -> list[Tensor]:
    """A parameter per block of the flat (B, ...) neurons of a step of ``shape``; a scalar as itself."""
    return [p] * blocks if p.dim() == 0 else list(p.expand(shape).reshape(-1).split(width))


def _cells(seq: Tensor | None, width: int) -> list[tuple[Tensor, ...]] | list[None]:
    """``seq`` (T, n) as its blocks' steps, ``cells[block][t]`` (views made once: cheaper than indexing)."""
    return [block.unbind(0) for block in seq.split(width, dim=1)] if seq is not None else []


class _SjScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, u0: Tensor, tau: Tensor, threshold: Tensor, v_reset: Tensor,
                cfg: SjConfig) -> tuple[Tensor, Tensor]:
        ctx.set_materialize_grads(False)  # an unused output (often v) gets None, not a zero tensor
        steps, shape = x.shape[0], x.shape[1:]
        x = x.contiguous()  # (a copy is as private as the scratch input itself)
        charged = x if cfg.scratch_input else torch.empty_like(x)  # saved whole: a view could not be
        spikes = torch.empty((steps, x[0].numel()), dtype=x.dtype, device=x.device)
        states = None if cfg.scratch_input else torch.empty_like(spikes)
        n = spikes.shape[1]
        width = min(n, BLOCK_ELEMENTS)
        blocks = -(-n // width)
        fire_at = threshold if cfg.soft else threshold - v_reset
        one = x.new_ones(())
        taus, thrs, fires = (_columns(p, shape, width, blocks) for p in (tau, threshold, fire_at))
        starts = u0.expand(shape).reshape(-1).split(width)
        cells = zip(_cells(x.view(steps, -1), width), _cells(charged.view(steps, -1), width), _cells(spikes, width),
                    _cells(states, width) or [None] * blocks, taus, thrs, fires, starts, strict=True)

        def block(cell: tuple) -> None:
            xs, hs, ss, vs, b_tau, b_thr, b_fire, u = cell
            k, s_tmp, last = (xs[0].new_empty(xs[0].shape) for _ in range(3))
            for t in range(steps):
                h = _charge(cfg, u, xs[t], b_tau, hs[t], s_tmp)
                torch.gt(b_fire, h, out=k)  # H(theta' - h) = 1 - S
                spike = torch.sub(one, k, out=ss[t])
                out = last if vs is None else vs[t]
                # h - S * theta (soft), (1 - S) * h (hard)
                u = torch.sub(h, torch.mul(spike, b_thr, out=s_tmp), out=out) if cfg.soft else torch.mul(k, h, out=out)

        for cell in cells:
            block(cell)
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
        steps, shape = ctx.x_shape[0], ctx.x_shape[1:]
        charged = charged.view(steps, -1)
        n = charged.shape[1]
        width = min(n, BLOCK_ELEMENTS)
        blocks = -(-n // width)
        gx = charged if cfg.scratch_input and not graph_kept() else torch.empty_like(charged)
        g_u0 = charged.new_empty(n)
        taus, thrs, fires = (_columns(p, shape, width, blocks) for p in (tau, threshold, fire_at))
        surrogate = gradient_into(cfg.surrogate, charged)
        none = [None] * blocks
        g_spk, g_v = (None if g is None else g.reshape(steps, -1) for g in (g_spk, g_v))  # (may be strided)
        cells = zip(_cells(charged, width), _cells(gx, width), _cells(g_spk, width) or none, _cells(g_v, width) or none,
                    g_u0.split(width), taus, thrs, fires, strict=True)

        def block(cell: tuple) -> None:
            hs, outs, gs, gv, g0, b_tau, b_thr, b_fire = cell
            z, c, acc, unit = (g0.new_empty(g0.shape) for _ in range(4))
            unit.fill_(1.0)
            carry = None
            for t in range(steps - 1, -1, -1):
                h, out = hs[t], outs[t]  # (out may be h: h is not read after _adjoint)
                lam = carry
                if gv is not None:
                    lam = gv[t] if lam is None else torch.add(gv[t], lam, out=acc)
                gh = _adjoint(cfg, surrogate, h, torch.sub(b_fire, h, out=z), b_thr, None if gs is None else gs[t],
                              lam, c, unit)
                if not cfg.lif:
                    carry = out.copy_(gh)
                elif cfg.decay_input:
                    torch.div(gh, b_tau, out=out)
                    carry = torch.sub(gh, out, out=acc)
                else:  # (gh may be c: its copy in out is read instead)
                    out.copy_(gh)
                    carry = torch.sub(out, torch.div(out, b_tau, out=c), out=acc)
            g0.copy_(carry)

        for cell in cells:
            block(cell)
        g_u0 = g_u0.view(shape)
        grad_u0 = g_u0 if g_u0.shape == ctx.u_shape else g_u0.sum_to_size(ctx.u_shape)
        return gx.view(ctx.x_shape), grad_u0, None, None, None, None


def _adjoint(cfg: SjConfig, surrogate: Callable[[Tensor, Tensor, Tensor], Tensor], h: Tensor, z: Tensor,
             threshold: Tensor, g: Tensor | None, lam: Tensor | None, c: Tensor, ones: Tensor) -> Tensor:
    r""":math:`\partial h_t = \sigma_t\,\partial S_t + \lambda_t\,C_t` for one step of a block, with :math:`C_t` the
    reset's factor of the module docstring. ``z`` holds :math:`\theta' - h_t` and ``c`` is scratch: the result
    is one of them or a new tensor, never ``g`` nor ``lam``."""
    hard_keep = not cfg.soft and lam is not None
    if hard_keep:
        torch.gt(z, 0, out=c)  # 1 - S
    if cfg.detach:
        gh = None if g is None else surrogate(z, g, z)  # sigma * g
        if lam is None:
            return gh if gh is not None else torch.zeros_like(h)
        if cfg.soft:  # C = 1
            return lam.clone() if gh is None else gh.add_(lam)
        return torch.mul(lam, c, out=c) if gh is None else gh.addcmul_(lam, c)
    sg = surrogate(z, ones, z)
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
    hands ``x`` over as the scan's buffer) of an ``sj_if``/``sj_lif`` population over ``x``. Under
    ``torch.compile`` / ``torch.export`` / ``torch.func`` it runs as the custom op ``snngraph::sj_scan``
    (``scan_sj_ops``: same values)."""
    from snngraph.runtimes.torch import scan_ops, scan_sj_ops

    if scan_ops.tracing():
        return scan_sj_ops.sj_scan_op(x, u0, tau, threshold, v_reset, cfg)
    return _SjScan.apply(x, u0, tau, threshold, v_reset, cfg)
