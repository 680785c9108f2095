"""The Triton scans as registered custom operators (``snngraph::triton_*``), mirroring ``scan_ops.py``.

The same op runs eagerly and under ``torch.compile`` / ``torch.export`` (opaque to dynamo: one node,
a fake implementation for shapes, the backward op as its autograd formula) and under ``torch.func``
(through ``scan_ops._functorch_ready``). Arguments are primitive: resets and surrogates by name.
"""

from __future__ import annotations

import torch
from torch import Tensor

from snngraph.runtimes.torch.scan import ScanConfig
from snngraph.runtimes.torch.scan_ops import (
    _encode,
    _fake_grads,
    _functorch_ready,
    _grads,
    _in_functorch,
    _untangle,
)
from snngraph.runtimes.torch.scan_recurrent import RecurrentScanConfig
from snngraph.runtimes.torch.scan_synaptic import SynapticScanConfig
from snngraph.runtimes.torch.triton import leaky, recurrent, synaptic


def _plain(t: object) -> object:
    """A ``torch.func.grad`` tensor's plain value (a kernel reads memory; the gradients are first order)."""
    while isinstance(t, Tensor) and torch._C._functorch.is_gradtrackingtensor(t):
        t = torch._C._functorch.get_unwrapped(t)
    return t


def _backward_call(op, *args):
    """Call a backward op; inside ``torch.func.grad`` its Python function on the plain tensors (as
    ``scan_ops._backward_call``, which hands the transform's tensors over: a Triton launch needs memory)."""
    if not _in_functorch():
        return op(*args)
    from torch._functorch.pyfunctorch import temporarily_clear_interpreter_stack

    plain = [_plain(a) for a in args]
    with torch.no_grad(), temporarily_clear_interpreter_stack():  # tensors made inside stay plain too
        return op._init_fn(*plain)  # noqa: SLF001 (torch's own field)


def _reset_now(reset: str, reset_delay: bool, spiking: bool) -> bool:
    return spiking and not reset_delay and reset != "none"


# --- leaky / integrate-and-fire / leaky integrator ------------------------------------------------------------

@torch.library.custom_op("snngraph::triton_leaky_scan", mutates_args=())
def _leaky_op(x: Tensor, mem0: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor, reset: str,
              reset_delay: bool, surrogate: str, params: list[float], spiking: bool) -> tuple[Tensor, Tensor, Tensor]:
    """``(spk, mem, pre-reset membranes or empty)``."""
    return leaky.forward(x, mem0, beta, threshold, graded, reset, reset_delay, spiking)


@_leaky_op.register_fake
def _(x, mem0, beta, threshold, graded, reset, reset_delay, surrogate, params, spiking):
    spk = torch.empty_like(x) if spiking else x.new_empty(0)
    extra = torch.empty_like(x) if _reset_now(reset, reset_delay, spiking) else x.new_empty(0)
    return spk, torch.empty_like(x), extra


@torch.library.custom_op("snngraph::triton_leaky_scan_backward", mutates_args=())
def _leaky_backward_op(grad_spk: Tensor | None, grad_mem: Tensor | None, mem0: Tensor, beta: Tensor,
                       threshold: Tensor, graded: Tensor, mems: Tensor, extra: Tensor, reset: str, reset_delay: bool,
                       surrogate: str, params: list[float], spiking: bool, needs: list[bool]) -> list[Tensor]:
    """The gradients of ``(x, mem0, beta, threshold, graded)`` (empty where not needed)."""
    grads = leaky.backward(grad_spk, grad_mem, mem0, beta, threshold, graded, mems, extra, reset, reset_delay,
                           surrogate, params, spiking)
    return _grads(grads, needs, (mems, mem0, beta, threshold, graded))


@_leaky_backward_op.register_fake
def _(grad_spk, grad_mem, mem0, beta, threshold, graded, mems, extra, reset, reset_delay, surrogate, params,
      spiking, needs):
    return _fake_grads(needs, (mems, mem0, beta, threshold, graded))


def _leaky_setup(ctx, inputs, output):
    ctx.set_materialize_grads(False)
    _, mem0, beta, threshold, graded, *ctx.options = inputs
    ctx.save_for_backward(mem0, beta, threshold, graded, output[1], output[2])


