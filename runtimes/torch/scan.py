r"""Fused time-loop kernels: a neuron population's whole sequence in one autograd node.

``leaky_scan`` runs the Leaky / IF / LI update over all T steps without building an autograd
graph, and a hand-written backward runs the adjoint loop. It saves only the membrane sequence
(in the input's dtype; with ``reset_delay=False`` also the pre-reset membrane) and recomputes
spikes and resets from it, so memory is O(T·B·N) with a small constant and no O(T²) work.

Forward (per step, exactly the ``leaky_step`` kernel's operations, so values are bit-identical):

.. math::
    R_t = H(U_{t-1} - \theta),\quad U_t = \beta U_{t-1} + I_t - R_t\theta,\quad S_t = g\,H(U_t - \theta)

Backward with ``reset_delay=True`` (the reset is detached, as in snnTorch): the surrogate terms
do not depend on the adjoint, so they are computed for all steps at once and the loop is the
linear recurrence :math:`\lambda_t = \partial L/\partial U_t + g\,\sigma'(U_t-\theta)\,\partial L/\partial S_t
+ a_{t+1}\lambda_{t+1}` with :math:`a_t = \beta` (``subtract``/``none``) or :math:`\beta(1-R_t)` (``zero``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from snngraph.ir.surrogate import Surrogate
from snngraph.runtimes.torch.surrogates import spike_gradient


@dataclass(frozen=True)
class ScanConfig:
    """Static choices of a scan: reset rule, its timing, the surrogate, spiking or LI."""

    reset: str = "subtract"
    reset_delay: bool = True
    surrogate: Surrogate | None = None
    spiking: bool = True
    scratch_input: bool = False  # the input is private to the scan and ``mem`` is not needed (see leaky_scan)


def _subtract_forward(x: Tensor, mem0: Tensor, b: Tensor, threshold: Tensor, mems: Tensor) -> Tensor:
    """The common case (subtract, delayed reset) in four in-place ops a step, written straight
    into the membrane and spike sequences; bit-identical to ``b*mem + x - R*theta`` (the reset
    term is exact, so the fused multiply-add of ``addcmul_`` rounds once, like a subtraction).
    ``mems`` may be ``x`` itself: step t reads ``x[t]`` before overwriting it (``x + b*mem`` is
    ``b*mem + x`` exactly)."""
    spks = torch.empty_like(x)
    above, mem = torch.gt(mem0, threshold).to(x.dtype), mem0
    if mems is x:
        leak = torch.empty_like(x[0])
        for t in range(x.shape[0]):
            mem = x[t].add_(torch.mul(b, mem, out=leak)).addcmul_(above, threshold, value=-1)
            above = torch.gt(mem, threshold, out=spks[t])
        return spks
    for t in range(x.shape[0]):
        mem = torch.mul(b, mem, out=mems[t]).add_(x[t]).addcmul_(above, threshold, value=-1)
        above = torch.gt(mem, threshold, out=spks[t])
    return spks


def _delayed_forward(x: Tensor, mem0: Tensor, b: Tensor, threshold: Tensor, mems: Tensor, reset: str) -> Tensor:
    """Zero or no reset, delayed: the step kernel's operations; ``mems`` may be ``x`` itself."""
    spks = torch.empty_like(x)
    mem, above = mem0, torch.gt(mem0, threshold).to(x.dtype)
    for t in range(x.shape[0]):
        mem = b * ((1 - above) * mem) + x[t] if reset == "zero" else b * mem + x[t]
        mems[t] = mem
        above = torch.gt(mem, threshold, out=spks[t])
    return spks


def _reset_now_forward(x: Tensor, mem0: Tensor, b: Tensor, threshold: Tensor, graded: Tensor, mems: Tensor,
                       reset: str, unit: bool) -> tuple[Tensor, Tensor]:
    """Reset in the step of the spike: returns the spike indicators and the pre-reset membranes."""
    pres = torch.empty_like(x)
    fired = torch.empty(x.shape, dtype=torch.bool, device=x.device)
    mem = mem0
    above = torch.gt(mem0, threshold)  # H(U - theta) == (U > theta) exactly for finite floats
    for t in range(x.shape[0]):
        if reset == "subtract":
            mem = b * mem + x[t] - above.to(x.dtype) * threshold
        else:
            mem = b * ((1 - above.to(x.dtype)) * mem) + x[t]
        torch.gt(mem, threshold, out=fired[t])
        pres[t] = mem
        spk = fired[t].to(x.dtype) if unit else fired[t].to(x.dtype) * graded
        do_reset = spk / graded - above.to(x.dtype)
        mem = mem - do_reset * threshold if reset == "subtract" else mem - do_reset * mem
        above = torch.gt(mem, threshold)
        mems[t] = mem
    return fired.to(x.dtype), pres


def graph_kept() -> bool:
    """Whether the running backward keeps the graph (``retain_graph``/``create_graph``), so saved
    tensors must survive it; True where this torch cannot tell (then nothing is overwritten)."""
    keep = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    return True if keep is None else bool(keep())


