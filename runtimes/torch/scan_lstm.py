r"""Fused time loop of the spiking LSTMs (``slstm``, ``sconv2d_lstm``) with a hand-written backward.

The input projection :math:`P = W_{ih} x + b_{ih}` (or the convolution of :math:`x`) runs before
the scan over all T*B rows; the scan runs the recurrence with the step kernel's operations, so
values are bit-identical to the derived loop. Gates in the model's order (``ifgo``: ``LSTMCell``,
``ifog``: ``SConv2dLSTM``), :math:`V` the hidden-to-gates map (``W_{hh} h + b_{hh}`` or the
convolution of :math:`h`), :math:`Q` the optional pooling of the spikes:

.. math::
    z_t = P_t + V(U_{t-1}),\quad (i, f, g, o) = (\sigma, \sigma, \tanh, \sigma)(z_t),\quad
    C_t = f C_{t-1} + i g,\quad M_t = o \tanh(C_t) \\
    U_t = M_t - R_t\theta \ (\text{subtract}),\ M_t - R_t M_t \ (\text{zero}),\ M_t \ (\text{none}),\quad
    S_t = g_s H(Q(U_t) - \theta),\quad R_t = \mathrm{sg}(H(U_{t-1} - \theta))

Saved: the post-activation gates (written over ``P`` itself, which is the scan's own), the cell
and hidden sequences (the ``syn``/``mem`` outputs). Backward, with
:math:`\delta_t = \bar U_t + V^\top \bar z_{t+1} + Q^\top(g_s \sigma'(Q(U_t) - \theta)\bar S_t)`:

.. math::
    \bar M_t = \delta_t\ (\times (1 - R_t) \text{ zero}),\quad
    \bar C_t = \bar C^{out}_t + f_{t+1} \bar C_{t+1} + \bar M_t\, o (1 - \tanh^2 C_t) \\
    \bar z_t = (\bar C_t g\, i(1-i),\ \bar C_t C_{t-1} f(1-f),\ \bar C_t i (1-g^2),\ \bar M_t \tanh C_t\, o(1-o))

one hidden-sized GEMM (or transposed convolution) per step; the recurrent weight gradient is one
GEMM (convolution weight gradient) over all T*B rows at the end; :math:`\bar z` overwrites the
saved gates unless the graph is kept. The threshold's gradient collects
:math:`-g_s\sigma'(\cdot)\bar S_t` and, for subtract, :math:`-R_t\delta_t`. (The models have no
``reset_delay``: snnTorch's LSTMs always reset from the previous membrane.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from snngraph.ir.model_cell import conv_padding
from snngraph.ir.surrogate import Surrogate
from snngraph.runtimes.torch.scan import _reduce, graph_kept
from snngraph.runtimes.torch.surrogates import spike_gradient


@dataclass(frozen=True)
class LstmScanConfig:
    """Static choices: reset rule, surrogate, cell kind (``linear``/``conv2d``), gate order, the
    convolution's padding, the spikes' pooling (``none``/``max``/``avg``) and its size."""

    reset: str
    surrogate: Surrogate | None
    cell: str = "linear"
    order: str = "ifgo"
    padding: tuple[int, int] = (0, 0)
    pool: str = "none"
    pool_size: tuple[int, int] = (1, 1)
    scratch_input: bool = False  # the projection is the scan's own: the gates overwrite it


def _recurrent(h: Tensor, weight: Tensor, bias: Tensor | None, cfg: LstmScanConfig) -> Tensor:
    if cfg.cell == "linear":
        return F.linear(h, weight, bias)
    return F.conv2d(h, weight, bias, padding=cfg.padding)


def _pool(h: Tensor, cfg: LstmScanConfig) -> Tensor:
    if cfg.pool == "max":
        return F.max_pool2d(h, cfg.pool_size)
    if cfg.pool == "avg":
        return F.avg_pool2d(h, cfg.pool_size)
    return h


def _pool_backward(grad: Tensor, h: Tensor, cfg: LstmScanConfig) -> Tensor:
    """The gradient reaching ``h`` through the pooling (autograd's own formulas, ties included)."""
    k = list(cfg.pool_size)
    if cfg.pool == "max":
        _, idx = F.max_pool2d(h, k, return_indices=True)
        return torch.ops.aten.max_pool2d_with_indices_backward(grad, h, k, k, [0, 0], [1, 1], False, idx)
    if cfg.pool == "avg":
        return torch.ops.aten.avg_pool2d_backward(grad, h, k, k, [0, 0], False, True, None)
    return grad


def _gates(cfg: LstmScanConfig) -> tuple[int, int, int, int]:
    """Positions of i, f, g, o among the chunks."""
    return tuple(cfg.order.index(c) for c in "ifgo")  # type: ignore[return-value]


def _transpose(dz: Tensor, h: Tensor, weight: Tensor, cfg: LstmScanConfig) -> Tensor:
    """``V^T dz``: the gradient reaching the previous hidden state."""
    if cfg.cell == "linear":
        return dz @ weight.to(dz.dtype)
    return torch.ops.aten.convolution_backward(dz, h, weight, None, [1, 1], list(cfg.padding), [1, 1], False,
                                               [0, 0], 1, [True, False, False])[0]


def _weight_grad(dz: Tensor, mem0: Tensor, mems: Tensor, weight: Tensor, cfg: LstmScanConfig) -> Tensor:
    """``sum_t dz_t^T U_{t-1}`` as two GEMMs (or convolution weight gradients): step 0 and the rest."""
    if cfg.cell == "linear":
        n, g = mems.shape[-1], dz.shape[-1]
        grad = dz[0].t() @ mem0
        if dz.shape[0] > 1:
            grad = grad + dz[1:].reshape(-1, g).t() @ mems[:-1].reshape(-1, n)
        return grad

    def conv_grad(d: Tensor, h: Tensor) -> Tensor:
        return torch.ops.aten.convolution_backward(d, h, weight, None, [1, 1], list(cfg.padding), [1, 1], False,
                                                   [0, 0], 1, [False, True, False])[1]

    grad = conv_grad(dz[0], mem0)
    if dz.shape[0] > 1:
        grad = grad + conv_grad(dz[1:].flatten(0, 1), mems[:-1].flatten(0, 1))
    return grad


class _LstmScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, syn0, mem0, threshold, graded, weight, bias, cfg: LstmScanConfig):
        ctx.set_materialize_grads(False)
        acts = z if cfg.scratch_input else torch.empty_like(z)
        steps, dtype = z.shape[0], z.dtype
        syns, mems = z.new_empty((steps, *syn0.shape)), z.new_empty((steps, *mem0.shape))
        spks = z.new_empty((steps, *_pool(mem0, cfg).shape))
        gi, gf, gg, go = _gates(cfg)
        unit = bool((graded == 1).all())
        c, h = syn0, mem0
        for t in range(steps):
            # the step kernel's operations in its layouts (a gate is a chunk of the pre-activations, the
            # hidden state a fresh tensor: BLAS rounding may follow alignment); V(h) + z_t is z_t + V(h) exactly
            parts = torch.chunk(_recurrent(h, weight, bias, cfg).add_(z[t]), 4, dim=1)
            slots = torch.chunk(acts[t], 4, dim=1)  # z[t] is read: a scratch projection takes the gates now
            si, sf, so = (torch.sigmoid(parts[k], out=slots[k]) for k in (gi, gf, go))
            tg = torch.tanh(parts[gg], out=slots[gg])
            reset = torch.gt(h, threshold).to(dtype) if cfg.reset != "none" else None
            c = torch.add(sf * c, si * tg, out=syns[t])
            m = so * torch.tanh(c)
            h = m - reset * threshold if cfg.reset == "subtract" else m - reset * m if cfg.reset == "zero" else m
            mems[t] = h
            torch.gt(_pool(h, cfg), threshold, out=spks[t])
        ctx.cfg, ctx.own_gates = cfg, True  # the gates are this node's alone (not so in the custom op's backward)
        ctx.save_for_backward(syn0, mem0, threshold, graded, weight, bias, acts, syns, mems)
        return (spks if unit else spks * graded), syns, mems

    @staticmethod
    def backward(ctx, grad_spk, grad_syn, grad_mem):
        cfg = ctx.cfg
        syn0, mem0, threshold, graded, weight, bias, acts, syns, mems = ctx.saved_tensors
        needs = ctx.needs_input_grad
        dtype, steps = mems.dtype, mems.shape[0]
        gi, gf, gg, go = _gates(cfg)
        unit = bool((graded == 1).all())
        # step t reads its gates before writing dz_t over them, unless the graph is kept for another backward
        dz = acts if getattr(ctx, "own_gates", False) and not graph_kept() else torch.empty_like(acts)
        thr_acc = torch.zeros_like(mems[0]) if needs[3] else None
        thr_pool_acc = g_acc = None
        back_h = back_c = None  # V^T dz_{t+1}; f_{t+1} * dC_{t+1}
        for t in range(steps - 1, -1, -1):
            h, c = mems[t], syns[t]
            h_prev, c_prev = (mems[t - 1], syns[t - 1]) if t else (mem0, syn0)
            d_h = _added(grad_mem[t] if grad_mem is not None else None, back_h)
            if grad_spk is not None:
                pooled = _pool(h, cfg)
                g_spk = grad_spk[t] if unit else grad_spk[t] * graded
                s_term = spike_gradient(cfg.surrogate, pooled - threshold, g_spk)
                if needs[3]:
                    thr_pool_acc = -s_term if thr_pool_acc is None else thr_pool_acc - s_term
                if needs[4]:
                    fired = torch.gt(pooled, threshold).to(dtype)
                    g_acc = grad_spk[t] * fired if g_acc is None else g_acc + grad_spk[t] * fired
                d_h = _added(d_h, _pool_backward(s_term, h, cfg))
            if d_h is None:
                d_h = torch.zeros_like(h)
            if cfg.reset != "none":
                reset = torch.gt(h_prev, threshold).to(dtype)
                if cfg.reset == "subtract" and thr_acc is not None:
                    thr_acc -= reset * d_h
                if cfg.reset == "zero":
                    d_h = d_h - reset * d_h
            si, sf, tg, so = _ordered(acts[t], (gi, gf, gg, go))
            tc = torch.tanh(c)
            d_c = d_h * so * (1 - tc * tc)
            if grad_syn is not None:
                d_c += grad_syn[t]
            if back_c is not None:
                d_c += back_c
            back_c = d_c * sf
            # each gate's gradient goes to its slot once the gate is read (the slots may be the gates')
            slots = torch.chunk(dz[t], 4, dim=1)
            torch.mul(d_h * tc, so * (1 - so), out=slots[go])
            torch.mul(d_c * c_prev, sf * (1 - sf), out=slots[gf])
            d_i = d_c * tg * (si * (1 - si))
            torch.mul(d_c * si, 1 - tg * tg, out=slots[gg])
            slots[gi].copy_(d_i)
            back_h = _transpose(dz[t], h_prev, weight, cfg)
        grad_thr = None
        if needs[3]:
            grad_thr = _reduce(thr_acc, threshold)
            if thr_pool_acc is not None:
                grad_thr = grad_thr + _reduce(thr_pool_acc, threshold)
        grad_g = _reduce(g_acc, graded) if needs[4] and g_acc is not None else None
        grad_w = _weight_grad(dz, mem0, mems, weight, cfg) if needs[5] else None
        grad_b = dz.sum((0, 1)) if bias is not None and needs[6] else None  # (a conv cell's bias is P's)
        return (dz if needs[0] else None, back_c if needs[1] else None, back_h if needs[2] else None,
                grad_thr, grad_g, grad_w, grad_b, None)


