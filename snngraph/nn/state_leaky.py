r"""``StateLeaky`` and ``LinearLeaky``: snnTorch 1.0.0's whole-sequence state-only leaky neurons.

Both take the whole sequence ``(T, B, C)`` at once and compute the ``state_leaky`` model
(:mod:`snngraph.models.state_leaky`), snnTorch's causal exponential convolution written as its
recurrence: through its fused scan (one kernel over all steps) for ``tau > 0``, else its derived
step kernel.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn

from snngraph.ir.errors import GraphError
from snngraph.models.state_leaky import truncated
from snngraph.nn.base import FiringNeuron
from snngraph.runtimes.torch.kernels import kernel_for
from snngraph.runtimes.torch.ops import TorchOps
from snngraph.runtimes.torch.scan import ScanConfig, leaky_scan

__all__ = ["LinearLeaky", "StateLeaky"]


class StateLeaky(FiringNeuron):
    r"""State-only leaky neuron over a whole sequence (snnTorch ``StateLeaky``).

    .. math::
        U[t] &= \sum_{s=0}^{\min(K, T) - 1} e^{-s/\tau}\, I[t-s], \qquad \tau = \frac{1}{1 - \beta + 10^{-12}} \\
        S[t] &= g\,H(U[t] - \theta)

    :math:`K` is ``kernel_truncation_steps`` (``None``: the whole sequence). There is no reset.
    ``forward(input_)`` takes ``(T, B, C)`` and returns ``(spk, mem)`` (``output=True``, the
    default) or ``mem``, both ``(T, B, C)``.

    Args:
        beta: the decay, a number or a ``(channels,)`` / ``(1,)`` tensor; kept as ``tau`` (a
            parameter when ``learn_beta``); ``beta`` reads back ``(tau - 1) / tau``.
        channels: the channel count ``C`` (checks a per-channel ``beta``).
        threshold, spike_grad, surrogate_disable, learn_threshold, graded_spikes_factor,
        learn_graded_spikes_factor: as for every ``sg.nn`` neuron.
        learn_beta: train ``tau``.
        state_quant: not supported (``GraphError``).
        output: return ``(spk, mem)`` rather than ``mem``.
        kernel_truncation_steps: keep only the ``K`` newest taps of the kernel.

    ``state_dict`` keys are snnTorch's: ``threshold``, ``graded_spikes_factor``,
    ``reset_mechanism_val``, ``beta`` (the constructor's value, unused, as in snnTorch) and ``tau``.

    Differs from snnTorch 1.0.0: snnTorch scales the spikes by ``graded_spikes_factor`` twice (its
    ``fire`` already applies it, then ``forward`` again), emitting :math:`g^2 H(U - \theta)`; snngraph
    emits :math:`g\,H(U - \theta)` as documented. The ``(T, B, C)`` shape is checked up front.

    Example::

        lif = sg.nn.StateLeaky(beta=0.9, channels=4)
        spk, mem = lif(torch.randn(16, 2, 4))
    """

    def __init__(self, beta: Any, channels: int, threshold: Any = 1.0, spike_grad: Any = None,
                 surrogate_disable: bool = False, learn_beta: bool = False, learn_threshold: bool = False,
                 state_quant: Any = False, output: bool = True, graded_spikes_factor: Any = 1.0,
                 learn_graded_spikes_factor: bool = False, kernel_truncation_steps: int | None = None):
        super().__init__(threshold=threshold, spike_grad=spike_grad, surrogate_disable=surrogate_disable,
                         learn_threshold=learn_threshold, state_quant=state_quant, output=output,
                         graded_spikes_factor=graded_spikes_factor,
                         learn_graded_spikes_factor=learn_graded_spikes_factor)
        if not output and (spike_grad is not None or surrogate_disable or learn_threshold
                           or learn_graded_spikes_factor or not bool(torch.all(torch.as_tensor(
                               graded_spikes_factor) == 1.0))):
            warnings.warn(f"{type(self).__name__}: spike-related settings are unused when output=False "
                          "(no spikes emitted).", UserWarning, stacklevel=2)
        if kernel_truncation_steps is not None and (isinstance(kernel_truncation_steps, bool) or not isinstance(
                kernel_truncation_steps, int) or kernel_truncation_steps < 1):
            raise GraphError(f"{type(self).__name__}: kernel_truncation_steps must be a positive int or None, "
                             f"got {kernel_truncation_steps!r}")
        self.kernel_truncation_steps = kernel_truncation_steps
        beta = beta if isinstance(beta, Tensor) else torch.as_tensor(beta)
        # registered before tau exists, as snnTorch's LIF does: ``beta`` itself reads (tau - 1) / tau
        if learn_beta:
            self._parameters["beta"] = nn.Parameter(beta)
        else:
            self._buffers["beta"] = beta
        if beta.shape not in ((channels,), (), (1,)):
            raise GraphError(f"{type(self).__name__}: beta shape {tuple(beta.shape)} must be either ({channels},) "
                             "or (1,)")
        tau = 1 / (1 - beta + 1e-12)
        if learn_beta:
            self.tau = nn.Parameter(tau)
        else:
            self.register_buffer("tau", tau)

    @property
    def beta(self) -> Tensor:  # type: ignore[override]
        r""":math:`\beta = (\tau - 1) / \tau`, read from the (perhaps learnt) ``tau``."""
        return (self.tau - 1) / self.tau

    def _step(self, input_: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        return kernel_for("state_leaky").step(input_, *state, tau=self.tau, threshold=self.threshold,
                                              graded_spikes_factor=self.graded_spikes_factor,
                                              spike_grad=self.spike_grad)

    def _membrane(self, input_: Tensor) -> Tensor:
        """The membrane ``(T, B, C)`` of a sequence, truncated to the newest ``K`` taps if asked."""
        if input_.dim() != 3:
            raise GraphError(f"{type(self).__name__}: expects a (T, B, C) sequence, got shape {tuple(input_.shape)}")
        if bool((self.tau > 0).all()):  # the model's fused scan (Leaky's, decay exp(-1/tau), membrane only)
            decay = torch.exp(-1.0 / self.tau)
            one = input_.new_ones(())
            _, full = leaky_scan(input_, torch.zeros_like(input_[0]), decay, one, one, ScanConfig(spiking=False))
        else:  # a growing state: the derived step kernel, step by step
            mem, mems = torch.zeros_like(input_[0]), []
            for x_t in input_:
                mem = self._step(x_t, mem)[1]
                mems.append(mem)
            full = torch.stack(mems)
        steps = self.kernel_truncation_steps
        if steps is None or steps >= len(full):
            return full
        older = torch.cat([torch.zeros_like(full[:steps]), full[:-steps]])
        tau = self.tau.reshape(-1) if self.tau.dim() else self.tau
        return truncated(TorchOps(None), full, older, tau, steps)

    def _emit(self, mem: Tensor) -> Any:
        if not self.output:
            return mem
        self.spk = self.fire(mem)
        return self.spk, mem

    def forward(self, input_: Tensor) -> Any:
        """``(spk, mem)`` of the whole sequence ``input_`` ``(T, B, C)``, or ``mem`` if not ``output``."""
        return self._emit(self._membrane(input_))

    def fire_inhibition(self, batch_size: int, mem: Tensor) -> Tensor:
        raise NotImplementedError("StateLeaky does not support inhibition; use standard Leaky for inhibition paths.")

    def mem_reset(self, mem: Tensor) -> Tensor:
        raise NotImplementedError("StateLeaky does not maintain stepwise resets; mem_reset is not applicable.")


class LinearLeaky(StateLeaky):
    r"""``nn.Linear(in_features, out_features)`` at every step, then :class:`StateLeaky` (snnTorch ``LinearLeaky``).

    .. math:: U = \mathrm{StateLeaky}(W x[t] + b), \qquad S[t] = g\,H(U[t] - \theta)

    ``forward(input_)`` takes ``(T, B, in_features)``; it keeps ``self.mem`` (and ``self.spk``)
    like snnTorch. The linear layer is ``self.linear`` (``state_dict`` keys ``linear.weight``,
    ``linear.bias`` after :class:`StateLeaky`'s).
    """

    def __init__(self, beta: Any, in_features: int, out_features: int, bias: bool = True, device: Any = None,
                 dtype: Any = None, threshold: Any = 1.0, spike_grad: Any = None, surrogate_disable: bool = False,
                 learn_beta: bool = False, learn_threshold: bool = False, state_quant: Any = False,
                 output: bool = True, graded_spikes_factor: Any = 1.0, learn_graded_spikes_factor: bool = False,
                 kernel_truncation_steps: int | None = None):
        super().__init__(beta=beta, channels=out_features, threshold=threshold, spike_grad=spike_grad,
                         surrogate_disable=surrogate_disable, learn_beta=learn_beta,
                         learn_threshold=learn_threshold, state_quant=state_quant, output=output,
                         graded_spikes_factor=graded_spikes_factor,
                         learn_graded_spikes_factor=learn_graded_spikes_factor,
                         kernel_truncation_steps=kernel_truncation_steps)
        self.linear = nn.Linear(in_features=in_features, out_features=out_features, device=device, dtype=dtype,
                                bias=bias)

    def forward(self, input_: Tensor) -> Any:
        """``(spk, mem)`` of the projected sequence, or ``mem`` if not ``output``."""
        if input_.dim() != 3:
            raise GraphError(f"LinearLeaky: expects a (T, B, in_features) sequence, got shape {tuple(input_.shape)}")
        self.mem = self._membrane(self.linear(input_))
        return self._emit(self.mem)
