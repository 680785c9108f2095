r"""Triton kernels of the spiking LSTM scan (``scan_lstm.py``: ``slstm``, and ``sconv2d_lstm`` without pooled
spikes).

The recurrent term :math:`V(U_{t-1})` (``W_{hh} U + b_{hh}``, or the convolution of :math:`U`) stays a torch
GEMM / convolution per step, and so does :math:`V^\top \bar z_{t+1}` in the backward; the rest of each step is
one Triton kernel: the gates, the cell, the reset and the spikes forward (the equations of ``scan_lstm``'s
module docstring), the surrogate, the reset's, the cell's and the gates' adjoints backward, with the
threshold's and the graded factor's gradients accumulated per neuron in float32. Gate :math:`k` of neuron
:math:`r` of sample :math:`b` is element :math:`b \cdot 4I + k I + r` of a step's gates (:math:`I` the neurons
of a sample), so one kernel serves both cells. The cell state carried between steps is float32 for any
state dtype; spikes are decided on the stored (state dtype) hidden state, as in ``leaky.py``.
"""

# ruff: noqa: SIM108 (Triton kernels: if-blocks compile to structured control flow; ternaries on runtime values may not)
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from snngraph.runtimes.torch.scan_lstm import LstmScanConfig, _gates, _recurrent, _transpose, _weight_grad
from snngraph.runtimes.torch.scan_registry import _encode
from snngraph.runtimes.torch.triton.common import (
    f32_zeros,
    flat,
    flat_params,
    launch,
    load_f32,
    load_param,
    neurons,
    param_grad,
    store_as,
)
from snngraph.runtimes.torch.triton.surrogate import encode, surrogate_grad


@triton.jit
def _tanh(x):
    """``tanh`` in float32 to a few ulp (Cephes' ``tanhf``: an odd polynomial below 0.625, else
    ``1 - 2 / (e^{2|x|} + 1)``), from ``tl.exp`` alone: Triton's interpreter has no libdevice. Within 1.3
    float32 eps (relative) of the exact value (``test_triton_scans.test_lstm_tanh``)."""
    a = tl.abs(x)
    z = x * x
    small = ((((-5.70498872745e-3 * z + 2.06390887954e-2) * z - 5.37397155531e-2) * z + 1.33314422036e-1) * z
             - 3.33332819422e-1) * z * x + x
    large = 1 - 2 / (tl.exp(2 * tl.minimum(a, 15.0)) + 1)  # (tanh(15) is 1 in float32)
    return tl.where(a < 0.625, small, tl.where(x < 0, -large, large))


