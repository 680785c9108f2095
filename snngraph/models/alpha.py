r"""snnTorch's ``Alpha`` neuron: excitatory and inhibitory synaptic currents."""

from __future__ import annotations

from typing import Any

import numpy as np

from snngraph.ir.model import DECAY, INHIBITION, OptionSpec, neuron_model
from snngraph.models.common import FIRING, fire


def _alpha_above_beta(values: dict[str, np.ndarray]) -> str | None:
    try:
        ok = bool(np.all(values["alpha"] > values["beta"]))
    except ValueError:  # shapes that do not broadcast: reported by shape inference
        return None
    return None if ok else "alpha must be greater than beta"


@neuron_model("alpha", params={"alpha": DECAY, "beta": DECAY, **FIRING}, state=("syn_exc", "syn_inh", "mem"),
              options={"reset_mechanism": OptionSpec(("zero", "subtract", "none")), "inhibition": INHIBITION},
              check=_alpha_above_beta, builtin=True, state_quant=True)
def alpha(ops: Any, x: Any, state: dict[str, Any], p: dict[str, Any]) -> tuple[Any, dict]:
    r"""Alpha neuron (snnTorch ``Alpha``); ports ``spk``, ``syn_exc``, ``syn_inh``, ``mem``.

    .. math::
        I_{exc}[t] &= \alpha I_{exc}[t-1] + I[t], \qquad I_{inh}[t] = \beta I_{inh}[t-1] - I[t] \\
        U[t] &= \tau_\alpha (I_{exc}[t] + I_{inh}[t]), \qquad
            \tau_\alpha = \frac{\log\alpha}{\log\beta - \log\alpha} + 1 \\
        S[t] &= g\,H(U[t] - \theta)

    The membrane depends on its previous value only through the reset: ``subtract`` takes
    :math:`\theta R[t]` from :math:`I_{exc}`, clears :math:`I_{inh}` and adds :math:`R[t]\,I_{inh}[t-1]`
    to :math:`U`; ``zero`` (snnTorch's default) clears all three. It needs :math:`\alpha > \beta`
    and, as in snnTorch, has no ``reset_delay`` option (the reset is always delayed).
    """
    threshold = p["threshold"]
    a, b = ops.clamp(p["alpha"], 0.0, 1.0), ops.clamp(p["beta"], 0.0, 1.0)
    syn_exc, syn_inh, mem = state["syn_exc"], state["syn_inh"], state["mem"]
    exc = a * syn_exc + x
    inh = b * syn_inh - x
    log_a = ops.log(a)
    new_mem = (log_a / (ops.log(b) - log_a) + 1) * (exc + inh)
    mechanism = p["reset_mechanism"]
    if mechanism != "none":
        reset = ops.detach(ops.spike(mem - threshold))
        if mechanism == "subtract":
            exc = exc - threshold * reset
            inh = inh - (b * syn_inh - x) * reset
            new_mem = new_mem - (-syn_inh) * reset
        else:
            exc, inh, new_mem = exc - exc * reset, inh - inh * reset, new_mem - new_mem * reset
    exc, inh, new_mem = ops.quant(exc), ops.quant(inh), ops.quant(new_mem)
    spk = fire(ops, new_mem, threshold, p["graded_spikes_factor"], p["inhibition"])
    return spk, {"syn_exc": exc, "syn_inh": inh, "mem": new_mem}

