r"""Recurrent neurons (snnTorch ``RLeaky`` and ``RSynaptic``): the previous spikes feed back through ``V``.

``V`` is ``ops.recurrent``: a dense linear layer (``all_to_all``: ``<node>.recurrent.weight`` and
``.bias``) or an element-wise scale ``V`` (one-to-one).
"""

from __future__ import annotations

from typing import Any

from snngraph.ir.model import DECAY, neuron_model
from snngraph.models.common import FIRING, INHIBITING, delayed_reset, fire, reset_after, reset_now
from snngraph.models.synaptic import synaptic_membrane


@neuron_model("rleaky", params={"beta": DECAY, **FIRING}, state=("mem",), options=INHIBITING, recurrent=True,
              builtin=True, state_quant=True)
def rleaky(ops: Any, x: Any, state: dict[str, Any], p: dict[str, Any]) -> tuple[Any, dict]:
    r"""Recurrent LIF (snnTorch ``RLeaky``); ports ``spk``, ``mem``.

    .. math::
        U[t] &= \beta U[t-1] + I[t] + V(S[t-1]) - R[t]\,\theta \qquad &\text{(subtract)} \\
        U[t] &= (1 - R[t])\,(\beta U[t-1] + I[t] + V(S[t-1])) &\text{(zero)} \\
        S[t] &= g\,H(U[t] - \theta)
    """
    threshold, graded = p["threshold"], p["graded_spikes_factor"]
    reset = delayed_reset(ops, p, state["mem"], threshold)
    mem = ops.clamp(p["beta"], 0.0, 1.0) * state["mem"] + x + ops.recurrent(state["spk"])
    mem = ops.quant(reset_after(p["reset_mechanism"], mem, reset, threshold))
    spk = fire(ops, mem, threshold, graded, p["inhibition"])
    return spk, {"mem": reset_now(p, mem, spk, reset, threshold, graded)}


@neuron_model("rsynaptic", params={"alpha": DECAY, "beta": DECAY, **FIRING}, state=("syn", "mem"),
              options=INHIBITING, recurrent=True, builtin=True, state_quant=True)
def rsynaptic(ops: Any, x: Any, state: dict[str, Any], p: dict[str, Any]) -> tuple[Any, dict]:
    r"""Recurrent current-based LIF (snnTorch ``RSynaptic``); ports ``spk``, ``syn``, ``mem``.

    .. math::
        I_{syn}[t] &= \alpha I_{syn}[t-1] + I[t] + V(S[t-1]) \\
        U[t] &= \beta U[t-1] + I_{syn}[t] - R[t]\,\theta \qquad &\text{(subtract)} \\
        S[t] &= g\,H(U[t] - \theta)

    Note:
        snnTorch 1.0.0's ``reset_delay=False`` branch of ``RSynaptic`` reads the *arguments*
        ``spk``/``mem`` and discards its result (and raises ``TypeError`` when ``spk`` is omitted),
        so it never resets early. snngraph applies the immediate reset the option means, exactly as
        ``Synaptic`` does.
    """
    syn = ops.clamp(p["alpha"], 0.0, 1.0) * state["syn"] + x + ops.recurrent(state["spk"])
    return synaptic_membrane(ops, syn, state, p)
