"""The LSTM scan (``scan_lstm``) as the custom operators ``snngraph::lstm_scan`` and
``snngraph::lstm_scan_backward``, for ``torch.compile``, ``torch.export`` and ``torch.func``.

As the other scans' ops (``scan_ops``): the autograd function's forward and backward run inside
them unchanged but without overwriting anything, each op is opaque to dynamo and has a fake
implementation for shapes, and the config travels as primitive arguments. The forward op also
returns the saved gates, which the backward op reads.
"""

from __future__ import annotations

import torch
from torch import Tensor

from snngraph.runtimes.torch.scan_lstm import LstmScanConfig, _LstmScan, _pool
from snngraph.runtimes.torch.scan_ops import _Ctx, _surrogate
from snngraph.runtimes.torch.scan_registry import (
    _encode,
    _fake_grads,
    _grads,
    _untangle,
    backward_call,
    with_autograd,
)


def _cfg(reset: str, surrogate: str, params: list[float], cell: str, order: str, padding: list[int], pool: str,
         pool_size: list[int]) -> LstmScanConfig:
    return LstmScanConfig(reset, _surrogate(surrogate, tuple(params)), cell, order, (padding[0], padding[1]), pool,
                          (pool_size[0], pool_size[1]))


@torch.library.custom_op("snngraph::lstm_scan", mutates_args=())
def _lstm_op(z: Tensor, syn0: Tensor, mem0: Tensor, threshold: Tensor, graded: Tensor, weight: Tensor,
             bias: Tensor | None, reset: str, surrogate: str, params: list[float], cell: str, order: str,
             padding: list[int], pool: str, pool_size: list[int]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(spk, syn, mem, gates)``: the forward of ``scan_lstm._LstmScan``."""
    ctx = _Ctx(_cfg(reset, surrogate, params, cell, order, padding, pool, pool_size))
    with torch.no_grad():
        spk, syn, mem = _LstmScan.forward(ctx, z, syn0, mem0, threshold, graded, weight, bias, ctx.cfg)
    return spk, syn, mem, ctx.saved_tensors[6]


@_lstm_op.register_fake
def _(z, syn0, mem0, threshold, graded, weight, bias, reset, surrogate, params, cell, order, padding, pool,
      pool_size):
    cfg = _cfg(reset, surrogate, params, cell, order, padding, pool, pool_size)
    state = z.new_empty((z.shape[0], *mem0.shape))
    spk = z.new_empty((z.shape[0], *_pool(mem0, cfg).shape))
    return spk, state, torch.empty_like(state), torch.empty_like(z)


@torch.library.custom_op("snngraph::lstm_scan_backward", mutates_args=())
def _lstm_backward_op(grad_spk: Tensor | None, grad_syn: Tensor | None, grad_mem: Tensor | None, syn0: Tensor,
                      mem0: Tensor, threshold: Tensor, graded: Tensor, weight: Tensor, bias: Tensor | None,
                      gates: Tensor, syns: Tensor, mems: Tensor, reset: str, surrogate: str, params: list[float],
                      cell: str, order: str, padding: list[int], pool: str, pool_size: list[int],
                      needs: list[bool]) -> list[Tensor]:
    """The gradients of ``(z, syn0, mem0, threshold, graded, weight, bias)`` (empty where not needed)."""
    cfg = _cfg(reset, surrogate, params, cell, order, padding, pool, pool_size)
    saved = (syn0, mem0, threshold, graded, weight, bias, gates, syns, mems)  # (a _Ctx owns nothing: kept)
    grads = _LstmScan.backward(_Ctx(cfg, (*needs, False), saved), grad_spk, grad_syn, grad_mem)[:7]
    return _grads(grads, needs, (gates, syn0, mem0, threshold, graded, weight, bias))


@_lstm_backward_op.register_fake
def _(grad_spk, grad_syn, grad_mem, syn0, mem0, threshold, graded, weight, bias, gates, syns, mems, reset, surrogate,
      params, cell, order, padding, pool, pool_size, needs):
    return _fake_grads(needs, (gates, syn0, mem0, threshold, graded, weight, bias))


def _setup(ctx, inputs, output):
    ctx.set_materialize_grads(False)  # an unused output gets None, not zeros (AOTAutograd too)
    _, syn0, mem0, threshold, graded, weight, bias, *ctx.options = inputs
    ctx.has_bias = bias is not None
    ctx.save_for_backward(syn0, mem0, threshold, graded, weight, bias, output[3], output[1], output[2])


def _backward(ctx, grad_spk, grad_syn, grad_mem, grad_gates):
    needs = [*ctx.needs_input_grad[:6], ctx.has_bias and ctx.needs_input_grad[6]]
    grads = backward_call(_lstm_backward_op, grad_spk, grad_syn, grad_mem, *ctx.saved_tensors, *ctx.options, needs)
    return (*_untangle(grads, needs), *(None,) * 8)


_run = with_autograd(_lstm_op, _setup, _backward)


def lstm_scan_op(z: Tensor, syn0: Tensor, mem0: Tensor, threshold: Tensor, graded: Tensor, weight: Tensor,
                 bias: Tensor | None, cfg: LstmScanConfig) -> tuple[Tensor, Tensor, Tensor]:
    """``scan_lstm.lstm_scan`` as the custom op (``cfg.scratch_input`` ignored)."""
    name, params = _encode(cfg.surrogate)
    spk, syn, mem, _ = _run(z, syn0, mem0, threshold, graded, weight, bias, cfg.reset, name, params, cfg.cell,
                            cfg.order, list(cfg.padding), cfg.pool, list(cfg.pool_size))
    return spk, syn, mem
