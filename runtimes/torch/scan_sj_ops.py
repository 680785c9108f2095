"""The fused SpikingJelly IF / LIF scan as registered custom operators, for any implementation of it:
:func:`register_sj` registers ``snngraph::<name>``, ``snngraph::<name>_backward`` and
``snngraph::<name>_backward_over_charged`` around an implementation's forward and backward, as
``scan_registry.register_leaky`` does for the snnTorch scans. Registered here: the torch scan
(``snngraph::sj_scan``, whose ops run ``scan_sj._SjScan``'s forward and backward, so compiled and eager
values are the same) for ``torch.compile``, ``torch.export`` and ``torch.func``; ``triton/ops.py`` registers
the Triton kernels (``snngraph::triton_sj_scan``, eager too).

The forward may write the charged membranes over a private contiguous input (``scratch``; the op then
saves its input), and the backward the input gradient over them where it may (the ``_over_charged`` op,
as ``scan_registry``'s ``*_backward_over_mems``). The parameters are constants (SpikingJelly's are
Python floats): only ``x`` and the initial state have gradients.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

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
from snngraph.runtimes.torch.scan_sj import SjConfig, _SjScan

SjScan = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor, SjConfig], tuple[Tensor, Tensor]]


def register_sj(name: str, forward: Callable, backward: Callable, call_backward: Callable = backward_call) -> SjScan:
    """The SpikingJelly IF / LIF scan: ``forward(x, u0, tau, threshold, v_reset, lif, soft, detach, decay_input,
    surrogate, params, scratch)`` gives ``(spk, v, charged membranes)`` (``v`` and the membranes empty with
    ``scratch``: they went over ``x``), ``backward(g_spk, g_v, charged, u0, tau, threshold, v_reset, lif, soft,
    detach, decay_input, surrogate, params, over)`` the gradients of ``(x, u0)`` (``over``: ``x``'s may be
    written over ``charged``). Returns the scan on an :class:`~snngraph.runtimes.torch.scan_sj.SjConfig`
    (scratch only over a contiguous input: a copy would not be it)."""

    @torch.library.custom_op(f"snngraph::{name}", mutates_args=())
    def op(x: Tensor, u0: Tensor, tau: Tensor, threshold: Tensor, v_reset: Tensor, lif: bool, soft: bool,
           detach: bool, decay_input: bool, surrogate: str, params: list[float],
           scratch: bool) -> tuple[Tensor, Tensor, Tensor]:
        return forward(x, u0, tau, threshold, v_reset, lif, soft, detach, decay_input, surrogate, params, scratch)

    @op.register_fake
    def _(x, u0, tau, threshold, v_reset, lif, soft, detach, decay_input, surrogate, params, scratch):
        def sequence(empty: bool) -> Tensor:  # (the scans make their outputs contiguous)
            return x.new_empty(0) if empty else torch.empty_like(x, memory_format=torch.contiguous_format)

        return sequence(False), sequence(scratch), sequence(scratch)

    @torch.library.custom_op(f"snngraph::{name}_backward", mutates_args=())
    def backward_op(g_spk: Tensor | None, g_v: Tensor | None, charged: Tensor, u0: Tensor, tau: Tensor,
                    threshold: Tensor, v_reset: Tensor, lif: bool, soft: bool, detach: bool, decay_input: bool,
                    surrogate: str, params: list[float], needs: list[bool]) -> list[Tensor]:
        """The gradients of ``(x, u0)`` (empty where not needed)."""
        grads = backward(g_spk, g_v, charged, u0, tau, threshold, v_reset, lif, soft, detach, decay_input,
                         surrogate, params, False)
        return _grads(grads, needs, (charged, u0))

    @backward_op.register_fake
    def _(g_spk, g_v, charged, u0, tau, threshold, v_reset, lif, soft, detach, decay_input, surrogate, params, needs):
        return _fake_grads(needs, (charged, u0))

    @torch.library.custom_op(f"snngraph::{name}_backward_over_charged", mutates_args=("charged",))
    def backward_over_op(g_spk: Tensor | None, g_v: Tensor | None, charged: Tensor, u0: Tensor, tau: Tensor,
                         threshold: Tensor, v_reset: Tensor, lif: bool, soft: bool, detach: bool, decay_input: bool,
                         surrogate: str, params: list[float], needs: list[bool]) -> Tensor:
        """The backward with ``x``'s gradient written over a scratch scan's charged membranes (its input,
        saved); returns the gradient of ``u0`` (empty where not needed)."""
        gx, g_u0 = backward(g_spk, g_v, charged, u0, tau, threshold, v_reset, lif, soft, detach, decay_input,
                            surrogate, params, True)
        _into(charged, gx)
        return g_u0 if needs[1] else u0.new_empty(0)

    @backward_over_op.register_fake
    def _(g_spk, g_v, charged, u0, tau, threshold, v_reset, lif, soft, detach, decay_input, surrogate, params, needs):
        return torch.empty_like(u0) if needs[1] else u0.new_empty(0)

    def setup(ctx, inputs, output):
        ctx.set_materialize_grads(False)  # unused outputs get None, not AOTAutograd's zeros
        x, u0, tau, threshold, v_reset, *options = inputs
        *ctx.options, ctx.scratch = options
        ctx.save_for_backward(x if ctx.scratch else output[2], u0, tau, threshold, v_reset)

    def autograd_backward(ctx, g_spk, g_v, g_charged):
        needs = list(ctx.needs_input_grad[:2])
        if g_spk is None and g_v is None:
            return (None,) * 12
        if ctx.scratch and needs[0] and _may_overwrite_saved():  # the input gradient goes over the saved membranes
            saved = ctx.saved_tensors  # (unpacked once: the op bumps the membranes' version)
            g_u0 = call_backward(backward_over_op, g_spk, g_v, *saved, *ctx.options, needs)
            return (saved[0], g_u0 if needs[1] else None, *(None,) * 10)
        grads = call_backward(backward_op, g_spk, g_v, *ctx.saved_tensors, *ctx.options, needs)
        return (*_untangle(grads, needs), *(None,) * 10)

    run = with_autograd(op, setup, autograd_backward)

    def scan(x: Tensor, u0: Tensor, tau: Tensor, threshold: Tensor, v_reset: Tensor,
             cfg: SjConfig) -> tuple[Tensor, Tensor]:
        surrogate, params = _encode(cfg.surrogate)
        scratch = _scratch(cfg.scratch_input) and x.is_contiguous()
        spk, v, _ = run(x, u0, tau, threshold, v_reset, cfg.lif, cfg.soft, cfg.detach, cfg.decay_input, surrogate,
                        params, scratch)
        return spk, v

    return scan


def _config(lif: bool, soft: bool, detach: bool, decay_input: bool, surrogate: str, params: list[float],
            scratch: bool) -> SjConfig:
    return SjConfig(lif, soft, detach, decay_input, _surrogate(surrogate, tuple(params)), scratch)


def _torch_forward(x, u0, tau, threshold, v_reset, lif, soft, detach, decay_input, surrogate, params, scratch):
    cfg = _config(lif, soft, detach, decay_input, surrogate, params, scratch)
    ctx = _Ctx(cfg)
    with torch.no_grad():
        spk, v = _SjScan.forward(ctx, x, u0, tau, threshold, v_reset, cfg)
    charged = ctx.saved_tensors[0]
    return spk, v, x.new_empty(0) if scratch else charged.view_as(x)


def _torch_backward(g_spk, g_v, charged, u0, tau, threshold, v_reset, lif, soft, detach, decay_input, surrogate,
                    params, over):
    cfg = _config(lif, soft, detach, decay_input, surrogate, params, over)
    fire_at = threshold if soft else threshold - v_reset
    ctx = _Ctx(cfg, (), (charged if over else charged.contiguous(), tau, threshold, fire_at))
    ctx.cfg, ctx.u_shape, ctx.x_shape = cfg, u0.shape, charged.shape
    return _SjScan.backward(ctx, g_spk, g_v)[:2]


sj_scan_op = register_sj("sj_scan", _torch_forward, _torch_backward)
"""``scan_sj.sj_scan`` as the custom op."""