@triton.jit
def _gate_offsets(offs, INNER):
    """Where gate 0 of each neuron sits in a step's gates (gate k: plus ``k * INNER``)."""
    return (offs // INNER) * 4 * INNER + offs % INNER


@triton.jit
def _forward_step(z_ptr, rec_ptr, c_ptr, h_prev_ptr, thr_ptr, g_ptr, act_ptr, syn_ptr, mem_ptr, spk_ptr, N, INNER,
                  PT, PG, GI: tl.constexpr, GF: tl.constexpr, GG: tl.constexpr, GO: tl.constexpr,
                  RESET: tl.constexpr, BLOCK: tl.constexpr):
    offs, m = neurons(N, BLOCK)
    dt = mem_ptr.dtype.element_ty
    thr = load_param(thr_ptr, offs, m, PT, 0.0)
    g = load_param(g_ptr, offs, m, PG, 0.0)
    base = _gate_offsets(offs, INNER)
    pi, pf, pg, po = base + GI * INNER, base + GF * INNER, base + GG * INNER, base + GO * INNER
    si = tl.sigmoid(load_f32(rec_ptr + pi, m) + load_f32(z_ptr + pi, m))
    sf = tl.sigmoid(load_f32(rec_ptr + pf, m) + load_f32(z_ptr + pf, m))
    tg = _tanh(load_f32(rec_ptr + pg, m) + load_f32(z_ptr + pg, m))
    so = tl.sigmoid(load_f32(rec_ptr + po, m) + load_f32(z_ptr + po, m))
    store_as(act_ptr + pi, si, m)  # (act may be z itself: every gate is read above)
    store_as(act_ptr + pf, sf, m)
    store_as(act_ptr + pg, tg, m)
    store_as(act_ptr + po, so, m)
    c = sf * tl.load(c_ptr + offs, mask=m, other=0.0) + si * tg
    tl.store(c_ptr + offs, c, mask=m)
    store_as(syn_ptr + offs, c, m)
    h = so * _tanh(c)
    if RESET != 2:
        reset = (load_f32(h_prev_ptr + offs, m) > thr).to(tl.float32)
        if RESET == 0:
            h = h - reset * thr
        else:
            h = h - reset * h
    stored = h.to(dt)
    tl.store(mem_ptr + offs, stored, mask=m)
    store_as(spk_ptr + offs, (stored.to(tl.float32) > thr).to(tl.float32) * g, m)


@triton.jit
def _backward_step(gs_ptr, gm_ptr, gc_ptr, back_h_ptr, back_c_ptr, act_ptr, c_ptr, c_prev_ptr, h_ptr, h_prev_ptr,
                   thr_ptr, g_ptr, dz_ptr, acc_t_ptr, acc_g_ptr, N, INNER, PT, PG, p1, p2, GI: tl.constexpr,
                   GF: tl.constexpr, GG: tl.constexpr, GO: tl.constexpr, RESET: tl.constexpr, HAS_GS: tl.constexpr,
                   HAS_GM: tl.constexpr, HAS_GC: tl.constexpr, HAS_BACK: tl.constexpr, SURR: tl.constexpr,
                   BLOCK: tl.constexpr):
    offs, m = neurons(N, BLOCK)
    thr = load_param(thr_ptr, offs, m, PT, 0.0)
    g = load_param(g_ptr, offs, m, PG, 0.0)
    d_h = tl.zeros([BLOCK], tl.float32)
    if HAS_GM:
        d_h += load_f32(gm_ptr + offs, m)
    if HAS_BACK:
        d_h += load_f32(back_h_ptr + offs, m)
    acc_t = tl.load(acc_t_ptr + offs, mask=m, other=0.0)
    if HAS_GS:
        gs = load_f32(gs_ptr + offs, m)
        h = load_f32(h_ptr + offs, m)
        s_term = surrogate_grad(h - thr, gs * g, SURR, p1, p2)
        acc_t -= s_term
        fired = (h > thr).to(tl.float32)
        tl.store(acc_g_ptr + offs, tl.load(acc_g_ptr + offs, mask=m, other=0.0) + gs * fired, mask=m)
        d_h += s_term
    if RESET != 2:
        reset = (load_f32(h_prev_ptr + offs, m) > thr).to(tl.float32)
        if RESET == 0:
            acc_t -= reset * d_h
        else:
            d_h = d_h - reset * d_h
    tl.store(acc_t_ptr + offs, acc_t, mask=m)
    base = _gate_offsets(offs, INNER)
    pi, pf, pg, po = base + GI * INNER, base + GF * INNER, base + GG * INNER, base + GO * INNER
    si, sf = load_f32(act_ptr + pi, m), load_f32(act_ptr + pf, m)
    tg, so = load_f32(act_ptr + pg, m), load_f32(act_ptr + po, m)
    c = load_f32(c_ptr + offs, m)
    tc = _tanh(c)
    d_c = d_h * so * (1 - tc * tc)
    if HAS_GC:
        d_c += load_f32(gc_ptr + offs, m)
    if HAS_BACK:
        d_c += tl.load(back_c_ptr + offs, mask=m, other=0.0)
    tl.store(back_c_ptr + offs, d_c * sf, mask=m)
    store_as(dz_ptr + po, (d_h * tc) * (so * (1 - so)), m)  # (dz may be the gates: all four are read above)
    store_as(dz_ptr + pf, (d_c * load_f32(c_prev_ptr + offs, m)) * (sf * (1 - sf)), m)
    store_as(dz_ptr + pi, (d_c * tg) * (si * (1 - si)), m)
    store_as(dz_ptr + pg, (d_c * si) * (1 - tg * tg), m)


_RESETS = ("subtract", "zero", "none")


def forward(z: Tensor, syn0: Tensor, mem0: Tensor, threshold: Tensor, graded: Tensor, weight: Tensor,
            bias: Tensor | None, cfg: LstmScanConfig, out: Tensor | None = None
            ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(spk, syn, mem, gates)`` over the projected input ``z`` (T, B, 4I...), as ``scan_lstm._LstmScan`` (no
    pooled spikes); the gates in ``out`` if given (contiguous, ``z`` itself allowed)."""
    steps, n = z.shape[0], mem0.numel()
    zc = z.contiguous()
    acts = torch.empty_like(zc) if out is None else out
    syns, mems = z.new_empty((steps, *mem0.shape)), z.new_empty((steps, *mem0.shape))
    spks = torch.empty_like(mems)
    c_state = flat(syn0).to(torch.float32, copy=True)
    flats, periods = flat_params(mem0, threshold, graded)
    gi, gf, gg, go = _gates(cfg)
    h = mem0.contiguous()
    for t in range(steps):
        rec = _recurrent(h, weight, bias, cfg).contiguous()
        launch(_forward_step, n, zc[t], rec, c_state, h, *flats, acts[t], syns[t], mems[t], spks[t], n,
               n // mem0.shape[0], *periods, GI=gi, GF=gf, GG=gg, GO=go, RESET=_RESETS.index(cfg.reset))
        h = mems[t]
    return spks, syns, mems, acts


def backward(grad_spk: Tensor | None, grad_syn: Tensor | None, grad_mem: Tensor | None, syn0: Tensor, mem0: Tensor,
             threshold: Tensor, graded: Tensor, weight: Tensor, bias: Tensor | None, gates: Tensor, syns: Tensor,
             mems: Tensor, cfg: LstmScanConfig, needs: list[bool],
             out: Tensor | None = None) -> tuple[Tensor | None, ...]:
    """The gradients of ``(z, syn0, mem0, threshold, graded, weight, bias)``, as ``scan_lstm._LstmScan.backward``;
    ``z``'s in ``out`` if given (``gates`` itself allowed: each step reads its gates before writing over them)."""
    steps, n = mems.shape[0], mem0.numel()
    kind, p1, p2 = encode(*_encode(cfg.surrogate))
    acts = gates.contiguous()
    dz = torch.empty_like(acts) if out is None else out
    back_c, acc_t, acc_g = (f32_zeros(n, mems) for _ in range(3))
    flats, periods = flat_params(mem0, threshold, graded)
    gs, gm, gc = (g.contiguous() if g is not None else None for g in (grad_spk, grad_mem, grad_syn))
    gi, gf, gg, go = _gates(cfg)
    syn0c, mem0c = syn0.contiguous(), mem0.contiguous()
    back_h = mems[0]  # (not read at the last step: HAS_BACK is off)
    for t in range(steps - 1, -1, -1):
        h_prev, c_prev = (mems[t - 1], syns[t - 1]) if t else (mem0c, syn0c)
        launch(_backward_step, n, gs[t] if gs is not None else mems[t], gm[t] if gm is not None else mems[t],
               gc[t] if gc is not None else mems[t], back_h, back_c, acts[t], syns[t], c_prev, mems[t], h_prev,
               *flats, dz[t], acc_t, acc_g, n, n // mem0.shape[0], *periods, p1, p2, GI=gi, GF=gf, GG=gg, GO=go,
               RESET=_RESETS.index(cfg.reset), HAS_GS=gs is not None, HAS_GM=gm is not None, HAS_GC=gc is not None,
               HAS_BACK=t + 1 < steps, SURR=kind)
        back_h = _transpose(dz[t], h_prev, weight, cfg).contiguous()
    grad_w = _weight_grad(dz, mem0, mems, weight, cfg) if needs[5] else None
    grad_b = dz.sum((0, 1)) if bias is not None and needs[6] else None
    return (dz if needs[0] else None, back_c.view(syn0.shape).to(syn0.dtype) if needs[1] else None,
            back_h if needs[2] else None, param_grad(acc_t, threshold, mem0) if needs[3] else None,
            param_grad(acc_g, graded, mem0) if needs[4] else None, grad_w, grad_b)
