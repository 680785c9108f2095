"""The Triton scans as registered custom operators (``snngraph::triton_*``), registered as the torch
scans' (``scan_registry.py``): eagerly, under ``torch.compile`` / ``torch.export`` and under
``torch.func``. This module adapts the kernels' host functions (``leaky.py``, ``recurrent.py``,
``synaptic.py``, ``spikingjelly.py``, ``norse.py``, ``lstm.py``) to the ops' primitive arguments.
"""

from __future__ import annotations

import torch
from torch import Tensor

from snngraph.runtimes.torch.scan_lstm_ops import _cfg as _lstm_cfg
from snngraph.runtimes.torch.scan_lstm_ops import register_lstm
from snngraph.runtimes.torch.scan_norse_ops import register_norse
from snngraph.runtimes.torch.scan_registry import (
    _in_functorch,
    register_leaky,
    register_recurrent,
    register_synaptic,
)
from snngraph.runtimes.torch.scan_sj_ops import register_sj
from snngraph.runtimes.torch.triton import leaky, lstm, norse, recurrent, spikingjelly, synaptic


def _plain(t: object) -> object:
    """A ``torch.func.grad`` tensor's plain value (a kernel reads memory; the gradients are first order)."""
    while isinstance(t, Tensor) and torch._C._functorch.is_gradtrackingtensor(t):
        t = torch._C._functorch.get_unwrapped(t)
    return t


def _backward_call(op, *args):
    """Call a backward op; inside ``torch.func.grad`` its Python function on the plain tensors (as
    ``scan_registry.backward_call``, which hands the transform's tensors over: a Triton launch needs memory)."""
    if not _in_functorch():
        return op(*args)
    from torch._functorch.pyfunctorch import temporarily_clear_interpreter_stack

    plain = [_plain(a) for a in args]
    with torch.no_grad(), temporarily_clear_interpreter_stack():  # tensors made inside stay plain too
        return op._init_fn(*plain)  # noqa: SLF001 (torch's own field)


def _leaky_forward(x, mem0, beta, threshold, graded, reset, reset_delay, surrogate, params, spiking, scratch):
    """With ``scratch`` the membranes go over ``x`` and ``mem`` comes back empty (``scan_registry._scratch``)."""
    if not scratch:
        return leaky.forward(x, mem0, beta, threshold, graded, reset, reset_delay, spiking)
    over = x if x.is_contiguous() else None
    spk, mem, pre = leaky.forward(x, mem0, beta, threshold, graded, reset, reset_delay, spiking, out=over)
    if over is None:
        x.copy_(mem)
    return spk, x.new_empty(0), pre


def _leaky_backward(*args):
    *rest, _, scratch = args  # (needs: the kernel computes every gradient)
    mems = rest[6]
    return leaky.backward(*rest, out=mems if scratch and mems.is_contiguous() else None)


def _recurrent_forward(x, spk0, mem0, beta, threshold, graded, weight, bias, reset, surrogate, params, all_to_all,
                       scratch):
    """With ``scratch`` the membranes go over ``x`` and ``mem`` comes back empty (``scan_registry._scratch``)."""
    over = x if scratch and x.is_contiguous() else None
    with torch.no_grad():
        spk, mem = recurrent.forward(x, spk0, mem0, beta, threshold, graded, weight, bias, reset, all_to_all, out=over)
    if not scratch:
        return spk, mem
    if over is None:
        x.copy_(mem)
    return spk, x.new_empty(0)


def _recurrent_backward(*args):
    *rest, scratch = args
    mems = rest[9]
    with torch.no_grad():
        return recurrent.backward(*rest, out=mems if scratch and mems.is_contiguous() else None)


def _synaptic_forward(x, syn0, mem0, alpha, beta, threshold, graded, reset, surrogate, params, scratch):
    """With ``scratch`` the currents go over ``x`` and ``syn`` comes back empty (``scan_registry._scratch``);
    the backward never overwrites (its adjoint is not the input gradient)."""
    over = x if scratch and x.is_contiguous() else None
    spk, syn, mem = synaptic.forward(x, syn0, mem0, alpha, beta, threshold, graded, reset, syn_out=over)
    if not scratch:
        return spk, syn, mem
    if over is None:
        x.copy_(syn)
    return spk, x.new_empty(0), mem


def _synaptic_backward(*args):
    *rest, needs, _ = args  # (never scratch)
    return synaptic.backward(*rest, needs[3])  # alpha's gradient only where needed


