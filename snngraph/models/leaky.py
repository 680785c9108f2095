r"""Leaky integrate-and-fire (snnTorch ``Leaky``) and the non-leaky integrate-and-fire neuron."""

from __future__ import annotations

from typing import Any

from snngraph.ir.model import DECAY, neuron_model
from snngraph.models.common import FIRING, INHIBITING, delayed_reset, fire, leak, reset_now


def _leaky_update(ops: Any, x: Any, state: dict[str, Any], p: dict[str, Any], beta: Any) -> tuple[Any, dict]:
    threshold, graded = p["threshold"], p["graded_spikes_factor"]
    reset = delayed_reset(ops, p, state["mem"], threshold)
    mem = ops.quant(leak(p["reset_mechanism"], x, state["mem"], reset, beta, threshold))
    spk = fire(ops, mem, threshold, graded, p["inhibition"])
    return spk, {"mem": reset_now(p, mem, spk, reset, threshold, graded)}


@neuron_model("leaky", params={"beta": DECAY, **FIRING}, state=("mem",), options=INHIBITING, builtin=True,
              state_quant=True)
def leaky(ops: Any, x: Any, state: dict[str, Any], p: dict[str, Any]) -> tuple[Any, dict]:
    r"""Leaky integrate-and-fire (snnTorch ``Leaky``); ports ``spk``, ``mem``.

    .. math::
        U[t] &= \beta U[t-1] + I[t] - R[t]\,\theta \qquad &\text{(subtract)} \\
        U[t] &= \beta (1 - R[t]) U[t-1] + I[t] &\text{(zero)} \\
        U[t] &= \beta U[t-1] + I[t] &\text{(none)} \\
        S[t] &= g\,H(U[t] - \theta)

    with :math:`\beta` clamped to [0, 1]; ``state_quant`` quantises :math:`U[t]` before it fires and
    ``inhibition`` lets only each sample's largest membrane spike (see :func:`~snngraph.models.common.fire`).
    With ``reset_delay=False`` the membrane is reset in the
    step that spiked: :math:`U[t] \mathrel{-}= (S[t]/g - R[t])\,\theta` (subtract) or :math:`(S[t]/g - R[t])\,U[t]`.
    """
    return _leaky_update(ops, x, state, p, ops.clamp(p["beta"], 0.0, 1.0))


@neuron_model("integrate_fire", params=FIRING, state=("mem",), options=INHIBITING, builtin=True,
              state_quant=True)
def integrate_fire(ops: Any, x: Any, state: dict[str, Any], p: dict[str, Any]) -> tuple[Any, dict]:
    r"""Integrate-and-fire without leak (``leaky`` with :math:`\beta = 1`); ports ``spk``, ``mem``.

    .. math:: U[t] = U[t-1] + I[t] - R[t]\,\theta, \qquad S[t] = g\,H(U[t] - \theta)
    """
    return _leaky_update(ops, x, state, p, 1.0)
