r"""SpikingJelly 2.0's ``IFNode``, ``LIFNode`` and ``ParametricLIFNode``, with its charge / fire / reset order.

SpikingJelly charges the membrane, fires on the charged membrane :math:`H[t]` (firing at
:math:`H[t] \ge \theta`, where snnTorch fires at :math:`>`) and resets at once:

.. math::
    H[t] &= f(V[t-1], X[t]) \qquad\qquad S[t] = \Theta(H[t] - \theta) \\
    V[t] &= H[t] - \tilde S[t]\,\theta \ \text{(soft reset, SpikingJelly's } v\_reset=\text{None)} \\
    V[t] &= \tilde S[t]\,V_{reset} + (1 - \tilde S[t])\,H[t] \ \text{(hard reset to } V_{reset})

with :math:`\tilde S = \mathrm{sg}(S)` when ``detach_reset`` else :math:`S`. :math:`\Theta(u) = [u \ge 0]`
is computed as :math:`1 - H(-u)` with the node's surrogate :math:`H`: the forward pass is
SpikingJelly's and, every SpikingJelly surrogate being even, so is the gradient.

SpikingJelly starts the membrane at :math:`V_{reset}` (0 for the soft reset); the IR starts every
state at zero, so the state ``v`` holds :math:`V - V_{reset}` (it *is* :math:`V` for the default
:math:`V_{reset} = 0` and for the soft reset), and the equations below are computed in it
(:math:`H - V_{reset} = (V - V_{reset}) + \dots`, firing on :math:`H - V_{reset} \ge \theta - V_{reset}`):
for :math:`V_{reset} = 0` that is SpikingJelly's arithmetic operation for operation, otherwise it
differs by rounding only. Parameters keep SpikingJelly's names; a traced
``ParametricLIFNode``'s learnable ``w`` keeps its ``state_dict`` key (``<module>.w``), and the fixed
parameters stay out of the ``state_dict`` (SpikingJelly keeps them as attributes), so a traced
model's ``state_dict`` loads into the compiled net and back.
"""

from __future__ import annotations

from typing import Any

from snngraph.ir.model import ParamSpec, neuron_model

# Python floats in SpikingJelly, so not learnable here either (and the IF/LIF scans take them as constants)
_FIRING = {"v_threshold": ParamSpec(1.0, learnable=False), "v_reset": ParamSpec(0.0, learnable=False)}
_OPTIONS = {"reset": ("hard", "soft"), "detach_reset": (False, True)}
_DECAY = {**_OPTIONS, "decay_input": (True, False)}


def _fire_reset(ops: Any, h: Any, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    r"""SpikingJelly's ``neuronal_fire`` and reset on the charged membrane, given as :math:`h = H - V_{reset}`
    (:math:`H` itself for the soft reset): :math:`S = \Theta(H - \theta)`, then
    :math:`V - V_{reset} = (1 - \tilde S)\,h` (hard) or :math:`V = H - \tilde S\theta` (soft)."""
    if p["reset"] == "soft":
        spike = 1.0 - ops.spike(p["v_threshold"] - h)  # [H - threshold >= 0], SpikingJelly's heaviside
        s = ops.detach(spike) if p["detach_reset"] else spike
        return spike, {"v": h - s * p["v_threshold"]}
    spike = 1.0 - ops.spike((p["v_threshold"] - p["v_reset"]) - h)
    s = ops.detach(spike) if p["detach_reset"] else spike
    return spike, {"v": (1.0 - s) * h}


@neuron_model("sj_if", params=_FIRING, state=("v",), options=_OPTIONS, builtin=True,
              fixed_in_state_dict=False)
def sj_if(ops: Any, x: Any, state: dict[str, Any], p: dict[str, Any]) -> tuple[Any, dict]:
    r"""SpikingJelly ``IFNode``; ports ``spk``, ``v``.

    .. math:: H[t] = V[t-1] + X[t]
    """
    return _fire_reset(ops, state["v"] + x, p)


@neuron_model("sj_lif", params={"tau": ParamSpec(2.0, 1.0, strict_low=True, learnable=False), **_FIRING},
              state=("v",), options=_DECAY, builtin=True, fixed_in_state_dict=False)
def sj_lif(ops: Any, x: Any, state: dict[str, Any], p: dict[str, Any]) -> tuple[Any, dict]:
    r"""SpikingJelly ``LIFNode``; ports ``spk``, ``v``.

    .. math::
        H[t] &= V[t-1] + \frac{X[t] - (V[t-1] - V_{reset})}{\tau} \qquad \text{(decay\_input)} \\
        H[t] &= V[t-1] - \frac{V[t-1] - V_{reset}}{\tau} + X[t] \qquad \text{(otherwise)}

    with :math:`V_{reset} = 0` in the decay for the soft reset, and :math:`\tau > 1`.
    """
    v, tau = state["v"], p["tau"]
    return _fire_reset(ops, v + (x - v) / tau if p["decay_input"] else v - v / tau + x, p)


@neuron_model("sj_plif", params={"w": ParamSpec(0.0, per_neuron=False), **_FIRING}, state=("v",), options=_DECAY,
              builtin=True, fixed_in_state_dict=False)
def sj_plif(ops: Any, x: Any, state: dict[str, Any], p: dict[str, Any]) -> tuple[Any, dict]:
    r"""SpikingJelly ``ParametricLIFNode`` (Fang et al. 2021): ``LIFNode`` with a learnable
    :math:`1/\tau = \sigma(w)`, :math:`w_0 = -\ln(\tau_0 - 1)` (``init_tau`` :math:`\tau_0`; 2 gives 0);
    ports ``spk``, ``v``.

    .. math::
        H[t] &= V[t-1] + (X[t] - (V[t-1] - V_{reset}))\,\sigma(w) \qquad \text{(decay\_input)} \\
        H[t] &= V[t-1] - (V[t-1] - V_{reset})\,\sigma(w) + X[t] \qquad \text{(otherwise)}
    """
    v, q = state["v"], ops.sigmoid(p["w"])
    return _fire_reset(ops, v + (x - v) * q if p["decay_input"] else v - v * q + x, p)
