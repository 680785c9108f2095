r"""Spiking LSTM cells (snnTorch ``SLSTM`` and ``SConv2dLSTM``): gated cells whose hidden state spikes.

Both are cell models (:mod:`snngraph.ir.model_cell`): the node holds the cell's weights,
``ops.project(x)`` is the input part of the gate pre-activations and ``ops.recurrent(mem)`` the
hidden part. snnTorch's names: the cell state :math:`c` is ``syn``, the hidden state :math:`h` is
``mem``; the reset (default ``"none"``) acts on ``mem`` only.
"""

from __future__ import annotations

from typing import Any

from snngraph.ir.model import INHIBITION, OptionSpec, neuron_model
from snngraph.models.common import FIRING, delayed_reset, fire, reset_after

LSTM_OPTIONS = {"reset_mechanism": OptionSpec(("none", "subtract", "zero")), "inhibition": INHIBITION}
"""snnTorch's LSTMs default to no reset. snnTorch 1.0.0 accepts ``inhibition`` and ignores it (its LSTMs call
``fire``, never ``fire_inhibition``); here it does what snnTorch documents: only each sample's largest
membrane may spike (:func:`~snngraph.models.common.fire`)."""


def lstm_update(ops: Any, i: Any, f: Any, g: Any, o: Any, state: dict[str, Any], p: dict[str, Any],
                pooled: bool = False) -> tuple:
    r"""The LSTM update from the gate pre-activations, snnTorch's reset, state quantiser (``ops.quant`` of
    both states after the reset, as snnTorch's ``state_quant``) and firing (see :func:`slstm`); ``pooled``:
    the spikes fire on ``ops.pool`` of the membrane (the reset reads the unpooled one)."""
    threshold = p["threshold"]
    reset = delayed_reset(ops, p, state["mem"], threshold)
    syn = ops.sigmoid(f) * state["syn"] + ops.sigmoid(i) * ops.tanh(g)
    mem = reset_after(p["reset_mechanism"], ops.sigmoid(o) * ops.tanh(syn), reset, threshold)
    syn, mem = ops.quant(syn), ops.quant(mem)
    spk = fire(ops, ops.pool(mem) if pooled else mem, threshold, p["graded_spikes_factor"], p["inhibition"])
    return spk, {"syn": syn, "mem": mem}


@neuron_model("slstm", params=FIRING, state=("syn", "mem"), options=LSTM_OPTIONS, cell="linear", gates=4,
              state_quant=True, builtin=True)
def slstm(ops: Any, x: Any, state: dict[str, Any], p: dict[str, Any]) -> tuple[Any, dict]:
    r"""Spiking LSTM (snnTorch ``SLSTM``; ``torch.nn.LSTMCell``'s gate order i, f, g, o); ports ``spk``, ``syn``,
    ``mem``.

    .. math::
        (i, f, g, o) &= W_{ih} x[t] + b_{ih} + W_{hh} U[t-1] + b_{hh} \\
        I_{syn}[t] &= \sigma(f) I_{syn}[t-1] + \sigma(i) \tanh(g) \\
        U[t] &= \sigma(o) \tanh(I_{syn}[t]) - R[t]\,\theta \ \text{(subtract)},\
                (1 - R[t])\,\sigma(o) \tanh(I_{syn}[t]) \ \text{(zero)} \\
        S[t] &= g\,H(U[t] - \theta)

    with :math:`R[t] = \mathrm{sg}(H(U[t-1] - \theta))`.
    """
    i, f, g, o = ops.split(ops.project(x) + ops.recurrent(state["mem"]), 4)
    return lstm_update(ops, i, f, g, o, state, p)


@neuron_model("sconv2d_lstm", params=FIRING, state=("syn", "mem"), options=LSTM_OPTIONS, cell="conv2d", gates=4,
              spike_pool=True, state_quant=True, builtin=True)
def sconv2d_lstm(ops: Any, x: Any, state: dict[str, Any], p: dict[str, Any]) -> tuple[Any, dict]:
    r"""Spiking convolutional LSTM (snnTorch ``SConv2dLSTM``; gate order i, f, o, g); ports ``spk``, ``syn``,
    ``mem``.

    .. math::
        (i, f, o, g) &= W * [x[t], U[t-1]] + b \quad (\text{padding } k // 2) \\
        I_{syn}[t] &= \sigma(f) I_{syn}[t-1] + \sigma(i) \tanh(g) \\
        U[t] &= \sigma(o) \tanh(I_{syn}[t]) \text{ with snnTorch's reset, as } \texttt{slstm} \\
        S[t] &= g\,H(Q(U[t]) - \theta)

    :math:`Q` the node's ``pool`` (snnTorch's ``max_pool`` / ``avg_pool``: window = stride = ``pool_size``;
    the identity by default): ``spk`` has the pooled shape, ``syn``/``mem`` (and the reset) the unpooled one.
    """
    i, f, o, g = ops.split(ops.project(x) + ops.recurrent(state["mem"]), 4)
    return lstm_update(ops, i, f, g, o, state, p, pooled=True)