def _leaky_backward(ctx, grad_spk, grad_mem, grad_extra):
    needs = list(ctx.needs_input_grad[:5])
    if not ctx.options[-1]:  # LI: no spikes
        grad_spk = None
    grads = _backward_call(_leaky_backward_op, grad_spk, grad_mem, *ctx.saved_tensors, *ctx.options, needs)
    return (*_untangle(grads, needs), None, None, None, None, None)


_leaky_op.register_autograd(_leaky_backward, setup_context=_leaky_setup)
_LeakyFunction = _functorch_ready(_leaky_op, _leaky_setup, _leaky_backward)


def leaky_scan(x: Tensor, mem0: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor,
               cfg: ScanConfig) -> tuple[Tensor, Tensor]:
    """``scan.leaky_scan`` as Triton kernels: ``(spk, mem)`` (``spk`` empty for LI)."""
    name, params = _encode(cfg.surrogate)
    op = _LeakyFunction.apply if _in_functorch() else _leaky_op
    spk, mem, _ = op(x, mem0, beta, threshold, graded, cfg.reset, cfg.reset_delay, name, params, cfg.spiking)
    return spk, mem


# --- recurrent leaky ------------------------------------------------------------------------------------------

@torch.library.custom_op("snngraph::triton_recurrent_leaky_scan", mutates_args=())
def _recurrent_op(x: Tensor, spk0: Tensor, mem0: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor,
                  weight: Tensor, bias: Tensor | None, reset: str, surrogate: str, params: list[float],
                  all_to_all: bool) -> tuple[Tensor, Tensor]:
    """``(spk, mem)``."""
    with torch.no_grad():
        return recurrent.forward(x, spk0, mem0, beta, threshold, graded, weight, bias, reset, all_to_all)


@_recurrent_op.register_fake
def _(x, spk0, mem0, beta, threshold, graded, weight, bias, reset, surrogate, params, all_to_all):
    return torch.empty_like(x), torch.empty_like(x)


@torch.library.custom_op("snngraph::triton_recurrent_leaky_scan_backward", mutates_args=())
def _recurrent_backward_op(grad_spk: Tensor | None, grad_mem: Tensor | None, spk0: Tensor, mem0: Tensor,
                           beta: Tensor, threshold: Tensor, graded: Tensor, weight: Tensor, bias: Tensor | None,
                           mems: Tensor, reset: str, surrogate: str, params: list[float], all_to_all: bool,
                           needs: list[bool]) -> list[Tensor]:
    """The gradients of ``(x, spk0, mem0, beta, threshold, graded, weight, bias)`` (empty where not needed)."""
    with torch.no_grad():
        grads = recurrent.backward(grad_spk, grad_mem, spk0, mem0, beta, threshold, graded, weight, bias, mems, reset,
                                   surrogate, params, all_to_all, needs)
    return _grads(grads, needs, (mems, spk0, mem0, beta, threshold, graded, weight, bias))


@_recurrent_backward_op.register_fake
def _(grad_spk, grad_mem, spk0, mem0, beta, threshold, graded, weight, bias, mems, reset, surrogate, params,
      all_to_all, needs):
    return _fake_grads(needs, (mems, spk0, mem0, beta, threshold, graded, weight, bias))


def _recurrent_setup(ctx, inputs, output):
    ctx.set_materialize_grads(False)
    _, spk0, mem0, beta, threshold, graded, weight, bias, *ctx.options = inputs
    ctx.has_bias = bias is not None
    ctx.save_for_backward(spk0, mem0, beta, threshold, graded, weight, bias, output[1])


def _recurrent_backward(ctx, grad_spk, grad_mem):
    needs = [*ctx.needs_input_grad[:7], ctx.has_bias and ctx.needs_input_grad[7]]
    grads = _backward_call(_recurrent_backward_op, grad_spk, grad_mem, *ctx.saved_tensors, *ctx.options, needs)
    return (*_untangle(grads, needs), None, None, None, None)


