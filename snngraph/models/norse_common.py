r"""Pieces shared by Norse 1.1.0's models (``norse.torch.functional``), written against ``ops``.

Norse integrates its ODEs with forward Euler over a time step ``dt``, parameterised by *inverse*
time constants (``tau_mem_inv``, ``tau_syn_inv``); its membrane starts at ``v_leak``. snngraph's fresh
state is zeros (``net.init_state``, ONNX step mode), so every Norse model carries its membrane
*relative to* ``v_leak``: the state ``v`` is Norse's ``v - v_leak`` (equal to Norse's ``v`` for the
default ``v_leak = 0``, bit for bit). The step adds ``v_leak`` back, repeats Norse's expression
operation for operation, and subtracts it again.

Norse's default spike function, ``method="super"``, is its ``SuperSpike``: Heaviside forward and
:math:`\partial z / \partial x = 1 / (|x| + 1)^2` backward. Norse 1.1.0 ignores the ``alpha`` it is
given (100 by default; the code's comment says ``beta -> alpha`` but the formula has no ``alpha``), so
the gradient is exactly snnTorch's ``fast_sigmoid(slope=1)``, which the models declare as their
surrogate.
"""

from __future__ import annotations

from typing import Any

from snngraph.ir.model import OptionSpec, ParamSpec
from snngraph.ir.surrogate import Surrogate

SUPERSPIKE = Surrogate("fast_sigmoid", (("slope", 1.0),))
"""Norse 1.1.0's ``method="super"`` (any ``alpha``): :math:`1 / (|x| + 1)^2`."""

DT = ParamSpec(0.001, 0.0, None, strict_low=True, per_neuron=False, learnable=False, constant=True)
"""The Euler time step (Norse's ``dt``, a float on the cell): one scalar, fixed."""

MEMBRANE = {"tau_mem_inv": ParamSpec(100.0, 0.0, None), "v_leak": ParamSpec(0.0)}
FIRING = {"v_th": ParamSpec(1.0), "v_reset": ParamSpec(0.0)}
SYNAPSE = {"tau_syn_inv": ParamSpec(200.0, 0.0, None)}
RESET_METHOD = OptionSpec(("value", "subtract"))
"""``LIFBoxParameters.reset_method``: Norse's ``reset_value`` or ``reset_subtract``."""


def membrane_step(p: dict[str, Any], v: Any, i: Any) -> Any:
    r"""Norse's Euler membrane update :math:`v + \Delta t\,\tau_{mem}^{-1} ((v_{leak} - v) + i)`."""
    return v + p["dt"] * p["tau_mem_inv"] * ((p["v_leak"] - v) + i)


def current_decay(p: dict[str, Any], i: Any) -> Any:
    r"""Norse's Euler current decay :math:`i + (-\Delta t)\,\tau_{syn}^{-1} i`."""
    return i + -p["dt"] * p["tau_syn_inv"] * i


def reset_value(z: Any, v: Any, v_reset: Any) -> Any:
    r"""Norse's ``reset_value``: :math:`(1 - z) v + z\,v_{reset}` (``z`` as given: detached or not)."""
    return (1 - z) * v + z * v_reset
