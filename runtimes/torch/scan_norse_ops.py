"""The fused Norse scan as a pair of registered custom operators, for any implementation of it:
:func:`register_norse`, and the torch scan's ops ``snngraph::norse_lif_scan`` and
``snngraph::norse_lif_scan_backward`` (the Triton kernels' are registered in ``triton/ops.py``).

As :mod:`~snngraph.runtimes.torch.scan_registry` does for the snnTorch scans: the eager forward and backward
code (here ``scan_norse._NorseLifScan``) runs inside the ops, so compiled and eager values are the same. The
forward may write its currents over a private input (``scratch``, then saved as the op's input); where the
saved currents are the backward's alone, ``*_backward_over_currents`` writes the input gradient over them (a
declared mutation). Arguments are primitive: the surrogate as its name and a list of its parameter values
(``"none"``: ``LICell``), the recurrence as ``""``, ``"dense"`` or ``"diagonal"``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from snngraph.runtimes.torch.scan_norse import NorseLifConfig, _NorseLifScan
from snngraph.runtimes.torch.scan_ops import _Ctx, _surrogate
from snngraph.runtimes.torch.scan_registry import (
    _encode,
    _fake_grads,
    _grads,
    _into,
    _may_overwrite_saved,
    _scratch,
    _untangle,
    backward_call,
    with_autograd,
)


def _likes(charged, u0, spk0, *rest) -> tuple[Tensor | None, ...]:
    """A tensor shaped as each input whose gradient the backward returns (``i0`` is shaped as ``u0``)."""
    return (charged, u0, u0, spk0, *rest)


def register_norse(name: str, forward: Callable, backward: Callable, call_backward: Callable = backward_call,
                   in_place: bool = False) -> Callable[..., tuple[Tensor, Tensor, Tensor]]:
    """Norse's LIF / LI / LIFRecurrent / LIFBox scan: ``forward`` gives ``(spk, v, i, integrated membranes,
    currents)`` (the currents empty where they are ``x``: a box cell's, or a scratch scan's written over it),
    with a last argument ``scratch`` (honoured if ``in_place``, see ``scan_registry._scratch``); ``backward``
    the gradients of ``(x, u0, i0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias)``, with
    a last argument ``over``: ``x``'s may be written over ``currents``."""

    @torch.library.custom_op(f"snngraph::{name}", mutates_args=())
    def op(x: Tensor, u0: Tensor, i0: Tensor, spk0: Tensor | None, tau_syn_inv: Tensor, tau_mem_inv: Tensor,
           v_leak: Tensor, v_th: Tensor, v_reset: Tensor, weight: Tensor | None, bias: Tensor | None, dt: float,
           surrogate: str, params: list[float], recurrent: str, box: bool, subtract: bool,
           scratch: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        return forward(x, u0, i0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias, dt, surrogate,
                       params, recurrent, box, subtract, scratch)

    @op.register_fake
    def _(x, u0, i0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias, dt, surrogate, params,
          recurrent, box, subtract, scratch):
        def sequence(empty: bool) -> Tensor:
            return x.new_empty(0) if empty else torch.empty_like(x)

        return (sequence(surrogate == "none"), sequence(scratch), sequence(scratch or box), torch.empty_like(x),
                sequence(scratch or box))

    @torch.library.custom_op(f"snngraph::{name}_backward", mutates_args=())
    def backward_op(g_spk: Tensor | None, g_v: Tensor | None, g_i: Tensor | None, u0: Tensor, spk0: Tensor | None,
                    tau_syn_inv: Tensor, tau_mem_inv: Tensor, v_leak: Tensor, v_th: Tensor, v_reset: Tensor,
                    weight: Tensor | None, bias: Tensor | None, charged: Tensor, currents: Tensor, dt: float,
                    surrogate: str, params: list[float], recurrent: str, box: bool, subtract: bool,
                    needs: list[bool]) -> list[Tensor]:
        grads = backward(g_spk, g_v, g_i, u0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias,
                         charged, currents, dt, surrogate, params, recurrent, box, subtract, needs, False)
        return _grads(grads, needs, _likes(charged, u0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset,
                                           weight, bias))

    @backward_op.register_fake
    def _(g_spk, g_v, g_i, u0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias, charged,
          currents, dt, surrogate, params, recurrent, box, subtract, needs):
        return _fake_grads(needs, _likes(charged, u0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight,
                                         bias))

    @torch.library.custom_op(f"snngraph::{name}_backward_over_currents", mutates_args=("currents",))
    def backward_over_currents(g_spk: Tensor | None, g_v: Tensor | None, g_i: Tensor | None, u0: Tensor,
                               spk0: Tensor | None, tau_syn_inv: Tensor, tau_mem_inv: Tensor, v_leak: Tensor,
                               v_th: Tensor, v_reset: Tensor, weight: Tensor | None, bias: Tensor | None,
                               charged: Tensor, currents: Tensor, dt: float, surrogate: str, params: list[float],
                               recurrent: str, box: bool, subtract: bool,
                               needs: list[bool]) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor,
                                                           Tensor, Tensor, Tensor]:
        """The backward with ``x``'s gradient written over a scratch scan's ``currents``; returns the gradients
        of the other inputs (a tuple: a list output of a mutating op cannot be functionalised)."""
        grads = backward(g_spk, g_v, g_i, u0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias,
                         charged, currents, dt, surrogate, params, recurrent, box, subtract, needs, True)
        _into(currents, grads[0])
        return tuple(_grads(grads[1:], needs[1:], _likes(charged, u0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th,
                                                         v_reset, weight, bias)[1:]))

    @backward_over_currents.register_fake
    def _(g_spk, g_v, g_i, u0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias, charged,
          currents, dt, surrogate, params, recurrent, box, subtract, needs):
        return tuple(_fake_grads(needs[1:], _likes(charged, u0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th,
                                                   v_reset, weight, bias)[1:]))

    def setup(ctx, inputs, output):
        ctx.set_materialize_grads(False)  # unused outputs get None, not AOTAutograd's zeros
        x, u0, _, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias, *options = inputs
        *ctx.options, ctx.scratch = options
        box = ctx.options[4]
        ctx.save_for_backward(u0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias, output[3],
                              x if ctx.scratch or box else output[4])

    def autograd_backward(ctx, g_spk, g_v, g_i, g_charged, g_currents):
        needs = list(ctx.needs_input_grad[:11])
        needs[8] = needs[8] and not ctx.options[5]  # (a box cell's "subtract" does not read v_reset)
        needs[10] = needs[10] and ctx.saved_tensors[8] is not None
        if ctx.scratch and needs[0] and _may_overwrite_saved():  # x's gradient goes over the currents
            saved = ctx.saved_tensors  # (unpacked once: the op bumps the currents' version)
            grads = call_backward(backward_over_currents, g_spk, g_v, g_i, *saved, *ctx.options, needs)
            return (saved[10], *_untangle(grads, needs[1:]), None, None, None, None, None, None, None)
        grads = call_backward(backward_op, g_spk, g_v, g_i, *ctx.saved_tensors, *ctx.options, needs)
        return (*_untangle(grads, needs), None, None, None, None, None, None, None)

    run = with_autograd(op, setup, autograd_backward)

    def scan(x: Tensor, u0: Tensor, i0: Tensor, tau_syn_inv: Tensor, tau_mem_inv: Tensor, v_leak: Tensor,
             v_th: Tensor, v_reset: Tensor, cfg: NorseLifConfig, spk0: Tensor | None = None,
             weight: Tensor | None = None, bias: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        surrogate, params = _encode(cfg.surrogate)
        spk, v, i, _, _ = run(x, u0, i0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias,
                              cfg.dt, surrogate, params, cfg.recurrent or "", cfg.box, cfg.subtract,
                              in_place and _scratch(cfg.scratch_input))
        return spk, v, i

    return scan


def _config(dt: float, surrogate: str, params: list[float], recurrent: str, box: bool, subtract: bool,
            scratch: bool) -> NorseLifConfig:
    return NorseLifConfig(dt, _surrogate(surrogate, tuple(params)), scratch, recurrent or None, box, subtract)


def _forward(x, u0, i0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias, dt, surrogate, params,
             recurrent, box, subtract, scratch):
    """``(spk, v, i, integrated membranes, currents)``: the forward of ``scan_norse._NorseLifScan``."""
    cfg = _config(dt, surrogate, params, recurrent, box, subtract, scratch)
    ctx = _Ctx(cfg)
    with torch.no_grad():
        spk, v, i = _NorseLifScan.forward(ctx, x, u0, i0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset,
                                          weight, bias, cfg)
    charged, currents = ctx.saved_tensors[-2:]
    return spk, v, i, charged, x.new_empty(0) if currents is x else currents


def _backward(g_spk, g_v, g_i, u0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias, charged,
              currents, dt, surrogate, params, recurrent, box, subtract, needs, over):
    """The backward of ``scan_norse._NorseLifScan`` (with ``over``, as a scratch scan's: ``x``'s gradient over the
    currents where the taus' gradients do not read them after the loop)."""
    cfg = _config(dt, surrogate, params, recurrent, box, subtract, over)
    saved = (u0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias, charged, currents)
    return _NorseLifScan.backward(_Ctx(cfg, (*needs, False), saved), g_spk, g_v, g_i)[:11]


norse_lif_scan_op = register_norse("norse_lif_scan", _forward, _backward, in_place=True)
"""``scan_norse.norse_lif_scan`` as the custom op."""