def _added(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    if a is None:
        return b
    return a if b is None else a + b


def _ordered(act: Tensor, where: tuple[int, int, int, int]) -> tuple[Tensor, ...]:
    """The gates i, f, g, o of one step's saved activations."""
    parts = torch.chunk(act, 4, dim=1)
    return tuple(parts[k] for k in where)


GATE_ORDER = {"slstm": "ifgo", "sconv2d_lstm": "ifog"}
"""The gate order of each model's ``ops.split`` (``torch.nn.LSTMCell``'s and ``SConv2dLSTM``'s)."""


def lstm_config(node: Any, tensors: dict[str, Tensor], surrogate: Surrogate | None
                ) -> tuple[LstmScanConfig, Tensor, Tensor | None]:
    """The scan's config of a fused ``slstm`` / ``sconv2d_lstm`` node and its recurrent weight and bias
    (a conv cell's are the ``h`` part of ``conv.weight`` and none: its bias is the projection's)."""
    model = node.model
    order = GATE_ORDER[model.name]
    pool, size = getattr(node, "pool", "none"), getattr(node, "pool_size", None) or (1, 1)
    if model.cell == "linear":
        return (LstmScanConfig(node.reset_mechanism, surrogate, "linear", order, scratch_input=True),
                tensors["weight_hh"], tensors.get("bias_hh"))
    w = tensors["conv_weight"]
    cfg = LstmScanConfig(node.reset_mechanism, surrogate, "conv2d", order, conv_padding(tuple(w.shape)), pool,
                         tuple(size), scratch_input=True)
    return cfg, w[:, w.shape[1] - w.shape[0] // model.gates:], None


def lstm_scan(z: Tensor, syn0: Tensor, mem0: Tensor, threshold: Tensor, graded: Tensor, weight: Tensor,
              bias: Tensor | None, cfg: LstmScanConfig) -> tuple[Tensor, Tensor, Tensor]:
    """Run a spiking LSTM over the projected input ``z`` (T, B, 4H, ...); returns ``(spk, syn, mem)``.

    With ``cfg.scratch_input`` the caller hands ``z`` over (the gates are written into it and the
    backward writes the gradient of ``z`` over them). Under ``torch.compile`` / ``torch.export`` /
    ``torch.func`` it runs as the custom op ``snngraph::lstm_scan`` (``scan_lstm_ops``: same values,
    nothing overwritten)."""
    from snngraph.runtimes.torch import scan_lstm_ops, scan_ops

    if scan_ops.tracing():
        return scan_lstm_ops.lstm_scan_op(z, syn0, mem0, threshold, graded, weight, bias, cfg)
    return _LstmScan.apply(z, syn0, mem0, threshold, graded, weight, bias, cfg)
