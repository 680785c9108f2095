r"""Surrogate gradients with snnTorch 1.0.0's names, arguments and defaults.

Every factory returns a :class:`~snngraph.ir.surrogate.Surrogate`: plain data that the IR prints,
saves and compares, and that applies the spike when called on a tensor. The forward pass of
every surrogate is the Heaviside step :math:`S = H(U) = [U > 0]`; only the backward pass differs.
The torch implementations live in ``snngraph.runtimes.torch.surrogates`` and reproduce
snnTorch's backward formulas operation by operation.

Unlike snnTorch, the spike keeps the dtype of its input (snnTorch returns ``float32`` whatever
the input, which breaks ``float64`` and half-precision networks).

snnTorch's autograd classes are here too, under its names and ``.apply`` signatures
(``ATan.apply(input_, alpha)``, ``Heaviside.apply(input_)``, ...): see
:mod:`snngraph.surrogate_functions`.

Example::

    import snngraph as sg

    lif = sg.nn.Leaky(beta=0.9, spike_grad=sg.surrogate.fast_sigmoid(slope=25))
    sg.surrogate.from_spec("atan", (("alpha", 2.0),)) == sg.surrogate.atan()  # True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from snngraph.ir.errors import GraphError
from snngraph.ir.surrogate import Surrogate

_FUNCTIONS = (
    "ATan", "CustomSurrogate", "FastSigmoid", "Heaviside", "LeakySpikeOperator", "Sigmoid", "SparseFastSigmoid",
    "SpikeRateEscape", "StochasticSpikeOperator", "StraightThroughEstimator", "Triangular",
)
"""snnTorch's autograd classes, defined in ``snngraph.surrogate_functions`` (imported on first use,
so this module stays free of torch)."""

__all__ = [
    *_FUNCTIONS,
    "SURROGATES",
    "LSO",
    "SFS",
    "SSO",
    "Surrogate",
    "atan",
    "custom_surrogate",
    "erf",
    "fast_sigmoid",
    "from_spec",
    "heaviside",
    "piecewise_exp",
    "piecewise_quadratic",
    "sigmoid",
    "soft_sign",
    "spike_rate_escape",
    "straight_through_estimator",
    "super_spike",
    "triangular",
]


def _spec(name: str, **params: Any) -> Surrogate:
    """Build a :class:`Surrogate`, checking that every hyper-parameter is a finite number."""
    items = []
    for key, value in params.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise GraphError(f"surrogate {name}: {key} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise GraphError(f"surrogate {name}: {key} must be finite, got {value!r}")
        items.append((key, number))
    return Surrogate(name, tuple(items))


def atan(alpha: float = 2.0) -> Surrogate:
    r"""Arc-tangent surrogate (snnTorch ``atan``, Fang et al. 2021).

    .. math:: \frac{\partial S}{\partial U} = \frac{\alpha / 2}{1 + (\frac{\pi}{2} \alpha U)^2}
    """
    return _spec("atan", alpha=alpha)


def fast_sigmoid(slope: float = 25) -> Surrogate:
    r"""Fast-sigmoid surrogate (snnTorch ``fast_sigmoid``, SuperSpike).

    .. math:: \frac{\partial S}{\partial U} = \frac{1}{(k |U| + 1)^2}
    """
    return _spec("fast_sigmoid", slope=slope)


def sigmoid(slope: float = 25) -> Surrogate:
    r"""Logistic-sigmoid surrogate (snnTorch ``sigmoid``).

    .. math:: \frac{\partial S}{\partial U} = \frac{k\,e^{-kU}}{(e^{-kU} + 1)^2}
    """
    return _spec("sigmoid", slope=slope)


def triangular(threshold: float = 1) -> Surrogate:
    r"""snnTorch's ``triangular`` surrogate, reproduced as it is implemented.

    .. math:: \frac{\partial S}{\partial U} = \theta \text{ if } U < 0, \quad -\theta \text{ if } U \ge 0

    Note:
        Despite its name, snnTorch 1.0.0's gradient is this signed step, not a triangle; snngraph
        keeps snnTorch's behaviour so that models train identically.
    """
    return _spec("triangular", threshold=threshold)


def heaviside() -> Surrogate:
    r"""No surrogate: the gradient is the spike itself (snnTorch ``heaviside``).

    .. math:: \frac{\partial S}{\partial U} = H(U)
    """
    return Surrogate("heaviside")


def straight_through_estimator() -> Surrogate:
    r"""Straight-through estimator (snnTorch ``straight_through_estimator``).

    .. math:: \frac{\partial S}{\partial U} = 1
    """
    return Surrogate("straight_through_estimator")


def spike_rate_escape(beta: float = 1, slope: float = 25) -> Surrogate:
    r"""Spike-rate escape surrogate (snnTorch ``spike_rate_escape``, Gerstner & Kistler 2002).

    .. math:: \frac{\partial S}{\partial U} = k\,e^{-\beta |U - 1|}
    """
    return _spec("spike_rate_escape", beta=beta, slope=slope)


def SSO(mean: float = 0, variance: float = 0.2) -> Surrogate:
    r"""Stochastic spike operator (snnTorch ``SSO``): random sub-threshold gradient.

    .. math:: \frac{\partial S}{\partial U} = 1 \text{ if } U > 0, \quad
              (\mathcal{U}[0, 1) - 0.5 + \mu)\,\sigma^2 \text{ otherwise}

    The noise is drawn in the backward pass with ``torch.rand_like`` from torch's global
    generator, exactly as snnTorch draws it, so ``torch.manual_seed`` reproduces it.
    """
    return _spec("SSO", mean=mean, variance=variance)


def LSO(slope: float = 0.1) -> Surrogate:
    r"""Leaky spike operator: the gradient of a threshold-shifted leaky ReLU.

    .. math:: \frac{\partial S}{\partial U} = 1 \text{ if } U > 0, \quad k \text{ otherwise}

    Note:
        snnTorch 1.0.0's ``LSO`` cannot run: it calls the *stochastic* operator with the slope
        as its only extra argument (``TypeError: missing 'variance'``), and its
        ``LeakySpikeOperator.backward`` returns one gradient for two forward inputs. snngraph
        implements the formula that snnTorch's ``LeakySpikeOperator`` documents and computes.
    """
    return _spec("LSO", slope=slope)


def SFS(slope: float = 25, B: float = 1) -> Surrogate:
    r"""Sparse fast sigmoid (snnTorch ``SFS``, Perez-Nieves & Goodman 2021).

    .. math:: \frac{\partial S}{\partial U} = \frac{H(U - B)}{(k |U| + 1)^2}
    """
    return _spec("SFS", slope=slope, B=B)


def piecewise_quadratic(alpha: float = 1) -> Surrogate:
    r"""SpikingJelly's ``PiecewiseQuadratic`` (Esser et al. 2016).

    .. math:: \frac{\partial S}{\partial U} = \max(0,\ \alpha - \alpha^2 |U|)
    """
    return _spec("piecewise_quadratic", alpha=alpha)


def piecewise_exp(alpha: float = 1) -> Surrogate:
    r"""SpikingJelly's ``PiecewiseExp`` (Shrestha & Orchard 2018).

    .. math:: \frac{\partial S}{\partial U} = \frac{\alpha}{2} e^{-\alpha |U|}
    """
    return _spec("piecewise_exp", alpha=alpha)


def soft_sign(alpha: float = 2) -> Surrogate:
    r"""SpikingJelly's ``SoftSign``.

    .. math:: \frac{\partial S}{\partial U} = \frac{1}{2\alpha (1/\alpha + |U|)^2}
    """
    return _spec("soft_sign", alpha=alpha)


def super_spike(alpha: float = 1) -> Surrogate:
    r"""SpikingJelly's ``SuperSpike`` (Zenke & Ganguli 2018).

    .. math:: \frac{\partial S}{\partial U} = \frac{\alpha}{(|U| + 1)^2}
    """
    return _spec("super_spike", alpha=alpha)


def erf(alpha: float = 2) -> Surrogate:
    r"""SpikingJelly's ``Erf`` (Esser et al. 2015).

    .. math:: \frac{\partial S}{\partial U} = \frac{\alpha}{\sqrt{\pi}} e^{-\alpha^2 U^2}
    """
    return _spec("erf", alpha=alpha)


def custom_surrogate(custom_surrogate_function: Callable[..., Any]) -> Surrogate:
    """A user-defined backward pass (snnTorch ``custom_surrogate``).

    Args:
        custom_surrogate_function: called in the backward pass as
            ``f(input_, grad_input, spikes)`` with the membrane shifted by the threshold, a copy of
            the incoming gradient and the forward spikes; it returns the gradient with respect to
            ``input_``. Its hyper-parameters live inside the function, as in snnTorch.

    Returns:
        A ``Surrogate`` named ``custom``; it cannot be rebuilt from text or from a saved file.
    """
    if not callable(custom_surrogate_function):
        raise GraphError(
            f"custom_surrogate needs a callable f(input_, grad_input, spikes), got {custom_surrogate_function!r}"
        )
    return Surrogate("custom", (), fn=custom_surrogate_function)


SURROGATES: dict[str, Callable[..., Surrogate]] = {
    "atan": atan,
    "fast_sigmoid": fast_sigmoid,
    "sigmoid": sigmoid,
    "triangular": triangular,
    "heaviside": heaviside,
    "straight_through_estimator": straight_through_estimator,
    "spike_rate_escape": spike_rate_escape,
    "SSO": SSO,
    "LSO": LSO,
    "SFS": SFS,
    "piecewise_quadratic": piecewise_quadratic,
    "piecewise_exp": piecewise_exp,
    "soft_sign": soft_sign,
    "super_spike": super_spike,
    "erf": erf,
}
"""The surrogates that can be rebuilt from a name and parameters (every one but ``custom``)."""


def from_spec(name: str, params: Iterable[tuple[str, float]] = ()) -> Surrogate:
    """Rebuild a surrogate from its name and ``(key, value)`` pairs, as the IR prints it.

    Raises:
        GraphError: the name is unknown, it is ``custom`` (a Python function cannot be rebuilt),
            or a parameter is not one of the factory's arguments.
    """
    if name == "custom":
        raise GraphError("surrogate 'custom' holds a Python function and cannot be rebuilt from its name")
    factory = SURROGATES.get(name)
    if factory is None:
        raise GraphError(f"unknown surrogate {name!r}; known: {', '.join(sorted(SURROGATES))}")
    kwargs = dict(params)
    try:
        return factory(**kwargs)
    except TypeError:
        raise GraphError(f"surrogate {name!r} does not take parameters {sorted(kwargs)}") from None


def __getattr__(name: str) -> Any:
    if name in _FUNCTIONS:
        from snngraph import surrogate_functions

        return getattr(surrogate_functions, name)
    raise AttributeError(f"module 'snngraph.surrogate' has no attribute {name!r}")
