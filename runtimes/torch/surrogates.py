"""Torch implementation of the surrogate spikes described by :class:`snngraph.ir.surrogate.Surrogate`.

One autograd function serves every surrogate: the forward pass is the Heaviside step
``(x > 0)`` in the input's dtype, the backward pass looks the gradient formula up by the
surrogate's name. Each formula repeats snnTorch 1.0.0's expression operation for operation, so
gradients agree bit for bit in float64 (snnTorch itself returns float32 spikes, which rounds the
incoming gradient to float32; snngraph keeps the input dtype).

When no gradient is needed (inference, export tracing) the step is computed directly, without
the autograd function.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from snngraph.ir.errors import GraphError
from snngraph.ir.surrogate import Surrogate

__all__ = ["GRADIENTS", "apply_surrogate", "gradient_into", "spike_gradient"]


def _heaviside(x: Tensor) -> Tensor:
    return (x > 0).to(x.dtype)


def _atan(x: Tensor, grad: Tensor, alpha: float) -> Tensor:
    return alpha / 2 / (1 + (torch.pi / 2 * alpha * x).pow_(2)) * grad


def _fast_sigmoid(x: Tensor, grad: Tensor, slope: float) -> Tensor:
    return grad / (slope * torch.abs(x) + 1.0) ** 2


def _sigmoid(x: Tensor, grad: Tensor, slope: float) -> Tensor:
    """snnTorch's expression; far below threshold it overflows (``inf/inf``) and snnTorch returns
    nan, where the derivative is in fact ~0: those entries use the stable ``s (1 - s)`` form."""
    e = torch.exp(-slope * x)
    out = grad * slope * e / ((e + 1) ** 2)
    bad = torch.isnan(out) & ~torch.isnan(grad)
    if bad.any():
        s = torch.sigmoid(slope * x)
        out = torch.where(bad, grad * slope * s * (1 - s), out)
    return out


def _triangular(x: Tensor, grad: Tensor, threshold: float) -> Tensor:
    grad = grad * threshold
    return torch.where(x >= 0, -grad, grad)


def _heaviside_grad(x: Tensor, grad: Tensor) -> Tensor:
    return grad * _heaviside(x)


def _straight_through(x: Tensor, grad: Tensor) -> Tensor:
    return grad


def _spike_rate_escape(x: Tensor, grad: Tensor, beta: float, slope: float) -> Tensor:
    return grad * slope * torch.exp(-beta * torch.abs(x - 1))


def _sso(x: Tensor, grad: Tensor, mean: float, variance: float) -> Tensor:
    out = _heaviside(x)
    below = (~(x > 0)).to(grad.dtype)
    return grad * out + (grad * below) * ((torch.rand_like(x) - 0.5 + mean) * variance)


def _lso(x: Tensor, grad: Tensor, slope: float) -> Tensor:
    out = _heaviside(x)
    below = (~(x > 0)).to(grad.dtype)
    return grad * out + below * slope * grad


def _sfs(x: Tensor, grad: Tensor, slope: float, B: float) -> Tensor:
    return grad / (slope * torch.abs(x) + 1.0) ** 2 * (x > B).to(grad.dtype)


def _piecewise_quadratic(x: Tensor, grad: Tensor, alpha: float) -> Tensor:
    """SpikingJelly's ``PiecewiseQuadratic``: :math:`\\max(0, \\alpha - \\alpha^2 |x|)`."""
    x_abs = x.abs()
    return (grad * (-alpha ** 2 * x_abs + alpha)).masked_fill_(x_abs > 1 / alpha, 0)


def _piecewise_exp(x: Tensor, grad: Tensor, alpha: float) -> Tensor:
    """SpikingJelly's ``PiecewiseExp``: :math:`\\frac{\\alpha}{2} e^{-\\alpha |x|}`."""
    return alpha / 2 * (-alpha * x.abs()).exp_() * grad


def _soft_sign(x: Tensor, grad: Tensor, alpha: float) -> Tensor:
    """SpikingJelly's ``SoftSign``: :math:`\\frac{1}{2\\alpha (1/\\alpha + |x|)^2}`."""
    return grad / (2 * alpha * (1 / alpha + x.abs()).pow_(2))


def _super_spike(x: Tensor, grad: Tensor, alpha: float) -> Tensor:
    """SpikingJelly's ``SuperSpike``: :math:`\\alpha / (|x| + 1)^2`."""
    return alpha * grad / torch.pow(torch.abs(x) + 1.0, 2)


def _erf(x: Tensor, grad: Tensor, alpha: float) -> Tensor:
    """SpikingJelly's ``Erf``: :math:`\\frac{\\alpha}{\\sqrt\\pi} e^{-(\\alpha x)^2}`."""
    return grad * (-(x * alpha).pow_(2)).exp_() * (alpha / math.sqrt(math.pi))


