"""The fused scans as registered custom operators, for ``torch.compile``, ``torch.export`` and ``torch.func``.

Eager runs call the scans' ``torch.autograd.Function``\\ s (``scan.py``, ``scan_recurrent.py``,
``scan_synaptic.py``) with their memory tricks: a scan may write its state into its private input
(``scratch_input``) and a backward may overwrite the tensors it saved. Under tracing
(:func:`tracing`) the same forward and backward code runs instead inside the ops
``snngraph::leaky_scan``, ``snngraph::recurrent_leaky_scan``, ``snngraph::synaptic_scan`` and their
``*_backward`` ops, without those tricks (nothing is mutated, values are identical): each op is
opaque to dynamo (one node in the graph, no host synchronisation traced), has a fake implementation
for shapes, and its autograd formula is the backward op. Arguments are primitive: the config
dataclasses become str/bool arguments, a surrogate its name and a list of its parameter values.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from snngraph.ir.surrogate import Surrogate
from snngraph.runtimes.torch.scan import ScanConfig, _LeakyScan
from snngraph.runtimes.torch.scan_recurrent import RecurrentScanConfig, _RecurrentLeakyScan
from snngraph.runtimes.torch.scan_synaptic import SynapticScanConfig, _SynapticScan
from snngraph.runtimes.torch.surrogates import GRADIENTS

Grad = Tensor | None


def _in_functorch() -> bool:
    return not torch.compiler.is_compiling() and torch._C._functorch.peek_interpreter_stack() is not None


def _functorch_ready(op: Any, setup: Any, backward: Any) -> type[torch.autograd.Function]:
    """``op`` with its autograd formula as an ``autograd.Function`` in the ``setup_context`` style, which
    ``torch.func`` transforms accept (the autograd a custom op registers is not: it is the old style)."""
    def forward(*args: Any) -> Any:
        return op(*args)

    return type(f"{op._name}_function", (torch.autograd.Function,), {  # noqa: SLF001 (torch's own field)
        "forward": staticmethod(forward), "setup_context": staticmethod(setup), "backward": staticmethod(backward)})


def _backward_call(op: Any, *args: Any) -> Any:
    """Call a backward op; inside a ``torch.func`` transform its Python function itself (the transform
    refuses a custom op without autograd, and the function runs on the transform's tensors), without
    building a graph: the gradients are first order."""
    if not _in_functorch():
        return op(*args)
    with torch.no_grad():  # first-order: the hand-written loops write with out=
        return op._init_fn(*args)  # noqa: SLF001 (torch's own field)


def tracing() -> bool:
    """Whether the scans must run as custom ops: under ``torch.compile`` / ``torch.export`` or a
    ``torch.func`` transform (checked without touching dynamo-unfriendly calls when compiling)."""
    return torch.compiler.is_compiling() or torch._C._functorch.peek_interpreter_stack() is not None


class _Ctx:
    """Stands in for autograd's ``ctx`` so the autograd functions' forward and backward run unchanged."""

    def __init__(self, cfg: Any, needs: Sequence[bool] = (), saved: Sequence[Tensor] = ()):
        self.cfg = cfg
        self.needs_input_grad = tuple(needs)
        self.saved_tensors = tuple(saved)

    def set_materialize_grads(self, value: bool) -> None:
        pass

    def save_for_backward(self, *tensors: Tensor) -> None:
        self.saved_tensors = tensors


@functools.cache
def _surrogate(name: str, values: tuple[float, ...]) -> Surrogate | None:
    if name == "none":
        return None
    return Surrogate(name, tuple(zip(GRADIENTS[name][1], values, strict=True)))


def _encode(surrogate: Surrogate | None) -> tuple[str, list[float]]:
    return ("none", []) if surrogate is None else (surrogate.name, [v for _, v in surrogate.params])


def _grads(grads: Sequence[Grad], needs: Sequence[bool], inputs: Sequence[Tensor | None]) -> list[Tensor]:
    """The gradients an op returns: ``None`` / not needed as empty tensors, none aliasing an input."""
    wrapped = _in_functorch()  # the transform's tensors have no storage; an autograd.Function may alias
    taken = set() if wrapped else {t.untyped_storage().data_ptr() for t in inputs if t is not None and t.numel()}
    out = []
    for g, need, like in zip(grads, needs, inputs, strict=True):
        if not need or g is None:
            out.append((like if like is not None else inputs[0]).new_empty(0))
        else:
            out.append(g.clone() if not wrapped and g.untyped_storage().data_ptr() in taken else g)
    return out


def _fake_grads(needs: Sequence[bool], likes: Sequence[Tensor | None]) -> list[Tensor]:
    first = next(t for t in likes if t is not None)
    return [torch.empty_like(t) if need and t is not None else first.new_empty(0) for need, t in zip(needs, likes,
                                                                                                      strict=True)]


def _untangle(grads: Sequence[Tensor], needs: Sequence[bool]) -> tuple[Grad, ...]:
    return tuple(g if need else None for g, need in zip(grads, needs, strict=True))


# --- leaky / integrate-and-fire / leaky integrator ------------------------------------------------------------

def _leaky_cfg(reset: str, reset_delay: bool, surrogate: str, params: Sequence[float], spiking: bool) -> ScanConfig:
    return ScanConfig(reset, reset_delay, _surrogate(surrogate, tuple(params)), spiking)


def _reset_now(reset: str, reset_delay: bool, spiking: bool) -> bool:
    return spiking and not reset_delay and reset != "none"


@torch.library.custom_op("snngraph::leaky_scan", mutates_args=())
def _leaky_op(x: Tensor, mem0: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor, reset: str,
              reset_delay: bool, surrogate: str, params: list[float], spiking: bool) -> tuple[Tensor, Tensor, Tensor]:
    """``(spk, mem, pre-reset membranes or empty)``: the forward of ``scan._LeakyScan``."""
    ctx = _Ctx(_leaky_cfg(reset, reset_delay, surrogate, params, spiking))
    with torch.no_grad():
        spk, mem = _LeakyScan.forward(ctx, x, mem0, beta, threshold, graded, ctx.cfg)
    extra = ctx.saved_tensors[5] if len(ctx.saved_tensors) > 5 else x.new_empty(0)
    return spk, mem, extra


@_leaky_op.register_fake
def _(x, mem0, beta, threshold, graded, reset, reset_delay, surrogate, params, spiking):
    spk = torch.empty_like(x) if spiking else x.new_empty(0)
    extra = torch.empty_like(x) if _reset_now(reset, reset_delay, spiking) else x.new_empty(0)
    return spk, torch.empty_like(x), extra


@torch.library.custom_op("snngraph::leaky_scan_backward", mutates_args=())
def _leaky_backward_op(grad_spk: Tensor | None, grad_mem: Tensor | None, mem0: Tensor, beta: Tensor,
                       threshold: Tensor, graded: Tensor, mems: Tensor, extra: Tensor, reset: str, reset_delay: bool,
                       surrogate: str, params: list[float], spiking: bool, needs: list[bool]) -> list[Tensor]:
    """The gradients of ``(x, mem0, beta, threshold, graded)`` (empty where not needed)."""
    cfg = _leaky_cfg(reset, reset_delay, surrogate, params, spiking)
    saved = (mem0, beta, threshold, graded, mems) + ((extra,) if _reset_now(reset, reset_delay, spiking) else ())
    grads = _LeakyScan.backward(_Ctx(cfg, (*needs, False), saved), grad_spk, grad_mem)[:5]
    return _grads(grads, needs, (mems, mem0, beta, threshold, graded))


@_leaky_backward_op.register_fake
def _(grad_spk, grad_mem, mem0, beta, threshold, graded, mems, extra, reset, reset_delay, surrogate, params,
      spiking, needs):
    return _fake_grads(needs, (mems, mem0, beta, threshold, graded))


def _leaky_setup(ctx, inputs, output):
    ctx.set_materialize_grads(False)  # an unused output gets None, not zeros (AOTAutograd too)
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


def leaky_scan_op(x: Tensor, mem0: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor,
                  cfg: ScanConfig) -> tuple[Tensor, Tensor]:
    """``scan.leaky_scan`` as the custom op (``cfg.scratch_input`` ignored: ``mem`` is always returned)."""
    name, params = _encode(cfg.surrogate)
    op = _LeakyFunction.apply if _in_functorch() else _leaky_op
    spk, mem, _ = op(x, mem0, beta, threshold, graded, cfg.reset, cfg.reset_delay, name, params, cfg.spiking)
    return spk, mem


# --- recurrent leaky ------------------------------------------------------------------------------------------

def _recurrent_cfg(reset: str, surrogate: str, params: Sequence[float], all_to_all: bool) -> RecurrentScanConfig:
    return RecurrentScanConfig(reset, _surrogate(surrogate, tuple(params)), all_to_all)


@torch.library.custom_op("snngraph::recurrent_leaky_scan", mutates_args=())
def _recurrent_op(x: Tensor, spk0: Tensor, mem0: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor,
                  weight: Tensor, bias: Tensor | None, reset: str, surrogate: str, params: list[float],
                  all_to_all: bool) -> tuple[Tensor, Tensor]:
    """``(spk, mem)``: the forward of ``scan_recurrent._RecurrentLeakyScan``."""
    ctx = _Ctx(_recurrent_cfg(reset, surrogate, params, all_to_all))
    with torch.no_grad():
        return _RecurrentLeakyScan.forward(ctx, x, spk0, mem0, beta, threshold, graded, weight, bias, ctx.cfg)


@_recurrent_op.register_fake
def _(x, spk0, mem0, beta, threshold, graded, weight, bias, reset, surrogate, params, all_to_all):
    return torch.empty_like(x), torch.empty_like(x)


@torch.library.custom_op("snngraph::recurrent_leaky_scan_backward", mutates_args=())
def _recurrent_backward_op(grad_spk: Tensor | None, grad_mem: Tensor | None, spk0: Tensor, mem0: Tensor,
                           beta: Tensor, threshold: Tensor, graded: Tensor, weight: Tensor, bias: Tensor | None,
                           mems: Tensor, reset: str, surrogate: str, params: list[float], all_to_all: bool,
                           needs: list[bool]) -> list[Tensor]:
    """The gradients of ``(x, spk0, mem0, beta, threshold, graded, weight, bias)`` (empty where not needed;
    ``x``'s has the shape of ``mems``)."""
    saved = (spk0, mem0, beta, threshold, graded, weight, bias, mems)
    ctx = _Ctx(_recurrent_cfg(reset, surrogate, params, all_to_all), (*needs, False), saved)
    grads = _RecurrentLeakyScan.backward(ctx, grad_spk, grad_mem)[:8]
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


def recurrent_leaky_scan_op(x: Tensor, spk0: Tensor, mem0: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor,
                            weight: Tensor, bias: Tensor | None, cfg: RecurrentScanConfig) -> tuple[Tensor, Tensor]:
    """``scan_recurrent.recurrent_leaky_scan`` as the custom op (``cfg.scratch_input`` ignored)."""
    name, params = _encode(cfg.surrogate)
    op = _RecurrentFunction.apply if _in_functorch() else _recurrent_op
    return op(x, spk0, mem0, beta, threshold, graded, weight, bias, cfg.reset, name, params, cfg.all_to_all)


# --- synaptic -------------------------------------------------------------------------------------------------

@torch.library.custom_op("snngraph::synaptic_scan", mutates_args=())
def _synaptic_op(x: Tensor, syn0: Tensor, mem0: Tensor, alpha: Tensor, beta: Tensor, threshold: Tensor,
                 graded: Tensor, reset: str, surrogate: str, params: list[float]) -> tuple[Tensor, Tensor, Tensor]:
    """``(spk, syn, mem)``: the forward of ``scan_synaptic._SynapticScan``."""
    ctx = _Ctx(SynapticScanConfig(reset, _surrogate(surrogate, tuple(params))), (True,) * 7)
    with torch.no_grad():
        return _SynapticScan.forward(ctx, x, syn0, mem0, alpha, beta, threshold, graded, ctx.cfg)


@_synaptic_op.register_fake
def _(x, syn0, mem0, alpha, beta, threshold, graded, reset, surrogate, params):
    return torch.empty_like(x), torch.empty_like(x), torch.empty_like(x)


@torch.library.custom_op("snngraph::synaptic_scan_backward", mutates_args=())
def _synaptic_backward_op(grad_spk: Tensor | None, grad_syn: Tensor | None, grad_mem: Tensor | None, syn0: Tensor,
                          mem0: Tensor, alpha: Tensor, beta: Tensor, threshold: Tensor, graded: Tensor, syns: Tensor,
                          mems: Tensor, reset: str, surrogate: str, params: list[float],
                          needs: list[bool]) -> list[Tensor]:
    """The gradients of ``(x, syn0, mem0, alpha, beta, threshold, graded)`` (empty where not needed)."""
    saved = (syn0, mem0, alpha, beta, threshold, graded, syns, mems)
    ctx = _Ctx(SynapticScanConfig(reset, _surrogate(surrogate, tuple(params))), (*needs, False), saved)
    grads = _SynapticScan.backward(ctx, grad_spk, grad_syn, grad_mem)[:7]
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


def synaptic_scan_op(x: Tensor, syn0: Tensor, mem0: Tensor, alpha: Tensor, beta: Tensor, threshold: Tensor,
                     graded: Tensor, cfg: SynapticScanConfig) -> tuple[Tensor, Tensor, Tensor]:
    """``scan_synaptic.synaptic_scan`` as the custom op (``cfg.scratch_input`` ignored)."""
    name, params = _encode(cfg.surrogate)
    op = _SynapticFunction.apply if _in_functorch() else _synaptic_op
    return op(x, syn0, mem0, alpha, beta, threshold, graded, cfg.reset, name, params)
