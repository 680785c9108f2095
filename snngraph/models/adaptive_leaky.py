r"""Adaptive-threshold LIF (ALIF, Bellec et al. 2018), discretised like snnTorch's ``Leaky``."""

from __future__ import annotations

from typing import Any

from snngraph.ir.model import DECAY, ParamSpec, neuron_model
from snngraph.models.common import FIRING, RESET_OPTIONS, leak


@neuron_model("adaptive_leaky", params={"beta": DECAY, "rho": ParamSpec(0.9, 0.0, 1.0, clamped=True),
                                        "adaptation": ParamSpec(1.0), **FIRING},
              state=("mem", "b"), options=RESET_OPTIONS, builtin=True)
def adaptive_leaky(ops: Any, x: Any, state: dict[str, Any], p: dict[str, Any]) -> tuple[Any, dict]:
    r"""Adaptive-threshold LIF; ports ``spk``, ``mem``, ``b`` (threshold adaptation).

    Every spike raises the threshold, which relaxes back with :math:`\rho`. With
    :math:`\vartheta[t] = \theta + a\,b[t]` the effective threshold and
    :math:`Z[t-1] = H(U[t-1] - \vartheta[t-1])` the previous spike recomputed from the state:

    .. math::
        b[t] &= \rho\,b[t-1] + (1 - \rho)\,Z[t-1] \\
        U[t] &= \beta U[t-1] + I[t] - \mathrm{sg}(Z[t-1])\,\vartheta[t-1] \qquad &\text{(subtract)} \\
        S[t] &= g\,H(U[t] - \vartheta[t])

    :math:`\beta, \rho` are clamped to [0, 1]; :math:`Z` in the adaptation keeps its surrogate
    gradient (BPTT through the threshold, as in Bellec et al.). With ``adaptation = 0`` this is
    ``leaky``. With ``reset_delay=False`` the spike is folded into ``b`` at the end of the step
    instead: :math:`b[t] = \rho\,b[t-1] + (1-\rho)\,S[t]/g`, and step :math:`t` fires against
    :math:`\theta + a\,b[t-1]` with snnTorch's immediate reset by that threshold.
    """
    threshold, adaptation, graded = p["threshold"], p["adaptation"], p["graded_spikes_factor"]
    rho, beta = ops.clamp(p["rho"], 0.0, 1.0), ops.clamp(p["beta"], 0.0, 1.0)
    mem, b, mechanism = state["mem"], state["b"], p["reset_mechanism"]
    if not p["reset_delay"]:
        theta = threshold + adaptation * b
        reset = None if mechanism == "none" else ops.detach(ops.spike(mem - theta))
        mem = leak(mechanism, x, mem, reset, beta, theta)
        z = ops.spike(mem - theta)
        if mechanism != "none":
            do_reset = z - reset
            mem = mem - do_reset * (theta if mechanism == "subtract" else mem)
        return z * graded, {"mem": mem, "b": rho * b + (1 - rho) * z}
    theta_prev = threshold + adaptation * b
    z_prev = ops.spike(mem - theta_prev)
    b = rho * b + (1 - rho) * z_prev
    mem = leak(mechanism, x, mem, ops.detach(z_prev), beta, theta_prev)
    return ops.spike(mem - (threshold + adaptation * b)) * graded, {"mem": mem, "b": b}
