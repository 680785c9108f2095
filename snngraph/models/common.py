r"""Pieces shared by snnTorch's models, written against ``ops`` (see :mod:`snngraph.ir.model`).

Notation: :math:`I[t]` input, :math:`U` membrane, :math:`\theta` threshold, :math:`g` graded-spike
factor, :math:`H` the spike function (Heaviside forward, surrogate backward) and
:math:`R[t] = \mathrm{sg}(H(U[t-1] - \theta))` the reset computed from the *previous* membrane and
detached, exactly as snnTorch 1.0.0 computes it. Each helper keeps snnTorch's order of operations,
so the derived kernels match it bit for bit.
"""

from __future__ import annotations

from typing import Any

from snngraph.ir.model import INHIBITION, RESET, RESET_DELAY, ParamSpec

FIRING = {"threshold": ParamSpec(1.0), "graded_spikes_factor": ParamSpec(1.0)}
"""snnTorch's ``SpikingNeuron`` parameters: threshold :math:`\theta` and spike amplitude :math:`g`."""
RESET_OPTIONS = {"reset_mechanism": RESET, "reset_delay": RESET_DELAY}
INHIBITING = {**RESET_OPTIONS, "inhibition": INHIBITION}
"""``RESET_OPTIONS`` and snnTorch's ``inhibition`` (the step passes ``p["inhibition"]`` to :func:`fire`)."""


def delayed_reset(ops: Any, p: dict[str, Any], mem: Any, threshold: Any) -> Any:
    r"""snnTorch's ``mem_reset``: :math:`R[t]`, the detached spike of the previous membrane (``None``: no reset)."""
    if p["reset_mechanism"] == "none":
        return None
    return ops.detach(ops.spike(mem - threshold))


def fire(ops: Any, mem: Any, threshold: Any, graded_spikes_factor: Any, inhibition: bool = False) -> Any:
    r"""snnTorch's ``fire``: :math:`S[t] = g\,H(q(U[t]) - \theta)`, ``q`` the state quantiser (``ops.quant``,
    applied again as snnTorch's ``fire`` does; idempotent for a quantiser's levels).

    With ``inhibition`` (snnTorch's ``fire_inhibition``) only each sample's largest membrane may spike:
    :math:`S[t] = g\,H(U[t] - \theta)\,M[t]`, :math:`M` the detached one-hot mask of the largest
    :math:`U - \theta` over all the sample's neurons (``ops.winner``, the first on ties). snnTorch takes
    the maximum over dim 1 only, which is the same for ``(B, N)`` layers and crashes on others; it also
    leaves out :math:`g` (here applied, as ``fire`` does) and quantises only once.
    """
    if inhibition:
        shifted = mem - threshold
        return ops.spike(shifted) * ops.winner(shifted) * graded_spikes_factor
    return ops.spike(ops.quant(mem) - threshold) * graded_spikes_factor


def leak(mechanism: str, x: Any, mem: Any, reset: Any, beta: Any, threshold: Any) -> Any:
    r"""snnTorch ``Leaky``'s state function (``beta`` already clamped).

    .. math:: U = \beta U + I - R\theta \ \text{(subtract)},\quad \beta ((1 - R) U) + I \ \text{(zero)},
              \quad \beta U + I \ \text{(none)}
    """
    if mechanism == "subtract":
        return beta * mem + x - reset * threshold
    if mechanism == "zero":
        return beta * ((1 - reset) * mem) + x
    return beta * mem + x


def reset_after(mechanism: str, mem: Any, reset: Any, threshold: Any) -> Any:
    r"""The delayed reset applied to a new membrane: :math:`U - R\theta` (subtract), :math:`U - R U` (zero)."""
    if mechanism == "subtract":
        return mem - reset * threshold
    if mechanism == "zero":
        return mem - reset * mem
    return mem


def reset_now(p: dict[str, Any], mem: Any, spk: Any, reset: Any, threshold: Any, graded_spikes_factor: Any) -> Any:
    r"""snnTorch's ``reset_delay=False`` branch: reset in the step that spiked.

    ``do_reset = spk / g - reset`` removes the reset already applied from the previous membrane
    (snnTorch's "avoid double reset") and carries the surrogate gradient of ``spk``:
    :math:`U \mathrel{-}= (S/g - R)\,\theta` (subtract) or :math:`(S/g - R)\,U` (zero).
    """
    mechanism = p["reset_mechanism"]
    if mechanism == "none" or p.get("reset_delay", True):
        return mem
    do_reset = spk / graded_spikes_factor - reset
    if mechanism == "subtract":
        return mem - do_reset * threshold
    return mem - do_reset * mem
