r"""snnTorch 1.0.0's surrogate autograd classes, under its names and ``.apply`` signatures.

Each class is a ``torch.autograd.Function``; ``Cls.apply(input_, *hyper_parameters)`` spikes
``input_`` (the membrane already shifted by the threshold) with the Heaviside step
:math:`S = H(U) = [U > 0]` and back-propagates the class's surrogate gradient. The backward
formulas are the ones the spec-based surrogates use (``snngraph.runtimes.torch.surrogates``),
which repeat snnTorch's expressions operation for operation:

- ``ATan.apply(input_, alpha)``: :math:`\frac{\alpha/2}{1 + (\frac{\pi}{2}\alpha U)^2}`
- ``FastSigmoid.apply(input_, slope)``: :math:`1 / (k|U| + 1)^2`
- ``Sigmoid.apply(input_, slope)``: :math:`k e^{-kU} / (e^{-kU} + 1)^2`
- ``Triangular.apply(input_, threshold)``: :math:`\theta` if :math:`U < 0`, else :math:`-\theta`
- ``Heaviside.apply(input_)``: :math:`H(U)`
- ``StraightThroughEstimator.apply(input_)``: :math:`1`
- ``SpikeRateEscape.apply(input_, beta, slope)``: :math:`k e^{-\beta|U - 1|}`
- ``StochasticSpikeOperator.apply(input_, mean, variance)``: :math:`1` if :math:`U > 0`, else
  :math:`(\mathcal{U}[0,1) - 0.5 + \mu)\sigma^2`
- ``LeakySpikeOperator.apply(input_, slope)``: :math:`1` if :math:`U > 0`, else :math:`k`
- ``SparseFastSigmoid.apply(input_, slope, B)``: :math:`H(U - B) / (k|U| + 1)^2`
- ``CustomSurrogate.apply(input_, custom_surrogate_function)``: ``f(input_, grad_input, spikes)``

Departures from snnTorch 1.0.0 (deliberate):

- the spikes keep ``input_``'s dtype (snnTorch returns ``float32`` whatever the input);
- ``LeakySpikeOperator``'s backward returns a gradient for each forward input (snnTorch's
  returns one for two, so autograd raises ``RuntimeError`` on every backward pass);
- ``Sigmoid``'s gradient far below threshold is the derivative's value (~0), not ``nan``.

Example::

    import torch
    import snngraph as sg

    u = torch.randn(8, requires_grad=True)
    spk = sg.surrogate.ATan.apply(u, 2.0)        # snnTorch: snntorch.surrogate.ATan.apply(u, 2.0)
    spk.sum().backward()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from snngraph.ir.errors import GraphTypeError
from snngraph.ir.surrogate import Surrogate
from snngraph.runtimes.torch.surrogates import spike_gradient

__all__ = [
    "ATan",
    "CustomSurrogate",
    "FastSigmoid",
    "Heaviside",
    "LeakySpikeOperator",
    "Sigmoid",
    "SparseFastSigmoid",
    "SpikeRateEscape",
    "StochasticSpikeOperator",
    "StraightThroughEstimator",
    "Triangular",
]


class _SurrogateFunction(torch.autograd.Function):
    """Heaviside forward; the backward formula of the surrogate named ``_name``.

    Subclasses name the surrogate (a key of ``snngraph.runtimes.torch.surrogates.GRADIENTS``) and
    its hyper-parameters in ``.apply`` order.
    """

    _name: str = ""
    _params: tuple[str, ...] = ()

    @classmethod
    def _spec(cls, args: tuple[Any, ...]) -> Surrogate:
        if len(args) != len(cls._params):
            raise GraphTypeError(f"{cls.__name__}.apply takes input_ and {len(cls._params)} hyper-parameters "
                            f"{cls._params}, got {len(args)}")
        return Surrogate(cls._name, tuple(zip(cls._params, args, strict=True)))

    @staticmethod
    def forward(ctx: Any, input_: Tensor, *args: Any) -> Tensor:
        ctx.save_for_backward(input_)
        ctx.spec = ctx._forward_cls._spec(args)
        ctx.n_args = len(args)
        return (input_ > 0).to(input_.dtype)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        (input_,) = ctx.saved_tensors
        return (spike_gradient(ctx.spec, input_, grad_output), *([None] * ctx.n_args))


class ATan(_SurrogateFunction):
    """Arc-tangent surrogate: ``ATan.apply(input_, alpha)`` (snnTorch default ``alpha=2.0``)."""

    _name, _params = "atan", ("alpha",)


class FastSigmoid(_SurrogateFunction):
    """Fast-sigmoid surrogate (SuperSpike): ``FastSigmoid.apply(input_, slope)``."""

    _name, _params = "fast_sigmoid", ("slope",)


class Sigmoid(_SurrogateFunction):
    """Logistic-sigmoid surrogate: ``Sigmoid.apply(input_, slope)``."""

    _name, _params = "sigmoid", ("slope",)


class Triangular(_SurrogateFunction):
    """snnTorch's signed-step "triangular" surrogate: ``Triangular.apply(input_, threshold)``."""

    _name, _params = "triangular", ("threshold",)


class Heaviside(_SurrogateFunction):
    """No surrogate, the gradient is masked by the spike: ``Heaviside.apply(input_)``."""

    _name = "heaviside"


class StraightThroughEstimator(_SurrogateFunction):
    """Gradient passed through unchanged: ``StraightThroughEstimator.apply(input_)``."""

    _name = "straight_through_estimator"


class SpikeRateEscape(_SurrogateFunction):
    """Spike-rate escape (Boltzmann) surrogate: ``SpikeRateEscape.apply(input_, beta, slope)``."""

    _name, _params = "spike_rate_escape", ("beta", "slope")


class StochasticSpikeOperator(_SurrogateFunction):
    """Random sub-threshold gradient: ``StochasticSpikeOperator.apply(input_, mean, variance)``.

    The noise is drawn in the backward pass with ``torch.rand_like(input_)`` from torch's global
    generator, as snnTorch draws it.
    """

    _name, _params = "SSO", ("mean", "variance")


class LeakySpikeOperator(_SurrogateFunction):
    """Leaky-ReLU-shaped gradient: ``LeakySpikeOperator.apply(input_, slope)``.

    snnTorch 1.0.0's backward returns one gradient for its two inputs, so its backward pass
    always fails; this one returns ``(grad, None)``.
    """

    _name, _params = "LSO", ("slope",)


class SparseFastSigmoid(_SurrogateFunction):
    """Fast sigmoid clipped below ``B``: ``SparseFastSigmoid.apply(input_, slope, B)``."""

    _name, _params = "SFS", ("slope", "B")


class CustomSurrogate(torch.autograd.Function):
    """A user backward pass: ``CustomSurrogate.apply(input_, custom_surrogate_function)``.

    The function is called in the backward pass as ``f(input_, grad_input, spikes)`` with a copy
    of the incoming gradient and the forward spikes, and returns the gradient for ``input_``.
    """

    @staticmethod
    def forward(ctx: Any, input_: Tensor, custom_surrogate_function: Callable[..., Tensor]) -> Tensor:
        if not callable(custom_surrogate_function):
            raise GraphTypeError(f"CustomSurrogate.apply needs a callable f(input_, grad_input, spikes), "
                            f"got {custom_surrogate_function!r}")
        ctx.save_for_backward(input_)
        ctx.spec = Surrogate("custom", (), fn=custom_surrogate_function)
        return (input_ > 0).to(input_.dtype)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:
        (input_,) = ctx.saved_tensors
        return spike_gradient(ctx.spec, input_, grad_output), None
