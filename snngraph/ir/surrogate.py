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
                   "spike_rate_escape", "SFS", "SSO", "LSO")
# Each one's hyper-parameters, in the order of its ``sg.surrogate`` factory (and of the text form).
SURROGATE_PARAMS: dict[str, tuple[str, ...]] = {
    "atan": ("alpha",), "fast_sigmoid": ("slope",), "sigmoid": ("slope",), "triangular": ("threshold",),
    "heaviside": (), "straight_through_estimator": (), "spike_rate_escape": ("beta", "slope"),
    "SFS": ("slope", "B"), "SSO": ("mean", "variance"), "LSO": ("slope",),
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


def checked_surrogate(name: str, params: tuple[tuple[str, float], ...], where: str) -> Surrogate:
    """A surrogate read from a file or text: a known name with exactly its parameters, each finite.

    Raises:
        GraphError: naming ``where``, for anything the ``sg.surrogate`` factories would not build.
    """
    if name not in SURROGATE_PARAMS:
        raise GraphError(f"{where}: unknown surrogate {name!r}")
    keys = tuple(k for k, _ in params)
    if keys != SURROGATE_PARAMS[name]:
        raise GraphError(f"{where}: surrogate {name!r} takes parameters {SURROGATE_PARAMS[name]}, got {keys}")
    for key, value in params:
        if not math.isfinite(value):
            raise GraphError(f"{where}: surrogate {name!r} parameter {key} must be finite, got {value!r}")
    return Surrogate(name, params)
