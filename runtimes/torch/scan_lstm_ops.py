"""The LSTM scan (``scan_lstm``) as registered custom operators, for any implementation of it:
:func:`register_lstm` registers ``snngraph::<name>`` and ``snngraph::<name>_backward`` (and, for an
implementation that honours ``scratch``, ``snngraph::<name>_backward_over_gates``) around an
implementation's forward and backward, as ``scan_registry.register_leaky`` does for the Leaky scans.
Registered here: the torch scan (``snngraph::lstm_scan``: ``scan_lstm._LstmScan``'s forward and backward,
so compiled and eager values are the same, nothing overwritten) for ``torch.compile``, ``torch.export``
and ``torch.func``; ``triton/ops.py`` registers the Triton kernels (``snngraph::triton_lstm_scan``, eager too).

Each op is opaque to dynamo and has a fake implementation for shapes; the config travels as primitive
arguments. The forward op also returns the saved gates (empty with ``scratch``: they went over ``z``,
which is then saved), which the backward op reads.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from snngraph.runtimes.torch.scan_lstm import LstmScanConfig, _LstmScan, _pool
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

LstmScan = Callable[..., tuple[Tensor, Tensor, Tensor]]


def _cfg(reset: str, surrogate: str, params: list[float], cell: str, order: str, padding: list[int], pool: str,
         pool_size: list[int], scratch: bool = False) -> LstmScanConfig:
    return LstmScanConfig(reset, _surrogate(surrogate, tuple(params)), cell, order, (padding[0], padding[1]), pool,
                          (pool_size[0], pool_size[1]), scratch)


def register_lstm(name: str, forward: Callable, backward: Callable, call_backward: Callable = backward_call,
                  in_place: bool = False) -> LstmScan:
    """The LSTM scan: ``forward(z, syn0, mem0, threshold, graded, weight, bias, *options, scratch)`` gives
    ``(spk, syn, mem, gates)`` (``gates`` empty with ``scratch``: written over ``z``), ``backward(grad_spk,
    grad_syn, grad_mem, syn0, mem0, threshold, graded, weight, bias, gates, syns, mems, *options, needs, over)``
    the gradients of ``(z, syn0, mem0, threshold, graded, weight, bias)`` (``over``: ``z``'s may go over
    ``gates``); ``options`` are ``(reset, surrogate, params, cell, order, padding, pool, pool_size)``.
    ``in_place``: the implementation honours ``scratch`` (``scan_registry._scratch``)."""

    @torch.library.custom_op(f"snngraph::{name}", mutates_args=())
    def op(z: Tensor, syn0: Tensor, mem0: Tensor, threshold: Tensor, graded: Tensor, weight: Tensor,
           bias: Tensor | None, reset: str, surrogate: str, params: list[float], cell: str, order: str,
           padding: list[int], pool: str, pool_size: list[int],
           scratch: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return forward(z, syn0, mem0, threshold, graded, weight, bias, reset, surrogate, params, cell, order, padding,
                       pool, pool_size, scratch)

    @op.register_fake
    def _(z, syn0, mem0, threshold, graded, weight, bias, reset, surrogate, params, cell, order, padding, pool,
          pool_size, scratch):
        cfg = _cfg(reset, surrogate, params, cell, order, padding, pool, pool_size)
        state = z.new_empty((z.shape[0], *mem0.shape))
        spk = z.new_empty((z.shape[0], *_pool(mem0, cfg).shape))
        return spk, state, torch.empty_like(state), z.new_empty(0) if scratch else torch.empty_like(z)

    @torch.library.custom_op(f"snngraph::{name}_backward", mutates_args=())
    def backward_op(grad_spk: Tensor | None, grad_syn: Tensor | None, grad_mem: Tensor | None, syn0: Tensor,
                    mem0: Tensor, threshold: Tensor, graded: Tensor, weight: Tensor, bias: Tensor | None,
                    gates: Tensor, syns: Tensor, mems: Tensor, reset: str, surrogate: str, params: list[float],
                    cell: str, order: str, padding: list[int], pool: str, pool_size: list[int],
                    needs: list[bool]) -> list[Tensor]:
        """The gradients of ``(z, syn0, mem0, threshold, graded, weight, bias)`` (empty where not needed)."""
        grads = backward(grad_spk, grad_syn, grad_mem, syn0, mem0, threshold, graded, weight, bias, gates, syns,
                         mems, reset, surrogate, params, cell, order, padding, pool, pool_size, needs, False)
        return _grads(grads, needs, (gates, syn0, mem0, threshold, graded, weight, bias))

    @backward_op.register_fake
    def _(grad_spk, grad_syn, grad_mem, syn0, mem0, threshold, graded, weight, bias, gates, syns, mems, reset,
          surrogate, params, cell, order, padding, pool, pool_size, needs):
        return _fake_grads(needs, (gates, syn0, mem0, threshold, graded, weight, bias))

    @torch.library.custom_op(f"snngraph::{name}_backward_over_gates", mutates_args=("gates",))
    def backward_over_gates(grad_spk: Tensor | None, grad_syn: Tensor | None, grad_mem: Tensor | None,
                            syn0: Tensor, mem0: Tensor, threshold: Tensor, graded: Tensor, weight: Tensor,
                            bias: Tensor | None, gates: Tensor, syns: Tensor, mems: Tensor, reset: str,
                            surrogate: str, params: list[float], cell: str, order: str, padding: list[int],
                            pool: str, pool_size: list[int],
                            needs: list[bool]) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The backward with ``z``'s gradient written over a scratch scan's gates; returns the gradients of
        ``(syn0, mem0, threshold, graded, weight, bias)``."""
        grads = backward(grad_spk, grad_syn, grad_mem, syn0, mem0, threshold, graded, weight, bias, gates, syns,
                         mems, reset, surrogate, params, cell, order, padding, pool, pool_size, needs, True)
        _into(gates, grads[0])
        return tuple(_grads(grads[1:], needs[1:], (syn0, mem0, threshold, graded, weight, bias)))

    @backward_over_gates.register_fake
    def _(grad_spk, grad_syn, grad_mem, syn0, mem0, threshold, graded, weight, bias, gates, syns, mems, reset,
          surrogate, params, cell, order, padding, pool, pool_size, needs):
        return tuple(_fake_grads(needs[1:], (syn0, mem0, threshold, graded, weight, bias)))

    def setup(ctx, inputs, output):
        ctx.set_materialize_grads(False)  # an unused output gets None, not zeros (AOTAutograd too)
        z, syn0, mem0, threshold, graded, weight, bias, *ctx.options = inputs
        ctx.scratch = ctx.options.pop()
        ctx.has_bias = bias is not None
        gates = z if ctx.scratch else output[3]
        ctx.save_for_backward(syn0, mem0, threshold, graded, weight, bias, gates, output[1], output[2])

    def autograd_backward(ctx, grad_spk, grad_syn, grad_mem, grad_gates):
        needs = [*ctx.needs_input_grad[:6], ctx.has_bias and ctx.needs_input_grad[6]]
        if ctx.scratch and needs[0] and _may_overwrite_saved():  # z's gradient goes over the saved gates
            saved = ctx.saved_tensors  # (unpacked once: the op bumps the gates' version)
            grads = call_backward(backward_over_gates, grad_spk, grad_syn, grad_mem, *saved, *ctx.options, needs)
            return (saved[6], *_untangle(grads, needs[1:]), *(None,) * 9)
        grads = call_backward(backward_op, grad_spk, grad_syn, grad_mem, *ctx.saved_tensors, *ctx.options, needs)
        return (*_untangle(grads, needs), *(None,) * 9)

    run = with_autograd(op, setup, autograd_backward)

    def scan(z: Tensor, syn0: Tensor, mem0: Tensor, threshold: Tensor, graded: Tensor, weight: Tensor,
             bias: Tensor | None, cfg: LstmScanConfig) -> tuple[Tensor, Tensor, Tensor]:
        """``scan_lstm.lstm_scan`` as the op (scratch only over a contiguous ``z``: a copy would not be it)."""
        surrogate, params = _encode(cfg.surrogate)
        scratch = in_place and _scratch(cfg.scratch_input) and z.is_contiguous()
        spk, syn, mem, _ = run(z, syn0, mem0, threshold, graded, weight, bias, cfg.reset, surrogate, params, cfg.cell,
                               cfg.order, list(cfg.padding), cfg.pool, list(cfg.pool_size), scratch)
        return spk, syn, mem

    return scan


