"""The fused Norse scan as the custom ops ``snngraph::norse_lif_scan`` and ``snngraph::norse_lif_scan_backward``,
for ``torch.compile``, ``torch.export`` and ``torch.func``.

As :mod:`~snngraph.runtimes.torch.scan_ops` does for the snnTorch scans: the same forward and backward code
as the eager ``autograd.Function`` (``scan_norse._NorseLifScan``) runs inside the ops, so compiled and eager
values are the same. The forward may write its currents over a private input (``scratch``, then saved as
the op's input); the backward never overwrites what it saved. Arguments are primitive: the surrogate as
its name and a list of its parameter values (``"none"``: ``LICell``), the recurrence as ``""``,
``"dense"`` or ``"diagonal"``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from snngraph.runtimes.torch.scan_norse import NorseLifConfig, _NorseLifScan
from snngraph.runtimes.torch.scan_ops import _Ctx, _surrogate
from snngraph.runtimes.torch.scan_registry import (
    _encode,
    _fake_grads,
    _grads,
    _scratch,
    _untangle,
    backward_call,
    with_autograd,
)

Options = tuple  # (dt, surrogate, params, recurrent, box, subtract)


def _config(dt: float, surrogate: str, params: list[float], recurrent: str, box: bool, subtract: bool,
            scratch: bool) -> NorseLifConfig:
    return NorseLifConfig(dt, _surrogate(surrogate, tuple(params)), scratch, recurrent or None, box, subtract)


@torch.library.custom_op("snngraph::norse_lif_scan", mutates_args=())
def _scan_op(x: Tensor, u0: Tensor, i0: Tensor, spk0: Tensor | None, tau_syn_inv: Tensor, tau_mem_inv: Tensor,
             v_leak: Tensor, v_th: Tensor, v_reset: Tensor, weight: Tensor | None, bias: Tensor | None, dt: float,
             surrogate: str, params: list[float], recurrent: str, box: bool, subtract: bool,
             scratch: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``(spk, v, i, integrated membranes, currents)``; the currents empty where they are ``x`` itself (a
    box cell's, or a scratch scan's written over it)."""
    cfg = _config(dt, surrogate, params, recurrent, box, subtract, scratch)
    ctx = _Ctx(cfg)
    with torch.no_grad():
        spk, v, i = _NorseLifScan.forward(ctx, x, u0, i0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset,
                                          weight, bias, cfg)
    charged, currents = ctx.saved_tensors[-2:]
    return spk, v, i, charged, x.new_empty(0) if currents is x else currents


@_scan_op.register_fake
def _(x, u0, i0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias, dt, surrogate, params, recurrent,
      box, subtract, scratch):
    def sequence(empty: bool) -> Tensor:
        return x.new_empty(0) if empty else torch.empty_like(x)

    return (sequence(surrogate == "none"), sequence(scratch), sequence(scratch or box), torch.empty_like(x),
            sequence(scratch or box))


@torch.library.custom_op("snngraph::norse_lif_scan_backward", mutates_args=())
def _backward_op(g_spk: Tensor | None, g_v: Tensor | None, g_i: Tensor | None, u0: Tensor, spk0: Tensor | None,
                 tau_syn_inv: Tensor, tau_mem_inv: Tensor, v_leak: Tensor, v_th: Tensor, v_reset: Tensor,
                 weight: Tensor | None, bias: Tensor | None, charged: Tensor, currents: Tensor, dt: float,
                 surrogate: str, params: list[float], recurrent: str, box: bool, subtract: bool,
                 needs: list[bool]) -> list[Tensor]:
    """The gradients of ``(x, u0, i0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias)``
    (empty where not needed)."""
    cfg = _config(dt, surrogate, params, recurrent, box, subtract, False)  # (never over the saved currents)
    saved = (u0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias, charged, currents)
    grads = _NorseLifScan.backward(_Ctx(cfg, (*needs, False), saved), g_spk, g_v, g_i)[:11]
    return _grads(grads, needs, _likes(charged, u0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight,
                                       bias))


@_backward_op.register_fake
def _(g_spk, g_v, g_i, u0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias, charged, currents,
      dt, surrogate, params, recurrent, box, subtract, needs):
    return _fake_grads(needs, _likes(charged, u0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight,
                                     bias))


def _likes(charged, u0, spk0, *rest) -> tuple[Tensor | None, ...]:
    """A tensor shaped as each input whose gradient the backward returns (``i0`` is shaped as ``u0``)."""
    return (charged, u0, u0, spk0, *rest)


def _setup(ctx, inputs, output):
    ctx.set_materialize_grads(False)  # unused outputs get None, not AOTAutograd's zeros
    x, u0, _, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias, *options = inputs
    *ctx.options, scratch = options
    box = ctx.options[4]
    ctx.save_for_backward(u0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias, output[3],
                          x if scratch or box else output[4])


def _backward(ctx, g_spk, g_v, g_i, g_charged, g_currents):
    needs = list(ctx.needs_input_grad[:11])
    needs[8] = needs[8] and not ctx.options[5]  # (a box cell's "subtract" does not read v_reset)
    needs[10] = needs[10] and ctx.saved_tensors[8] is not None
    grads = backward_call(_backward_op, g_spk, g_v, g_i, *ctx.saved_tensors, *ctx.options, needs)
    return (*_untangle(grads, needs), None, None, None, None, None, None, None)


_run = with_autograd(_scan_op, _setup, _backward)


def norse_lif_scan_op(x: Tensor, u0: Tensor, i0: Tensor, tau_syn_inv: Tensor, tau_mem_inv: Tensor, v_leak: Tensor,
                      v_th: Tensor, v_reset: Tensor, cfg: NorseLifConfig, spk0: Tensor | None = None,
                      weight: Tensor | None = None, bias: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``scan_norse.norse_lif_scan`` as the custom op."""
    surrogate, params = _encode(cfg.surrogate)
    spk, v, i, _, _ = _run(x, u0, i0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias, cfg.dt,
                           surrogate, params, cfg.recurrent or "", cfg.box, cfg.subtract, _scratch(cfg.scratch_input))
    return spk, v, i