def _step(u: Tensor) -> Tensor:
    return (u > 0).to(u.dtype)


def _reduce(grad: Tensor, like: Tensor) -> Tensor:
    """Sum a broadcast gradient back to the parameter's shape."""
    if like.dim() == 0:
        return grad.sum().reshape(())
    return grad.sum_to_size(like.shape)


class _LeakyScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, mem0: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor,
                cfg: ScanConfig) -> tuple[Tensor, Tensor]:
        ctx.set_materialize_grads(False)  # an unused output (often mem) gets None, not a zero tensor
        ctx.cfg = cfg
        b = beta.clamp(0, 1)
        mems = x if cfg.scratch_input else torch.empty_like(x)
        if not cfg.spiking:
            mem = mem0
            for t in range(x.shape[0]):
                mem = b * mem + x[t]
                mems[t] = mem
            ctx.save_for_backward(mem0, beta, threshold, graded, mems)
            return x.new_empty(0), mems
        unit = bool((graded == 1).all())
        extra: tuple[Tensor, ...] = ()
        if not cfg.reset_delay and cfg.reset != "none":
            spks, pres = _reset_now_forward(x, mem0, b, threshold, graded, mems, cfg.reset, unit)
            extra = (pres,)
        elif cfg.reset == "subtract":
            spks = _subtract_forward(x, mem0, b, threshold, mems)
        else:
            spks = _delayed_forward(x, mem0, b, threshold, mems, cfg.reset)
        # spikes are H(mems - theta) for a delayed reset: the backward recomputes them when needed
        ctx.save_for_backward(mem0, beta, threshold, graded, mems, *extra)
        return (spks if unit else spks * graded), (x.new_empty(0) if cfg.scratch_input else mems)

    @staticmethod
    def backward(ctx, grad_spk: Tensor | None, grad_mem: Tensor | None):
        cfg = ctx.cfg
        mem0, beta, threshold, graded, mems, *rest = ctx.saved_tensors
        if not cfg.spiking:
            return _backward_delayed(ctx, None, grad_mem, mem0, beta, threshold, graded, mems)
        if rest:
            g_out = grad_mem if grad_mem is not None else torch.zeros_like(mems)
            return _backward_reset_now(ctx, grad_spk, g_out, mem0, beta, threshold, graded, mems, rest[0])
        return _backward_delayed(ctx, grad_spk, grad_mem, mem0, beta, threshold, graded, mems)


