r"""Norse 1.1.0's spiking LIF cells: ``LIFCell``, ``LIFBoxCell`` and ``LIFRecurrentCell``.

Each step repeats Norse's functional step (``lif_feed_forward_step``, ``lif_box_feed_forward_step``,
``lif_step``) operation for operation; see :mod:`snngraph.models.norse_common` for the membrane
carried relative to ``v_leak`` and the SuperSpike surrogate. Norse fires on the integrated membrane
and resets it in the same step; the membrane reads the current of the same step (no lag).
"""

from __future__ import annotations

from typing import Any

from snngraph.ir.model import neuron_model
from snngraph.models.norse_common import (
    DT,
    FIRING,
    MEMBRANE,
    RESET_METHOD,
    SUPERSPIKE,
    SYNAPSE,
    current_decay,
    membrane_step,
    reset_value,
)

_LIF = {**SYNAPSE, **MEMBRANE, **FIRING, "dt": DT}


@neuron_model("norse_lif", params=_LIF, state=("v", "i"), builtin=True, surrogate=SUPERSPIKE,
              fixed_in_state_dict=False)
def norse_lif(ops: Any, x: Any, state: dict[str, Any], p: dict[str, Any]) -> tuple[Any, dict]:
    r"""Current-based LIF (Norse ``LIFCell``); ports ``spk``, ``v`` (relative to ``v_leak``), ``i``.

    .. math::
        i^* &= i[t-1] + I[t], \qquad
        v^* = v[t-1] + \Delta t\,\tau_{mem}^{-1} ((v_{leak} - v[t-1]) + i^*) \\
        z[t] &= H(v^* - v_{th}), \qquad v[t] = (1 - z[t])\,v^* + z[t]\,v_{reset}, \qquad
        i[t] = i^* - \Delta t\,\tau_{syn}^{-1} i^*

    As in Norse, the reset is not detached (the surrogate gradient flows through it) and the stored
    current is already decayed for the next step.
    """
    v_leak = p["v_leak"]
    v = state["v"] + v_leak
    i = state["i"] + x
    v = membrane_step(p, v, i)
    z = ops.spike(v - p["v_th"])
    return z, {"v": reset_value(z, v, p["v_reset"]) - v_leak, "i": current_decay(p, i)}


@neuron_model("norse_lif_box", params={**MEMBRANE, **FIRING, "dt": DT}, state=("v",),
              options={"reset_method": RESET_METHOD}, builtin=True, surrogate=SUPERSPIKE,
              fixed_in_state_dict=False)
def norse_lif_box(ops: Any, x: Any, state: dict[str, Any], p: dict[str, Any]) -> tuple[Any, dict]:
    r"""LIF without a current (Norse ``LIFBoxCell``); ports ``spk``, ``v`` (relative to ``v_leak``).

    .. math::
        v^* &= v[t-1] + \Delta t\,\tau_{mem}^{-1} ((I[t] + v_{leak}) - v[t-1]), \qquad z[t] = H(v^* - v_{th}) \\
        v[t] &= (1 - z)\,v^* + z\,v_{reset} \ \text{(value)}, \qquad (1 - z)\,v^* + z\,(v^* - v_{th})
            \ \text{(subtract)}

    (``reset_method``: Norse's ``reset_value`` / ``reset_subtract``; the reset is not detached).
    """
    v_leak = p["v_leak"]
    v = state["v"] + v_leak
    v = v + p["dt"] * p["tau_mem_inv"] * (x + v_leak - v)
    z = ops.spike(v - p["v_th"])
    v = reset_value(z, v, p["v_reset"]) if p["reset_method"] == "value" else (1 - z) * v + z * (v - p["v_th"])
    return z, {"v": v - v_leak}


@neuron_model("norse_lif_recurrent", params=_LIF, state=("v", "i"), recurrent=True, builtin=True,
              surrogate=SUPERSPIKE, fixed_in_state_dict=False)
def norse_lif_recurrent(ops: Any, x: Any, state: dict[str, Any], p: dict[str, Any]) -> tuple[Any, dict]:
    r"""Recurrent current-based LIF (Norse ``LIFRecurrentCell``, its ``lif_step``); ports ``spk``, ``v``, ``i``.

    ``x`` is the input already weighted (``input_weights``, a ``linear`` node without bias in front);
    the recurrence is ``recurrent.weight`` (Norse's ``recurrent_weights``) without bias.

    .. math::
        i^* &= i[t-1] + I[t] + W_{rec}\,z[t-1], \qquad
        v^* = v[t-1] + \Delta t\,\tau_{mem}^{-1} ((v_{leak} - v[t-1]) + i^*) \\
        z[t] &= H(v^* - v_{th}), \qquad v[t] = (1 - \mathrm{sg}(z))\,v^* + \mathrm{sg}(z)\,v_{reset}, \qquad
        i[t] = i^* - \Delta t\,\tau_{syn}^{-1} i^*

    Unlike ``LIFCell``, Norse detaches the reset here.
    """
    v_leak = p["v_leak"]
    v = state["v"] + v_leak
    i = state["i"] + x + ops.recurrent(state["spk"])
    v = membrane_step(p, v, i)
    z = ops.spike(v - p["v_th"])
    return z, {"v": reset_value(ops.detach(z), v, p["v_reset"]) - v_leak, "i": current_decay(p, i)}
