r"""Current-based LIF (snnTorch ``Synaptic``)."""

from __future__ import annotations

from typing import Any

from snngraph.ir.model import DECAY, neuron_model
from snngraph.models.common import FIRING, INHIBITING, delayed_reset, fire, reset_after, reset_now


def synaptic_membrane(ops: Any, syn: Any, state: dict[str, Any], p: dict[str, Any]) -> tuple[Any, dict]:
    """The membrane, spike and immediate reset shared by ``synaptic`` and ``rsynaptic`` (``syn`` is new)."""
    threshold, graded = p["threshold"], p["graded_spikes_factor"]
    reset = delayed_reset(ops, p, state["mem"], threshold)
    mem = reset_after(p["reset_mechanism"], ops.clamp(p["beta"], 0.0, 1.0) * state["mem"] + syn, reset, threshold)
    mem, syn = ops.quant(mem), ops.quant(syn)
    spk = fire(ops, mem, threshold, graded, p["inhibition"])
    return spk, {"syn": syn, "mem": reset_now(p, mem, spk, reset, threshold, graded)}


@neuron_model("synaptic", params={"alpha": DECAY, "beta": DECAY, **FIRING}, state=("syn", "mem"),
              options=INHIBITING, builtin=True, state_quant=True)
def synaptic(ops: Any, x: Any, state: dict[str, Any], p: dict[str, Any]) -> tuple[Any, dict]:
    r"""Current-based LIF (snnTorch ``Synaptic``); ports ``spk``, ``syn``, ``mem``.

    .. math::
        I_{syn}[t] &= \alpha I_{syn}[t-1] + I[t] \\
        U[t] &= \beta U[t-1] + I_{syn}[t] - R[t]\,\theta \qquad &\text{(subtract)} \\
        U[t] &= (1 - R[t])\,(\beta U[t-1] + I_{syn}[t]) &\text{(zero)} \\
        S[t] &= g\,H(U[t] - \theta)

    :math:`\alpha, \beta` are clamped to [0, 1]. Unlike ``Leaky``, snnTorch's zero reset clears the
    *new* membrane, input included; the synaptic current is never reset. ``state_quant`` quantises
    :math:`U[t]` and :math:`I_{syn}[t]`; ``inhibition`` as ``leaky``'s.
    """
    syn = ops.clamp(p["alpha"], 0.0, 1.0) * state["syn"] + x
    return synaptic_membrane(ops, syn, state, p)