GRADIENTS: dict[str, tuple[Callable[..., Tensor], tuple[str, ...]]] = {
    "atan": (_atan, ("alpha",)),
    "fast_sigmoid": (_fast_sigmoid, ("slope",)),
    "sigmoid": (_sigmoid, ("slope",)),
    "triangular": (_triangular, ("threshold",)),
    "heaviside": (_heaviside_grad, ()),
    "straight_through_estimator": (_straight_through, ()),
    "spike_rate_escape": (_spike_rate_escape, ("beta", "slope")),
    "SSO": (_sso, ("mean", "variance")),
    "LSO": (_lso, ("slope",)),
    "SFS": (_sfs, ("slope", "B")),
    "piecewise_quadratic": (_piecewise_quadratic, ("alpha",)),
    "piecewise_exp": (_piecewise_exp, ("alpha",)),
    "soft_sign": (_soft_sign, ("alpha",)),
    "super_spike": (_super_spike, ("alpha",)),
    "erf": (_erf, ("alpha",)),
}
"""Surrogate name -> (``grad(x, grad_output, **params)``, parameter names in order)."""


def spike_gradient(spec: Surrogate, x: Tensor, grad_output: Tensor) -> Tensor:
    """The surrogate's gradient with respect to ``x`` given the gradient of the spikes.

    A ``custom`` surrogate's function receives ``(x, grad_output.clone(), spikes)`` like
    snnTorch's ``CustomSurrogate``.
    """
    if spec.name == "custom":
        return spec.fn(x, grad_output.clone(), _heaviside(x))
    formula, _ = GRADIENTS[spec.name]
    return formula(x, grad_output, *(value for _, value in spec.params))


def _atan_into(like: Tensor, alpha: float) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    r"""``_atan`` in two passes: :math:`g / (2/\alpha + (\pi^2\alpha/2)\,x^2)`, the same function rounded
    differently (a few ulp)."""
    low, slope = like.new_tensor(2 / alpha), math.pi ** 2 * alpha / 2

    def grad(x: Tensor, g: Tensor, out: Tensor) -> Tensor:
        return torch.div(g, torch.addcmul(low, x, x, value=slope, out=out), out=out)

    return grad


FUSED_GRADIENTS: dict[str, Callable[..., Callable[[Tensor, Tensor, Tensor], Tensor]]] = {"atan": _atan_into}
"""Surrogates whose gradient :func:`gradient_into` computes in fewer passes (for the scans' loops)."""


def gradient_into(spec: Surrogate, like: Tensor) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """:func:`spike_gradient` for the inner loops of the scans, as ``grad(x, grad_output, out)`` on tensors
    of ``like``'s dtype and device: written into ``out`` (which may be ``x``) in two passes for the
    surrogates of :data:`FUSED_GRADIENTS` (equal up to rounding); otherwise ``spike_gradient``'s value, a
    tensor that is neither ``x`` nor ``grad_output`` (a copy where the formula returns one of them)."""
    fused = FUSED_GRADIENTS.get(spec.name)
    if fused is not None:
        return fused(like, *(value for _, value in spec.params))

    def grad(x: Tensor, g: Tensor, out: Tensor) -> Tensor:
        result = spike_gradient(spec, x, g)
        return result.clone() if result is g or result is x else result

    return grad


class _Spike(torch.autograd.Function):
    """Heaviside forward, surrogate backward; ``spec`` selects the backward formula."""

    @staticmethod
    def forward(x: Tensor, spec: Surrogate) -> Tensor:
        return _heaviside(x)

    @staticmethod
    def setup_context(ctx, inputs: tuple[Tensor, Surrogate], output: Tensor) -> None:  # torch.func needs this style
        ctx.save_for_backward(inputs[0])
        ctx.spec = inputs[1]

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        return spike_gradient(ctx.spec, x, grad_output), None


def _check(spec: Surrogate) -> None:
    if spec.name == "custom":
        if not callable(spec.fn):
            raise GraphError("surrogate 'custom' has no function; build it with sg.surrogate.custom_surrogate(f)")
        return
    entry = GRADIENTS.get(spec.name)
    if entry is None:
        raise GraphError(f"unknown surrogate {spec.name!r}; known: {', '.join(sorted(GRADIENTS))}, custom")
    names = tuple(key for key, _ in spec.params)
    if names != entry[1]:
        raise GraphError(f"surrogate {spec.name!r} takes parameters {entry[1]}, got {names}")


def apply_surrogate(spec: Surrogate, x: Tensor) -> Tensor:
    """Spike ``x`` (already shifted by the threshold): ``(x > 0)`` forward, ``spec``'s gradient back.

    Args:
        spec: the surrogate; its ``params`` must be the factory's arguments in order.
        x: membrane minus threshold, any floating dtype.

    Returns:
        Spikes as 0/1 in ``x``'s dtype.

    Raises:
        GraphError: ``spec`` names an unknown surrogate or has the wrong parameters.
    """
    _check(spec)
    if isinstance(x, Tensor) and not (x.requires_grad and torch.is_grad_enabled()):
        return _heaviside(x)
    if spec.name != "custom" and torch.compiler.is_compiling():  # one traceable op (see spike_op.py)
        from snngraph.runtimes.torch.spike_op import spike_op

        return spike_op(spec, x)
    return _Spike.apply(x, spec)
