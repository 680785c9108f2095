"""The fused scans as registered custom operators, for ``torch.compile``, ``torch.export`` and ``torch.func``.

Eager runs call the scans' ``torch.autograd.Function``\\ s (``scan.py``, ``scan_recurrent.py``,
``scan_synaptic.py``) with their memory tricks: a scan may write its state into its private input
(``scratch_input``) and a backward may overwrite the tensors it saved. Under tracing
(:func:`tracing`) the same forward and backward code runs instead inside the ops
``snngraph::leaky_scan``, ``snngraph::recurrent_leaky_scan``, ``snngraph::synaptic_scan`` and their
``*_backward`` ops, with the same tricks where the graph allows them: the forward writes over a
private input (argument ``scratch``) and, where the saved membranes are the backward's alone, the
op ``*_backward_over_mems`` writes over them (a declared mutation, which inductor performs in place
on the donated buffer). The ops themselves (fake implementations, autograd formulas, ``torch.func``
support) are registered by ``scan_registry.py``, as the Triton scans' are; this module supplies their
torch implementations. Arguments are primitive: the config dataclasses become str/bool arguments, a
surrogate its name and a list of its parameter values.
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
from snngraph.runtimes.torch.scan_registry import register_leaky, register_recurrent, register_synaptic, reset_now
from snngraph.runtimes.torch.scan_synaptic import SynapticScanConfig, _SynapticScan
from snngraph.runtimes.torch.surrogates import GRADIENTS


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


# --- leaky / integrate-and-fire / leaky integrator ------------------------------------------------------------

def _leaky_cfg(reset: str, reset_delay: bool, surrogate: str, params: Sequence[float], spiking: bool,
               scratch: bool) -> ScanConfig:
    return ScanConfig(reset, reset_delay, _surrogate(surrogate, tuple(params)), spiking, scratch)


def _leaky_forward(x, mem0, beta, threshold, graded, reset, reset_delay, surrogate, params, spiking, scratch):
    """``(spk, mem, pre-reset membranes or empty)``: the forward of ``scan._LeakyScan`` (with ``scratch``,
    the membranes are written over ``x`` and ``mem`` is empty)."""
    ctx = _Ctx(_leaky_cfg(reset, reset_delay, surrogate, params, spiking, scratch))
    with torch.no_grad():
        spk, mem = _LeakyScan.forward(ctx, x, mem0, beta, threshold, graded, ctx.cfg)
    extra = ctx.saved_tensors[5] if len(ctx.saved_tensors) > 5 else x.new_empty(0)
    return spk, mem, extra


def _leaky_backward(grad_spk, grad_mem, mem0, beta, threshold, graded, mems, extra, reset, reset_delay, surrogate,
                    params, spiking, needs, scratch):
    """The gradients of ``(x, mem0, beta, threshold, graded)``: the backward of ``scan._LeakyScan`` (with
    ``scratch``, ``x``'s may be written over ``mems``)."""
    cfg = _leaky_cfg(reset, reset_delay, surrogate, params, spiking, scratch)
    saved = (mem0, beta, threshold, graded, mems) + ((extra,) if reset_now(reset, reset_delay, spiking) else ())
    return _LeakyScan.backward(_Ctx(cfg, (*needs, False), saved), grad_spk, grad_mem)[:5]


leaky_scan_op = register_leaky("leaky_scan", _leaky_forward, _leaky_backward, in_place=True)
"""``scan.leaky_scan`` as the custom op."""


# --- recurrent leaky ------------------------------------------------------------------------------------------

def _recurrent_cfg(reset: str, surrogate: str, params: Sequence[float], all_to_all: bool,
                   scratch: bool) -> RecurrentScanConfig:
    return RecurrentScanConfig(reset, _surrogate(surrogate, tuple(params)), all_to_all, scratch)


def _recurrent_forward(x, spk0, mem0, beta, threshold, graded, weight, bias, reset, surrogate, params, all_to_all,
                       scratch):
    """``(spk, mem)``: the forward of ``scan_recurrent._RecurrentLeakyScan`` (with ``scratch``, the
    membranes go over ``x`` and ``mem`` is empty)."""
    ctx = _Ctx(_recurrent_cfg(reset, surrogate, params, all_to_all, scratch))
    with torch.no_grad():
        return _RecurrentLeakyScan.forward(ctx, x, spk0, mem0, beta, threshold, graded, weight, bias, ctx.cfg)


def _recurrent_backward(grad_spk, grad_mem, spk0, mem0, beta, threshold, graded, weight, bias, mems, reset,
                        surrogate, params, all_to_all, needs, scratch):
    """The gradients of ``(x, spk0, mem0, beta, threshold, graded, weight, bias)`` (``x``'s has the shape
    of ``mems``): the backward of ``scan_recurrent._RecurrentLeakyScan``."""
    saved = (spk0, mem0, beta, threshold, graded, weight, bias, mems)
    ctx = _Ctx(_recurrent_cfg(reset, surrogate, params, all_to_all, scratch), (*needs, False), saved)
    return _RecurrentLeakyScan.backward(ctx, grad_spk, grad_mem)[:8]


recurrent_leaky_scan_op = register_recurrent("recurrent_leaky_scan", _recurrent_forward, _recurrent_backward,
                                             in_place=True)
"""``scan_recurrent.recurrent_leaky_scan`` as the custom op."""


# --- synaptic -------------------------------------------------------------------------------------------------

def _synaptic_forward(x, syn0, mem0, alpha, beta, threshold, graded, reset, surrogate, params, scratch):
    """``(spk, syn, mem)``: the forward of ``scan_synaptic._SynapticScan`` (with ``scratch``, the currents
    go over ``x`` and ``syn`` is empty; ``mem`` is returned, for the backward)."""
    ctx = _Ctx(SynapticScanConfig(reset, _surrogate(surrogate, tuple(params)), scratch), (True,) * 7)
    with torch.no_grad():
        spk, syn, mem = _SynapticScan.forward(ctx, x, syn0, mem0, alpha, beta, threshold, graded, ctx.cfg)
    return spk, syn, ctx.saved_tensors[7]


def _synaptic_backward(grad_spk, grad_syn, grad_mem, syn0, mem0, alpha, beta, threshold, graded, syns, mems, reset,
                       surrogate, params, needs, scratch):
    """The gradients of ``(x, syn0, mem0, alpha, beta, threshold, graded)``: the backward of
    ``scan_synaptic._SynapticScan``."""
    saved = (syn0, mem0, alpha, beta, threshold, graded, syns, mems)
    ctx = _Ctx(SynapticScanConfig(reset, _surrogate(surrogate, tuple(params)), scratch), (*needs, False), saved)
    return _SynapticScan.backward(ctx, grad_spk, grad_syn, grad_mem)[:7]


synaptic_scan_op = register_synaptic("synaptic_scan", _synaptic_forward, _synaptic_backward, in_place=True)
"""``scan_synaptic.synaptic_scan`` as the custom op."""
