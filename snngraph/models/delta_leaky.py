r"""Delta LIF: a leaky membrane that spikes on large *changes* (snnTorch 1.0.0's ``DeltaLeaky``)."""

from __future__ import annotations

from typing import Any

from snngraph.ir.model import ParamSpec, neuron_model


@neuron_model("delta_leaky", params={"beta": ParamSpec(None, 0.0, 1.0), "delta_threshold": ParamSpec(1.0)},
              state=("mem", "mem_prev"), builtin=True)
def delta_leaky(ops: Any, x: Any, state: dict[str, Any], p: dict[str, Any]) -> tuple[Any, dict]:
    r"""Delta LIF; ports ``spk``, ``mem``, ``mem_prev`` (the membrane one step earlier).

    .. math::
        U[t] &= \beta U[t-1] + I[t] \\
        S[t] &= H(|U[t] - U[t-1]| - \delta)

    No reset (a delta neuron encodes change), no graded-spike factor and ``beta`` not clamped,
    exactly as snnTorch computes it; :math:`\delta` is ``delta_threshold``.
    """
    mem = state["mem"]
    mem_next = p["beta"] * mem + x
    spk = ops.spike(ops.abs(mem_next - mem) - p["delta_threshold"])
    return spk, {"mem": mem_next, "mem_prev": mem}