_recurrent_op.register_autograd(_recurrent_backward, setup_context=_recurrent_setup)
_RecurrentFunction = _functorch_ready(_recurrent_op, _recurrent_setup, _recurrent_backward)


def recurrent_leaky_scan(x: Tensor, spk0: Tensor, mem0: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor,
                         weight: Tensor, bias: Tensor | None, cfg: RecurrentScanConfig) -> tuple[Tensor, Tensor]:
    """``scan_recurrent.recurrent_leaky_scan`` as Triton kernels (the recurrent GEMM stays torch)."""
    name, params = _encode(cfg.surrogate)
    op = _RecurrentFunction.apply if _in_functorch() else _recurrent_op
    return op(x, spk0, mem0, beta, threshold, graded, weight, bias, cfg.reset, name, params, cfg.all_to_all)


# --- synaptic -------------------------------------------------------------------------------------------------

@torch.library.custom_op("snngraph::triton_synaptic_scan", mutates_args=())
def _synaptic_op(x: Tensor, syn0: Tensor, mem0: Tensor, alpha: Tensor, beta: Tensor, threshold: Tensor,
                 graded: Tensor, reset: str, surrogate: str, params: list[float]) -> tuple[Tensor, Tensor, Tensor]:
    """``(spk, syn, mem)``."""
    return synaptic.forward(x, syn0, mem0, alpha, beta, threshold, graded, reset)


@_synaptic_op.register_fake
def _(x, syn0, mem0, alpha, beta, threshold, graded, reset, surrogate, params):
    return torch.empty_like(x), torch.empty_like(x), torch.empty_like(x)


@torch.library.custom_op("snngraph::triton_synaptic_scan_backward", mutates_args=())
def _synaptic_backward_op(grad_spk: Tensor | None, grad_syn: Tensor | None, grad_mem: Tensor | None, syn0: Tensor,
                          mem0: Tensor, alpha: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor, syns: Tensor,
                          mems: Tensor, reset: str, surrogate: str, params: list[float],
                          needs: list[bool]) -> list[Tensor]:
    """The gradients of ``(x, syn0, mem0, alpha, beta, threshold, graded)`` (empty where not needed)."""
    grads = synaptic.backward(grad_spk, grad_syn, grad_mem, syn0, mem0, alpha, beta, threshold, graded, syns, mems,
                              reset, surrogate, params, needs[3])
    return _grads(grads, needs, (mems, syn0, mem0, alpha, beta, threshold, graded))


@_synaptic_backward_op.register_fake
def _(grad_spk, grad_syn, grad_mem, syn0, mem0, alpha, beta, threshold, graded, syns, mems, reset, surrogate,
      params, needs):
    return _fake_grads(needs, (mems, syn0, mem0, alpha, beta, threshold, graded))


def _synaptic_setup(ctx, inputs, output):
    ctx.set_materialize_grads(False)
    _, syn0, mem0, alpha, beta, threshold, graded, *ctx.options = inputs
    ctx.save_for_backward(syn0, mem0, alpha, beta, threshold, graded, output[1], output[2])


def _synaptic_backward(ctx, grad_spk, grad_syn, grad_mem):
    needs = list(ctx.needs_input_grad[:7])
    grads = _backward_call(_synaptic_backward_op, grad_spk, grad_syn, grad_mem, *ctx.saved_tensors, *ctx.options,
                           needs)
    return (*_untangle(grads, needs), None, None, None)


_synaptic_op.register_autograd(_synaptic_backward, setup_context=_synaptic_setup)
_SynapticFunction = _functorch_ready(_synaptic_op, _synaptic_setup, _synaptic_backward)


def synaptic_scan(x: Tensor, syn0: Tensor, mem0: Tensor, alpha: Tensor, beta: Tensor, threshold: Tensor,
                  graded: Tensor, cfg: SynapticScanConfig) -> tuple[Tensor, Tensor, Tensor]:
    """``scan_synaptic.synaptic_scan`` as Triton kernels."""
    name, params = _encode(cfg.surrogate)
    op = _SynapticFunction.apply if _in_functorch() else _synaptic_op
    return op(x, syn0, mem0, alpha, beta, threshold, graded, cfg.reset, name, params)
