r"""Norse 1.1.0's non-spiking leaky integrator ``LICell`` (``li_feed_forward_step``)."""

from __future__ import annotations

from typing import Any

from snngraph.ir.model import neuron_model
from snngraph.models.norse_common import DT, MEMBRANE, SYNAPSE, current_decay, membrane_step


@neuron_model("norse_li", params={**SYNAPSE, **MEMBRANE, "dt": DT}, state=("v", "i"), spiking=False, builtin=True,
              fixed_in_state_dict=False)
def norse_li(ops: Any, x: Any, state: dict[str, Any], p: dict[str, Any]) -> tuple[Any, dict]:
    r"""Leaky integrator (Norse ``LICell``); its value is ``v`` (relative to ``v_leak``), ports ``v``, ``i``.

    .. math::
        i^* = i[t-1] + I[t], \qquad v[t] = v[t-1] + \Delta t\,\tau_{mem}^{-1} ((v_{leak} - v[t-1]) + i^*),
        \qquad i[t] = i^* - \Delta t\,\tau_{syn}^{-1} i^*

    Norse's ``LICell`` returns its absolute membrane; snngraph's value is relative to ``v_leak`` (the
    same for the default ``v_leak = 0``).
    """
    v_leak = p["v_leak"]
    i = state["i"] + x
    v = membrane_step(p, state["v"] + v_leak, i)
    return v - v_leak, {"v": v - v_leak, "i": current_decay(p, i)}
