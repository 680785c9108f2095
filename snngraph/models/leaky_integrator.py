r"""The non-spiking leaky integrator (LI readout)."""

from __future__ import annotations

from typing import Any

from snngraph.ir.model import DECAY, neuron_model


@neuron_model("leaky_integrator", params={"beta": DECAY}, state=("mem",), spiking=False, builtin=True)
def leaky_integrator(ops: Any, x: Any, state: dict[str, Any], p: dict[str, Any]) -> tuple[Any, dict]:
    r"""Non-spiking leaky integrator (LI); its value is the membrane (port ``mem``).

    .. math:: U[t] = \beta U[t-1] + I[t]

    with :math:`\beta` clamped to [0, 1] like ``Leaky``'s.
    """
    mem = ops.clamp(p["beta"], 0.0, 1.0) * state["mem"] + x
    return mem, {"mem": mem}
