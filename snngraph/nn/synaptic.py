r"""Second-order neurons with snnTorch 1.0.0 semantics: ``Synaptic`` and ``Alpha``."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from snngraph.ir.errors import GraphError
from snngraph.nn.base import LIF, register_value
from snngraph.runtimes.torch.kernels import alpha_step, synaptic_step

__all__ = ["Alpha", "Synaptic"]


class Synaptic(LIF):
    r"""Current-based LIF with a synaptic current (snnTorch 1.0.0's ``Synaptic``).

    .. math::
        I_{syn}[t] &= \alpha I_{syn}[t-1] + I[t] \\
        U[t] &= \beta U[t-1] + I_{syn}[t] - R[t]\,\theta \qquad &\text{(subtract)} \\
        U[t] &= (1 - R[t])\,(\beta U[t-1] + I_{syn}[t]) &\text{(zero)} \\
        S[t] &= g\,H(U[t] - \theta), \qquad R[t] = \mathrm{sg}(H(U[t-1] - \theta))

    Args:
        alpha: synaptic current decay, clamped to [0, 1].
        beta: membrane decay, clamped to [0, 1].
        learn_alpha: make ``alpha`` a parameter.
        graded_spikes_factor: spike amplitude :math:`g` (snnTorch fixes it to 1 for ``Synaptic``;
            this and ``learn_graded_spikes_factor`` come after snnTorch's arguments).
        **others: as :class:`~snngraph.nn.Leaky`.

    Example::

        syn_lif = sg.nn.Synaptic(alpha=0.8, beta=0.9)
        spk, syn, mem = syn_lif(cur, syn, mem)
    """

    snntorch_options = frozenset({"inhibition", "state_quant"})
    state_names = ("syn", "mem")

    def __init__(
        self,
        alpha: Any,
        beta: Any,
        threshold: Any = 1.0,
        spike_grad: Any = None,
        surrogate_disable: bool = False,
        init_hidden: bool = False,
        inhibition: bool = False,
        learn_alpha: bool = False,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        reset_mechanism: str = "subtract",
        state_quant: Any = False,
        output: bool = False,
        reset_delay: bool = True,
        graded_spikes_factor: Any = 1.0,
        learn_graded_spikes_factor: bool = False,
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
        register_value(self, "alpha", alpha, learn_alpha)
        self.reset_delay = reset_delay

    def forward(self, input_: Tensor, syn: Tensor | None = None, mem: Tensor | None = None) -> Any:
        """``(spk, syn, mem)``; with ``init_hidden``: ``spk`` (all three if ``output``)."""
        return self._run(input_, (syn, mem))

    def _step(self, input_: Tensor, syn: Tensor, mem: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return synaptic_step(
            input_, syn, mem, alpha=self.alpha, beta=self.beta, reset_delay=self.reset_delay, **self._fire_kwargs()
        )

    def init_synaptic(self) -> tuple[Tensor, Tensor]:
        """snnTorch's deprecated name of :meth:`reset_mem`."""
        return self.reset_mem()


class Alpha(LIF):
    r"""Alpha-kernel neuron with excitatory and inhibitory currents (snnTorch 1.0.0's ``Alpha``).

    .. math::
        I_{exc}[t] &= \alpha I_{exc}[t-1] + I[t], \qquad I_{inh}[t] = \beta I_{inh}[t-1] - I[t] \\
        U[t] &= \tau_\alpha (I_{exc}[t] + I_{inh}[t]), \qquad
            \tau_\alpha = \frac{\log\alpha}{\log\beta - \log\alpha} + 1 \\
        S[t] &= g\,H(U[t] - \theta)

    The default reset is ``"zero"`` (clears all three state variables); ``"subtract"`` takes
    :math:`\theta` from :math:`I_{exc}`, clears :math:`I_{inh}` and adds the previous
    :math:`I_{inh}` to :math:`U`. There is no ``reset_delay`` option. ``alpha`` is clamped to
    [0, 1] at construction and must exceed ``beta``, and ``beta`` must not be 1.

    Note:
        snnTorch 1.0.0 raises ``TypeError`` for ``learn_alpha=True`` (it assigns the clamped
        tensor over the new parameter); here ``alpha`` becomes a parameter holding the clamped
        value.

    Args:
        alpha: excitatory current decay.
        beta: inhibitory current decay.
        learn_alpha: make ``alpha`` a parameter.
        graded_spikes_factor: spike amplitude (after snnTorch's arguments; snnTorch fixes it to 1).
        **others: as :class:`~snngraph.nn.Leaky`.
    """

    snntorch_options = frozenset({"inhibition", "state_quant"})
    state_names = ("syn_exc", "syn_inh", "mem")

    def __init__(
        self,
        alpha: Any,
        beta: Any,
        threshold: Any = 1.0,
        spike_grad: Any = None,
        surrogate_disable: bool = False,
        init_hidden: bool = False,
        inhibition: bool = False,
        learn_alpha: bool = False,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        reset_mechanism: str = "zero",
        state_quant: Any = False,
        output: bool = False,
        graded_spikes_factor: Any = 1.0,
        learn_graded_spikes_factor: bool = False,
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
        clamped = (alpha if isinstance(alpha, Tensor) else torch.as_tensor(alpha)).clamp(0, 1)
        register_value(self, "alpha", clamped.detach() if learn_alpha else clamped, learn_alpha)
        if bool((self.alpha <= self.beta).any()):
            raise GraphError("Alpha: alpha must be greater than beta")
        if bool((self.beta == 1).any()):
            raise GraphError("Alpha: beta cannot be 1 (tau_alpha = log(alpha) / (log(beta) - log(alpha)) + 1)")

    def forward(
        self,
        input_: Tensor,
        syn_exc: Tensor | None = None,
        syn_inh: Tensor | None = None,
        mem: Tensor | None = None,
    ) -> Any:
        """``(spk, syn_exc, syn_inh, mem)``; with ``init_hidden``: ``spk`` (all four if ``output``)."""
        return self._run(input_, (syn_exc, syn_inh, mem))

    def _step(
        self, input_: Tensor, syn_exc: Tensor, syn_inh: Tensor, mem: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return alpha_step(input_, syn_exc, syn_inh, mem, alpha=self.alpha, beta=self.beta, **self._fire_kwargs())

    def init_alpha(self) -> tuple[Tensor, Tensor, Tensor]:
        """snnTorch's deprecated name of :meth:`reset_mem`."""
        return self.reset_mem()
