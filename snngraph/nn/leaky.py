r"""First-order neurons: ``Leaky`` (snnTorch's), ``IntegrateFire`` (IF), ``LeakyIntegrator`` (LI) and
``AdaptiveLeaky`` (ALIF). Each computes through its kernel in ``snngraph.runtimes.torch.kernels``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from snngraph.nn.base import LIF, FiringNeuron, SpikingNeuron, register_value
from snngraph.runtimes.torch.kernels import (
    adaptive_leaky_step,
    integrate_fire_step,
    leaky_integrator_step,
    leaky_step,
)

__all__ = ["ALIF", "IF", "LI", "AdaptiveLeaky", "IntegrateFire", "Leaky", "LeakyIntegrator"]


class Leaky(LIF):
    r"""First-order leaky integrate-and-fire neuron with snnTorch 1.0.0's ``Leaky`` semantics.

    .. math::
        U[t] &= \beta U[t-1] + I[t] - R[t]\,\theta \qquad &\text{(subtract)} \\
        U[t] &= \beta (1 - R[t]) U[t-1] + I[t] &\text{(zero)} \\
        S[t] &= g\,H(U[t] - \theta), \qquad R[t] = \mathrm{sg}(H(U[t-1] - \theta))

    ``beta`` is clamped to [0, 1]; ``reset_delay=False`` resets in the step that spiked.

    Args:
        beta: membrane decay; a number or a (per-neuron) tensor.
        threshold: firing threshold :math:`\theta`.
        spike_grad: surrogate (``sg.surrogate`` spec, snnTorch surrogate or callable);
            ``None`` means ``sg.surrogate.atan()``.
        surrogate_disable: spike with a bare Heaviside step and no gradient.
        init_hidden: keep the state on the module (``nn.Sequential`` style).
        inhibition: only each sample's largest membrane may spike (see ``models.common.fire``).
        learn_beta: make ``beta`` a parameter.
        learn_threshold: make ``threshold`` a parameter.
        reset_mechanism: ``"subtract"``, ``"zero"`` or ``"none"``.
        state_quant: a quantiser applied to the state each step (``sg.functional.state_quant()``).
        output: with ``init_hidden``, also return the state.
        graded_spikes_factor: spike amplitude :math:`g`.
        learn_graded_spikes_factor: make ``graded_spikes_factor`` a parameter.
        reset_delay: reset one step after the spike (default) or in the same step.

    Example::

        lif = sg.nn.Leaky(beta=0.9)
        spk, mem = lif(cur)          # zero state
        spk, mem = lif(cur, mem)
    """

    snntorch_options = frozenset({"inhibition", "state_quant"})
    state_names = ("mem",)

    def __init__(
        self,
        beta: Any,
        threshold: Any = 1.0,
        spike_grad: Any = None,
        surrogate_disable: bool = False,
        init_hidden: bool = False,
        inhibition: bool = False,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        reset_mechanism: str = "subtract",
        state_quant: Any = False,
        output: bool = False,
        graded_spikes_factor: Any = 1.0,
        learn_graded_spikes_factor: bool = False,
        reset_delay: bool = True,
    ):
        super().__init__(
            beta,
            threshold=threshold,
            spike_grad=spike_grad,
            surrogate_disable=surrogate_disable,
            init_hidden=init_hidden,
            inhibition=inhibition,
            learn_beta=learn_beta,
            learn_threshold=learn_threshold,
            reset_mechanism=reset_mechanism,
            state_quant=state_quant,
            output=output,
            graded_spikes_factor=graded_spikes_factor,
            learn_graded_spikes_factor=learn_graded_spikes_factor,
        )
        self.reset_delay = reset_delay

    def forward(self, input_: Tensor, mem: Tensor | None = None) -> Any:
        """``(spk, mem)``; with ``init_hidden``: ``spk`` (``(spk, mem)`` if ``output``)."""
        return self._run(input_, (mem,))

    def _step(self, input_: Tensor, mem: Tensor) -> tuple[Tensor, Tensor]:
        return leaky_step(input_, mem, beta=self.beta, reset_delay=self.reset_delay, **self._fire_kwargs())

    def init_leaky(self) -> Tensor:
        """snnTorch's deprecated name of :meth:`reset_mem`."""
        return self.reset_mem()


class IntegrateFire(FiringNeuron):
    r"""Integrate-and-fire neuron: ``Leaky`` without leak (not in snnTorch).

    .. math:: U[t] = U[t-1] + I[t] - R[t]\,\theta, \qquad S[t] = g\,H(U[t] - \theta)

    Arguments as :class:`Leaky`'s, without ``beta``.
    """

    snntorch_options = frozenset({"inhibition", "state_quant"})
    state_names = ("mem",)

    def __init__(
        self,
        threshold: Any = 1.0,
        spike_grad: Any = None,
        surrogate_disable: bool = False,
        init_hidden: bool = False,
        inhibition: bool = False,
        learn_threshold: bool = False,
        reset_mechanism: str = "subtract",
        state_quant: Any = False,
        output: bool = False,
        graded_spikes_factor: Any = 1.0,
        learn_graded_spikes_factor: bool = False,
        reset_delay: bool = True,
    ):
        super().__init__(
            threshold=threshold,
            spike_grad=spike_grad,
            surrogate_disable=surrogate_disable,
            init_hidden=init_hidden,
            inhibition=inhibition,
            learn_threshold=learn_threshold,
            reset_mechanism=reset_mechanism,
            state_quant=state_quant,
            output=output,
            graded_spikes_factor=graded_spikes_factor,
            learn_graded_spikes_factor=learn_graded_spikes_factor,
        )
        self.reset_delay = reset_delay

    def forward(self, input_: Tensor, mem: Tensor | None = None) -> Any:
        """``(spk, mem)``; with ``init_hidden``: ``spk`` (``(spk, mem)`` if ``output``)."""
        return self._run(input_, (mem,))

    def _step(self, input_: Tensor, mem: Tensor) -> tuple[Tensor, Tensor]:
        return integrate_fire_step(input_, mem, reset_delay=self.reset_delay, **self._fire_kwargs())


