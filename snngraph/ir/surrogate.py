"""Surrogate-gradient specifications: plain data the IR can print, save and compare.

A :class:`Surrogate` names a surrogate function and its hyper-parameters. Calling it on a
tensor applies the spike (Heaviside forward, surrogate backward); the torch implementation
lives in ``snngraph.runtimes.torch.surrogates`` and is imported only when called, so the IR
stays free of torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from snngraph.ir.errors import GraphError

# Surrogates that can be printed, saved and parsed (``custom`` / ``callable`` hold user code).
SURROGATE_NAMES = ("atan", "fast_sigmoid", "sigmoid", "triangular", "heaviside", "straight_through_estimator",
                   "spike_rate_escape", "SFS", "SSO", "LSO",
                   # SpikingJelly's (its ATan and Sigmoid are ``atan`` and ``sigmoid(slope=alpha)``)
                   "piecewise_quadratic", "piecewise_exp", "soft_sign", "super_spike", "erf")
SPIKINGJELLY_SURROGATES = ("piecewise_quadratic", "piecewise_exp", "soft_sign", "super_spike", "erf")
"""SpikingJelly's surrogates that snnTorch does not have (tested against SpikingJelly, tests/test_sj_neurons.py)."""
# Each one's parameters and defaults, in the order of its ``sg.surrogate`` factory's arguments.
SURROGATE_PARAMS: dict[str, tuple[tuple[str, float], ...]] = {
    "atan": (("alpha", 2.0),), "fast_sigmoid": (("slope", 25.0),), "sigmoid": (("slope", 25.0),),
    "triangular": (("threshold", 1.0),), "heaviside": (), "straight_through_estimator": (),
    "spike_rate_escape": (("beta", 1.0), ("slope", 25.0)), "SFS": (("slope", 25.0), ("B", 1.0)),
    "SSO": (("mean", 0.0), ("variance", 0.2)), "LSO": (("slope", 0.1),),
    "piecewise_quadratic": (("alpha", 1.0),), "piecewise_exp": (("alpha", 1.0),), "soft_sign": (("alpha", 2.0),),
    "super_spike": (("alpha", 1.0),), "erf": (("alpha", 2.0),),
}


@dataclass(frozen=True, slots=True)
class Surrogate:
    """A named surrogate gradient, e.g. ``Surrogate("atan", (("alpha", 2.0),))``.

    Attributes:
        name: snnTorch's function name (``atan``, ``fast_sigmoid``, ...) or ``custom``.
        params: hyper-parameters as ``(key, value)`` pairs, in the factory's argument order.
        fn: the user function of a ``custom`` surrogate (not serialisable).
    """

    name: str
    params: tuple[tuple[str, float], ...] = ()
    fn: Callable[..., Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple((str(k), float(v)) for k, v in self.params))

    def kwargs(self) -> dict[str, float]:
        return dict(self.params)

    def __call__(self, x: Any) -> Any:
        from snngraph.runtimes.torch.surrogates import apply_surrogate

        return apply_surrogate(self, x)

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params)
        return f"{self.name}({args})"


DEFAULT_SURROGATE = Surrogate("atan", (("alpha", 2.0),))
"""snnTorch's default spike function, ``atan(alpha=2.0)``: the one place it is stated."""


def surrogate_of(node: Any) -> Surrogate:
    """The spike function a neuron node runs: its own, else its model's declared default (Norse's
    SuperSpike), else :data:`DEFAULT_SURROGATE`; what ``insert_surrogates`` writes in."""
    model = getattr(node, "model", None)
    return node.surrogate or getattr(model, "surrogate", None) or DEFAULT_SURROGATE


def checked_surrogate(spec: Any, where: str) -> Surrogate:
    """A surrogate read from a file or text, checked: a known name, parameters among its factory's
    arguments (each once) with finite values, defaults filled in, in the factory's order.

    Raises:
        GraphError: naming ``where``, the surrogate and the offending parameter.
    """
    if not isinstance(spec, Surrogate) or spec.name not in SURROGATE_PARAMS:
        raise GraphError(f"{where}: unknown surrogate {getattr(spec, 'name', spec)!r:.80}")
    defaults = dict(SURROGATE_PARAMS[spec.name])
    given: dict[str, float] = {}
    for key, value in spec.params:
        if key not in defaults:
            raise GraphError(f"{where}: surrogate {spec.name} takes {list(defaults) or 'no parameters'}, "
                             f"got a parameter {key!r:.40}")
        if key in given:
            raise GraphError(f"{where}: surrogate {spec.name} parameter {key} given twice")
        if not math.isfinite(value):
            raise GraphError(f"{where}: surrogate {spec.name} parameter {key} must be finite, got {value!r}")
        given[key] = value
    return Surrogate(spec.name, tuple((k, given.get(k, d)) for k, d in defaults.items()))
