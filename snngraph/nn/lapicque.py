r"""Lapicque's RC neuron with snnTorch 1.0.0 semantics."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from snngraph.ir.errors import GraphError
from snngraph.models.lapicque import is_given
from snngraph.nn.base import LIF
from snngraph.runtimes.torch.kernels import lapicque_rc, lapicque_step

__all__ = ["Lapicque"]


class Lapicque(LIF):
    r"""Lapicque's RC neuron, forward-Euler (snnTorch 1.0.0's ``Lapicque``).

    .. math::
        U[t] &= I[t]\,R\,\frac{1}{RC}\,\Delta t + \left(1 - \frac{\Delta t}{RC}\right) U[t-1]
            - R[t]\,\theta \qquad \text{(subtract; zero clears the new membrane)} \\
        S[t] &= g\,H(U[t] - \theta)

    Give ``beta`` (optionally with one of ``R``, ``C``) or both ``R`` and ``C``; the missing
    values are derived as snnTorch does (:func:`~snngraph.runtimes.torch.kernels.lapicque_rc`):
    with ``beta`` only, :math:`R = 1` and :math:`C = \Delta t / \log(1/\beta)`. ``beta`` itself
    is not used by the update.

    Note:
        snnTorch 1.0.0 rejects per-neuron tensor ``beta`` (it tests ``not self.beta``), fails at
        the first step when ``beta``, ``R`` and ``C`` are all given, and with ``learn_beta``
        derives ``C`` once at construction, so a second ``backward`` fails. Here per-neuron
        ``beta`` works, all three raise ``GraphError``, and a learnable ``beta`` re-derives
        ``R``/``C`` every step (the ``R``/``C`` buffers follow, detached).

    Args:
        beta: membrane decay, in (0, 1).
        R: resistance.
        C: capacitance.
        time_step: :math:`\Delta t`.
        graded_spikes_factor: spike amplitude (after snnTorch's arguments; snnTorch fixes it to 1).
        **others: as :class:`~snngraph.nn.Leaky` (no ``reset_delay``: the reset is delayed).
    """

    snntorch_options = frozenset({"inhibition", "state_quant"})
    state_names = ("mem",)

    def __init__(
        self,
        beta: Any = False,
        R: Any = False,
        C: Any = False,
        time_step: Any = 1,
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
    ):
        has_beta, has_r, has_c = is_given(beta), is_given(R), is_given(C)
        if learn_beta and not has_beta:
            raise GraphError("Lapicque: learn_beta needs beta (with R and C, beta is only derived)")
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
        self.register_buffer("time_step", time_step if isinstance(time_step, Tensor) else torch.as_tensor(time_step))
        c_arg = torch.as_tensor(C) if has_beta and has_c else C
        r_value, c_value = lapicque_rc(
            self.beta if has_beta else None, R if has_r else None, c_arg if has_c else None, self.time_step
        )
        self.register_buffer("R", torch.as_tensor(r_value))
        self.register_buffer("C", torch.as_tensor(c_value))
        if not has_beta:
            self.register_buffer("beta", torch.exp(torch.ones(1) * (-self.time_step / (R * C))))
        self._derived = None if not has_beta else ("R" if has_c else "C")

    def _rc(self) -> tuple[Tensor, Tensor]:
        """``(R, C)``: the buffers, or re-derived from a learnable ``beta``."""
        if not isinstance(self.beta, nn.Parameter):
            return self.R, self.C
        R, C = lapicque_rc(
            self.beta,
            self.R if self._derived == "C" else None,
            self.C if self._derived == "R" else None,
            self.time_step,
            check=False,
        )
        setattr(self, self._derived, (R if self._derived == "R" else C).detach())
        return R, C

    def forward(self, input_: Tensor, mem: Tensor | None = None) -> Any:
        """``(spk, mem)``; with ``init_hidden``: ``spk`` (``(spk, mem)`` if ``output``)."""
        return self._run(input_, (mem,))

    def _step(self, input_: Tensor, mem: Tensor) -> tuple[Tensor, Tensor]:
        R, C = self._rc()
        return lapicque_step(input_, mem, R=R, C=C, time_step=self.time_step, **self._fire_kwargs())

    def init_lapicque(self) -> Tensor:
        """snnTorch's deprecated name of :meth:`reset_mem`."""
        return self.reset_mem()