def _surrogate_terms(surrogate: Surrogate, mems: Tensor, threshold: Tensor, graded: Tensor, grad_spk: Tensor,
                     g_out: Tensor | None, out: Tensor | None = None, block_elements: int = 2**18) -> Tensor:
    """``g_out + g * sigma'(U - theta) * dL/dS`` for all steps, a few steps at a time so the
    surrogate's temporaries stay cache-sized (peak memory and speed). ``out`` may be ``mems``."""
    unit = bool((graded == 1).all())
    out = torch.empty_like(mems) if out is None else out
    step = max(1, block_elements // max(1, mems[0].numel()))
    for t0 in range(0, mems.shape[0], step):
        sl = slice(t0, t0 + step)
        g = grad_spk[sl] if unit else grad_spk[sl] * graded
        gz = spike_gradient(surrogate, mems[sl] - threshold, g)
        if g_out is not None:
            torch.add(gz, g_out[sl], out=out[sl])
        else:
            out[sl] = gz
    return out


def _backward_delayed(ctx, grad_spk, g_out, mem0, beta, threshold, graded, mems):
    """Adjoint of the delayed-reset scan: vectorised surrogate terms, then one linear recurrence
    ``lam[t] += a[t+1] * lam[t+1]`` run in place.

    With ``scratch_input`` the membranes belong to this node alone, so unless the graph is kept
    for another backward (or beta's gradient needs them) the adjoint overwrites them in place."""
    cfg = ctx.cfg
    needs = ctx.needs_input_grad
    b = beta.clamp(0, 1)
    grad_thr = grad_g = grad_beta = None
    fired = None
    if cfg.spiking and (cfg.reset == "zero" or needs[4] or (needs[3] and cfg.reset == "subtract")):
        fired = torch.gt(mems, threshold)  # the spikes of a delayed reset, exactly as in the forward
    overwrite = cfg.scratch_input and not needs[2] and not graph_kept()
    if cfg.spiking and grad_spk is not None:
        lam = _surrogate_terms(cfg.surrogate, mems, threshold, graded, grad_spk, g_out, mems if overwrite else None)
        if needs[3]:
            grad_thr = -_reduce(lam if g_out is None else lam - g_out, threshold)
        if needs[4]:
            grad_g = _reduce(grad_spk * fired.to(mems.dtype), graded)
    else:
        lam = g_out.clone() if g_out is not None else torch.zeros_like(mems)
    first_reset = torch.gt(mem0, threshold).to(mems.dtype) if cfg.spiking and cfg.reset != "none" else None
    resets = None
    if cfg.spiking and cfg.reset == "zero":  # the reset at t is the spike indicator of t-1
        resets = torch.cat([first_reset.unsqueeze(0), fired[:-1].to(mems.dtype)])
        a = b * (1 - resets)
        for t in range(mems.shape[0] - 2, -1, -1):
            lam[t].addcmul_(lam[t + 1], a[t + 1])
    else:
        for t in range(mems.shape[0] - 2, -1, -1):
            lam[t].addcmul_(lam[t + 1], b)
    if needs[3] and cfg.spiking and cfg.reset == "subtract":
        shifted = _reduce(lam[1:] * fired[:-1].to(mems.dtype), threshold) + _reduce(lam[0] * first_reset, threshold)
        grad_thr = -shifted if grad_thr is None else grad_thr - shifted
    if needs[2]:
        keep = (1 - resets) if resets is not None else None
        head = lam[0] * mem0 if keep is None else lam[0] * keep[0] * mem0
        body = lam[1:] * mems[:-1] if keep is None else lam[1:] * keep[1:] * mems[:-1]
        inside = ((beta >= 0) & (beta <= 1)).to(beta.dtype)
        grad_beta = (_reduce(body, beta) + _reduce(head, beta)) * inside
    a0 = b * (1 - first_reset) if resets is not None else b
    grad_mem0 = a0 * lam[0] if needs[1] else None
    return lam if needs[0] else None, grad_mem0, grad_beta, grad_thr, grad_g, None


def _backward_reset_now(ctx, grad_spk, g_out, mem0, beta, threshold, graded, mems, pres):
    """Adjoint loop for ``reset_delay=False``: the reset uses the (surrogate-carrying) spike."""
    cfg = ctx.cfg
    b = beta.clamp(0, 1)
    prev = torch.cat([mem0.unsqueeze(0), mems[:-1]])
    resets = _step(prev - threshold)
    z = pres - threshold
    s = _step(z)
    spk = s * graded
    do_reset = spk / graded - resets
    g_spk_in = grad_spk if grad_spk is not None else torch.zeros_like(mems)
    steps = mems.shape[0]
    a = b * (1 - resets) if cfg.reset == "zero" else b.expand_as(mems)
    nu = torch.empty_like(mems)
    grad_thr = torch.zeros_like(mems) if ctx.needs_input_grad[3] else None
    grad_g = torch.zeros_like(mems) if ctx.needs_input_grad[4] else None
    carry = torch.zeros_like(mems[0])
    for t in range(steps - 1, -1, -1):
        mu = g_out[t] + carry
        if cfg.reset == "subtract":
            d_spk = g_spk_in[t] - mu * threshold / graded
            d_pre = mu
        else:
            d_spk = g_spk_in[t] - mu * pres[t] / graded
            d_pre = mu * (1 - do_reset[t])
        gz = spike_gradient(cfg.surrogate, z[t], d_spk * graded)
        nu[t] = d_pre + gz
        carry = a[t] * nu[t]
        if grad_thr is not None:
            grad_thr[t] = -gz - (mu * do_reset[t] if cfg.reset == "subtract" else 0) - (
                nu[t] * resets[t] if cfg.reset == "subtract" else 0)
        if grad_g is not None:  # the reset uses spk/g = H exactly: only the spike output depends on g
            grad_g[t] = g_spk_in[t] * s[t]
    grad_x = nu if ctx.needs_input_grad[0] else None
    a0 = b * (1 - _step(mem0 - threshold)) if cfg.reset == "zero" else b
    grad_mem0 = a0 * nu[0] if ctx.needs_input_grad[1] else None
    grad_beta = None
    if ctx.needs_input_grad[2]:
        leak = prev * (1 - resets) if cfg.reset == "zero" else prev
        inside = ((beta >= 0) & (beta <= 1)).to(beta.dtype)
        grad_beta = _reduce(nu * leak, beta) * inside
    return (grad_x, grad_mem0, grad_beta, None if grad_thr is None else _reduce(grad_thr, threshold),
            None if grad_g is None else _reduce(grad_g, graded), None)


def leaky_scan(x: Tensor, mem0: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor,
               cfg: ScanConfig) -> tuple[Tensor, Tensor]:
    """Run Leaky (IF with ``beta=1``; LI with ``cfg.spiking=False``) over ``x`` of shape (T, B, ...).

    Returns ``(spk, mem)`` sequences (``spk`` is empty for LI). With ``cfg.scratch_input`` the
    caller hands ``x`` over: the membranes are written into it, ``mem`` comes back empty, and
    the backward writes the input gradient over them (unless the graph is kept for another
    backward or beta needs them). Under ``torch.compile`` / ``torch.export`` / ``torch.func`` it runs
    as the custom op ``snngraph::leaky_scan`` instead (``scan_ops``: same values, the
    buffers reused where the traced graph allows).
    """
    from snngraph.runtimes.torch import scan_ops

    if scan_ops.tracing():
        return scan_ops.leaky_scan_op(x, mem0, beta, threshold, graded, cfg)
    return _LeakyScan.apply(x, mem0, beta, threshold, graded, cfg)