class LeakyIntegrator(SpikingNeuron):
    r"""Non-spiking leaky integrator (LI), the usual readout layer; its output is the membrane.

    .. math:: U[t] = \beta U[t-1] + I[t]

    ``beta`` is clamped to [0, 1] like ``Leaky``'s. ``forward(input_, mem)`` returns
    ``(mem, mem)``; with ``init_hidden``: ``mem`` (``(mem, mem)`` if ``output``).

    Args:
        beta: membrane decay; a number or a (per-neuron) tensor.
        init_hidden: keep the state on the module.
        learn_beta: make ``beta`` a parameter.
        output: with ``init_hidden``, also return the state.
    """

    state_names = ("mem",)

    def __init__(self, beta: Any, init_hidden: bool = False, learn_beta: bool = False, output: bool = False):
        super().__init__(init_hidden=init_hidden, output=output)
        register_value(self, "beta", beta, learn_beta)

    def forward(self, input_: Tensor, mem: Tensor | None = None) -> Any:
        """``(mem, mem)``; with ``init_hidden``: ``mem`` (``(mem, mem)`` if ``output``)."""
        return self._run(input_, (mem,))

    def _step(self, input_: Tensor, mem: Tensor) -> tuple[Tensor, Tensor]:
        return leaky_integrator_step(input_, mem, beta=self.beta)


class AdaptiveLeaky(LIF):
    r"""Adaptive-threshold LIF (ALIF, Bellec et al. 2018), discretised like ``Leaky`` (not in snnTorch).

    With effective threshold :math:`\vartheta[t] = \theta + a\,b[t]` and
    :math:`Z[t-1] = H(U[t-1] - \vartheta[t-1])` the previous spike:

    .. math::
        b[t] &= \rho\,b[t-1] + (1 - \rho)\,Z[t-1] \\
        U[t] &= \beta U[t-1] + I[t] - \mathrm{sg}(Z[t-1])\,\vartheta[t-1] \\
        S[t] &= g\,H(U[t] - \vartheta[t])

    See :func:`~snngraph.runtimes.torch.kernels.adaptive_leaky_step` for the zero reset and
    ``reset_delay=False``. ``forward(input_, mem, b)`` returns ``(spk, mem, b)``.

    Args:
        beta: membrane decay.
        rho: decay of the adaptation variable :math:`b`, in [0, 1].
        adaptation: threshold increase :math:`a` per unit of :math:`b`.
        learn_rho: make ``rho`` a parameter.
        learn_adaptation: make ``adaptation`` a parameter.
        **others: as :class:`Leaky`.
    """

    state_names = ("mem", "b")

    def __init__(
        self,
        beta: Any,
        rho: Any = 0.9,
        adaptation: Any = 1.0,
        threshold: Any = 1.0,
        spike_grad: Any = None,
        surrogate_disable: bool = False,
        init_hidden: bool = False,
        inhibition: bool = False,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        reset_mechanism: str = "subtract",
        state_quant: Any = False,
        output: bool = False,
        graded_spikes_factor: Any = 1.0,
        learn_graded_spikes_factor: bool = False,
        reset_delay: bool = True,
        learn_rho: bool = False,
        learn_adaptation: bool = False,
    ):
        super().__init__(
            beta,
            threshold=threshold,
            spike_grad=spike_grad,
            surrogate_disable=surrogate_disable,
            init_hidden=init_hidden,
            inhibition=inhibition,
            learn_beta=learn_beta,
            learn_threshold=learn_threshold,
            reset_mechanism=reset_mechanism,
            state_quant=state_quant,
            output=output,
            graded_spikes_factor=graded_spikes_factor,
            learn_graded_spikes_factor=learn_graded_spikes_factor,
        )
        register_value(self, "rho", rho, learn_rho)
        register_value(self, "adaptation", adaptation, learn_adaptation)
        self.reset_delay = reset_delay

    def forward(self, input_: Tensor, mem: Tensor | None = None, b: Tensor | None = None) -> Any:
        """``(spk, mem, b)``; with ``init_hidden``: ``spk`` (``(spk, mem, b)`` if ``output``)."""
        return self._run(input_, (mem, b))

    def _step(self, input_: Tensor, mem: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return adaptive_leaky_step(
            input_,
            mem,
            b,
            beta=self.beta,
            rho=self.rho,
            adaptation=self.adaptation,
            reset_delay=self.reset_delay,
            **self._fire_kwargs(),
        )


IF = IntegrateFire
LI = LeakyIntegrator
ALIF = AdaptiveLeaky