def _torch_forward(z, syn0, mem0, threshold, graded, weight, bias, reset, surrogate, params, cell, order, padding,
                   pool, pool_size, scratch):
    """The forward of ``scan_lstm._LstmScan`` (never scratch: the torch op is registered without ``in_place``)."""
    ctx = _Ctx(_cfg(reset, surrogate, params, cell, order, padding, pool, pool_size))
    with torch.no_grad():
        spk, syn, mem = _LstmScan.forward(ctx, z, syn0, mem0, threshold, graded, weight, bias, ctx.cfg)
    return spk, syn, mem, ctx.saved_tensors[6]


def _torch_backward(grad_spk, grad_syn, grad_mem, syn0, mem0, threshold, graded, weight, bias, gates, syns, mems,
                    reset, surrogate, params, cell, order, padding, pool, pool_size, needs, over):
    cfg = _cfg(reset, surrogate, params, cell, order, padding, pool, pool_size)
    saved = (syn0, mem0, threshold, graded, weight, bias, gates, syns, mems)  # (a _Ctx owns nothing: kept)
    return _LstmScan.backward(_Ctx(cfg, (*needs, False), saved), grad_spk, grad_syn, grad_mem)[:7]


lstm_scan_op = register_lstm("lstm_scan", _torch_forward, _torch_backward)
"""``scan_lstm.lstm_scan`` as the custom op."""
