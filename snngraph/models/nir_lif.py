r"""NIR's LIF (and IF, with :math:`\beta = 1`) as NIR's equation discretises it: fire on the membrane
before any reset, then reset at once."""

from __future__ import annotations

from typing import Any

from snngraph.ir.model import DECAY, RESET, neuron_model
from snngraph.models.common import FIRING


@neuron_model("nir_lif", params={"beta": DECAY, **FIRING}, state=("mem",), options={"reset_mechanism": RESET},
              builtin=True)
def nir_lif(ops: Any, x: Any, state: dict[str, Any], p: dict[str, Any]) -> tuple[Any, dict]:
    r"""LIF with NIR's immediate reset (what ``sg.from_nir`` builds for foreign graphs that state a
    subtract reset in the spiking step); ports ``spk``, ``mem``.

    .. math::
        U^*[t] &= \beta U[t-1] + I[t], \qquad Z[t] = H(U^*[t] - \theta), \qquad S[t] = g\,Z[t] \\
        U[t] &= U^*[t] - \mathrm{sg}(Z[t])\,\theta \ \text{(subtract)}, \quad
            (1 - \mathrm{sg}(Z[t]))\,U^*[t] \ \text{(zero)}, \quad U^*[t] \ \text{(none)}

    It differs from ``leaky(reset_delay=False)`` (snnTorch's) only while a reset membrane stays
    above threshold: snnTorch's then needs :math:`U^* > 2\theta` to fire again, NIR's fires on
    :math:`U^* > \theta` (docs/nir.md). The reset is detached, like ``leaky``'s delayed one.
    """
    threshold = p["threshold"]
    mem = ops.clamp(p["beta"], 0.0, 1.0) * state["mem"] + x
    z = ops.spike(mem - threshold)
    fired = ops.detach(z)
    if p["reset_mechanism"] == "subtract":
        mem = mem - fired * threshold
    elif p["reset_mechanism"] == "zero":
        mem = mem - fired * mem
    return z * p["graded_spikes_factor"], {"mem": mem}