def _sj_forward(x, u0, tau, threshold, v_reset, lif, soft, detach, decay_input, surrogate, params, scratch):
    """With ``scratch`` (a contiguous ``x``) the charged membranes go over ``x``; ``v`` and the membranes come
    back empty (``scan_sj_ops.register_sj``)."""
    spk, v, charged = spikingjelly.forward(x, u0, tau, threshold, v_reset, lif, soft, decay_input, not scratch,
                                           out=x if scratch else None)
    return spk, v, x.new_empty(0) if scratch else charged


def _sj_backward(g_spk, g_v, charged, u0, tau, threshold, v_reset, lif, soft, detach, decay_input, surrogate, params,
                 over):
    return spikingjelly.backward(g_spk, g_v, charged, u0, tau, threshold, v_reset, lif, soft, detach, decay_input,
                                 surrogate, params, out=charged if over and charged.is_contiguous() else None)


def _lstm_forward(z, syn0, mem0, threshold, graded, weight, bias, reset, surrogate, params, cell, order, padding, pool,
                  pool_size, scratch):
    """With ``scratch`` (a contiguous ``z``) the gates go over ``z`` and come back empty (``register_lstm``)."""
    cfg = _lstm_cfg(reset, surrogate, params, cell, order, padding, pool, pool_size)
    with torch.no_grad():
        spk, syn, mem, gates = lstm.forward(z, syn0, mem0, threshold, graded, weight, bias, cfg,
                                            out=z if scratch else None)
    return spk, syn, mem, z.new_empty(0) if scratch else gates


def _lstm_backward(grad_spk, grad_syn, grad_mem, syn0, mem0, threshold, graded, weight, bias, gates, syns, mems, reset,
                   surrogate, params, cell, order, padding, pool, pool_size, needs, over):
    cfg = _lstm_cfg(reset, surrogate, params, cell, order, padding, pool, pool_size)
    with torch.no_grad():
        return lstm.backward(grad_spk, grad_syn, grad_mem, syn0, mem0, threshold, graded, weight, bias, gates, syns,
                             mems, cfg, needs, out=gates if over and gates.is_contiguous() else None)


def _norse_forward(x, u0, i0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias, dt, surrogate,
                   params, recurrent, box, subtract, scratch):
    """With ``scratch`` the currents go over ``x`` and ``v``, ``i`` come back empty (``scan_registry._scratch``)."""
    with torch.no_grad():
        return norse.forward(x, u0, i0, spk0, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, weight, bias, dt,
                             surrogate != "none", recurrent, box, subtract, scratch)


def _norse_backward(*args):
    *rest, over = args
    currents = rest[13]
    with torch.no_grad():
        return norse.backward(*rest, out=currents if over and currents.is_contiguous() else None)


leaky_scan = register_leaky("triton_leaky_scan", _leaky_forward, _leaky_backward, _backward_call, in_place=True)
"""``scan.leaky_scan`` as Triton kernels: ``(spk, mem)`` (``spk`` empty for LI)."""
recurrent_leaky_scan = register_recurrent("triton_recurrent_leaky_scan", _recurrent_forward, _recurrent_backward,
                                          _backward_call, in_place=True)
"""``scan_recurrent.recurrent_leaky_scan`` as Triton kernels (the recurrent GEMM stays torch)."""
synaptic_scan = register_synaptic("triton_synaptic_scan", _synaptic_forward, _synaptic_backward, _backward_call,
                                  in_place=True)
"""``scan_synaptic.synaptic_scan`` as Triton kernels."""
sj_scan = register_sj("triton_sj_scan", _sj_forward, _sj_backward, _backward_call)
"""``scan_sj.sj_scan`` (SpikingJelly's IF / LIF) as Triton kernels."""
lstm_scan = register_lstm("triton_lstm_scan", _lstm_forward, _lstm_backward, _backward_call, in_place=True)
"""``scan_lstm.lstm_scan`` (SLSTM, SConv2dLSTM without pooled spikes) as Triton kernels (the recurrent GEMM or
convolution stays torch)."""
norse_lif_scan = register_norse("triton_norse_lif_scan", _norse_forward, _norse_backward, _backward_call,
                                in_place=True)
"""``scan_norse.norse_lif_scan`` as Triton kernels (a dense recurrence's GEMM stays torch)."""
