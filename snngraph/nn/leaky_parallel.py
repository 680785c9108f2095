r"""``LeakyParallel``: snnTorch 1.0.0's whole-sequence leaky neuron built on ``torch.nn.RNN``.

It keeps snnTorch's ``nn.RNN`` (so parameters, their initialisation and ``state_dict`` keys are
snnTorch's) and runs it: torch's fused ReLU RNN is the ``leaky_parallel`` model's membrane update
(:mod:`snngraph.models.leaky_parallel`) over all steps at once; ``step_by_step`` runs the model's
derived kernel instead, and the tests hold the two equal.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from snngraph.ir.errors import GraphError
from snngraph.nn.base import _no_gradient_spike, register_value
from snngraph.runtimes.torch.kernels import kernel_for
from snngraph.surrogate import atan

__all__ = ["LeakyParallel"]


class LeakyParallel(nn.Module):
    r"""Leaky neuron over a whole sequence with a fused input layer (snnTorch ``LeakyParallel``).

    .. math::
        U[t] &= \mathrm{ReLU}(W_{ih}\,x[t] + b_{ih} + W_{hh}\,U[t-1] + b_{hh}) \\
        S[t] &= g\,H(U[t] - \theta)

    ``W_hh`` is diagonal (``weight_hh_enable=False``, the default: each neuron leaks into itself
    only, its gradient masked to the diagonal) or dense, and set from ``beta`` (clamped to [0, 1])
    when given, else left at ``nn.RNN``'s random initialisation; it is trained only with
    ``learn_beta``. No reset. ``forward(input_)`` takes ``(L, N, input_size)`` (or unbatched
    ``(L, input_size)``) and returns the spikes ``(L, N, hidden_size)``.

    Args:
        input_size, hidden_size, bias, dropout, device, dtype: ``nn.RNN``'s (``dropout`` does
            nothing for its single layer, and ``nn.RNN`` warns so, as in snnTorch).
        beta: the decay (a number, or a ``(1,)`` or ``(hidden_size,)`` tensor), or ``None``.
        threshold, spike_grad, surrogate_disable, learn_threshold, graded_spikes_factor,
        learn_graded_spikes_factor: as for every ``sg.nn`` neuron.
        learn_beta: train ``rnn.weight_hh_l0``.
        weight_hh_enable: a dense ``W_hh`` instead of the diagonal one.

    Differs from snnTorch 1.0.0: a per-neuron ``beta`` of length ``hidden_size`` sets the diagonal
    of ``W_hh`` (snnTorch silently ignores it and keeps the random weights); ``surrogate_disable``
    spikes keep the input's dtype (snnTorch returns float32).

    Example::

        lif = sg.nn.LeakyParallel(input_size=784, hidden_size=128, beta=0.9)
        spk = lif(torch.rand(25, 32, 784))
    """

    def __init__(self, input_size: int, hidden_size: int, beta: Any = None, bias: bool = True,
                 threshold: Any = 1.0, dropout: float = 0.0, spike_grad: Any = None, surrogate_disable: bool = False,
                 learn_beta: bool = False, learn_threshold: bool = False, graded_spikes_factor: Any = 1.0,
                 learn_graded_spikes_factor: bool = False, weight_hh_enable: bool = False, device: Any = None,
                 dtype: Any = None):
        super().__init__()
        self.rnn = nn.RNN(input_size, hidden_size, num_layers=1, nonlinearity="relu", bias=bias, batch_first=False,
                          dropout=dropout, device=device, dtype=dtype)
        if beta is not None and not isinstance(beta, Tensor):
            beta = torch.as_tensor([beta])
        self.register_buffer("beta", None if beta is None else beta.clamp(0, 1))
        self.hidden_size = hidden_size
        if spike_grad is not None and not callable(spike_grad):
            raise GraphError(f"LeakyParallel: spike_grad must be callable, got {spike_grad!r}")
        self.spike_grad = atan() if spike_grad is None else spike_grad
        self._beta_to_weight_hh()
        self.diagonal = not weight_hh_enable
        if self.diagonal:
            self.weight_hh_enable()
            if learn_beta:
                self.rnn.weight_hh_l0.register_hook(self.grad_hook)
        if not learn_beta:
            self.rnn.weight_hh_l0.requires_grad_(False)
        register_value(self, "threshold", threshold, learn_threshold)
        register_value(self, "graded_spikes_factor", graded_spikes_factor, learn_graded_spikes_factor)
        self.surrogate_disable = surrogate_disable
        if surrogate_disable:
            self.spike_grad = _no_gradient_spike

    def _beta_to_weight_hh(self) -> None:
        """``W_hh`` filled from ``beta``: every entry for a single value, row ``i`` with ``beta[i]`` per neuron."""
        if self.beta is None:
            return
        with torch.no_grad():
            if self.beta.numel() == 1:
                self.rnn.weight_hh_l0.fill_(self.beta.reshape(()).item())
            elif self.beta.shape == (self.hidden_size,):
                self.rnn.weight_hh_l0.copy_(self.beta.reshape(-1, 1).expand(-1, self.hidden_size))
            else:
                raise GraphError("LeakyParallel: beta must be either a single value or of length 'hidden_size'.")

    def weight_hh_enable(self) -> None:
        """Zero ``W_hh`` off the diagonal (snnTorch's name for it)."""
        eye = torch.eye(self.hidden_size, device=self.rnn.weight_hh_l0.device)
        self.rnn.weight_hh_l0.data = self.rnn.weight_hh_l0.data * eye

    def grad_hook(self, grad: Tensor) -> Tensor:
        """The gradient of ``W_hh`` masked to its diagonal."""
        return grad * torch.eye(self.hidden_size, device=grad.device, dtype=grad.dtype)

    def forward(self, input_: Tensor) -> Tensor:
        """The spikes ``(L, N, hidden_size)`` of the sequence ``input_`` ``(L, N, input_size)``."""
        if input_.dim() not in (2, 3) or input_.shape[-1] != self.rnn.input_size:
            raise GraphError(f"LeakyParallel: expects (L, N, {self.rnn.input_size}) or (L, {self.rnn.input_size}) "
                             f"input, got shape {tuple(input_.shape)}")
        mem, _ = self.rnn(input_)  # torch's fused ReLU RNN: the model's membrane update over all steps
        return self.spike_grad(mem - self.threshold) * self.graded_spikes_factor

    def step_by_step(self, input_: Tensor) -> Tensor:
        """``forward`` through the ``leaky_parallel`` model's derived step kernel, one step at a time
        (what the compiled graph runs; equal to ``forward`` up to rounding)."""
        rnn = self.rnn
        current = F.linear(input_, rnn.weight_ih_l0, rnn.bias_ih_l0 if rnn.bias else None)
        step, w_hh = kernel_for("leaky_parallel").step, rnn.weight_hh_l0
        bias_hh = rnn.bias_hh_l0 if rnn.bias else 0.0
        spk, mem, spikes = torch.zeros_like(current[0]), torch.zeros_like(current[0]), []
        for x_t in current:
            spk, mem = step(x_t, spk, mem, recurrent=lambda h: F.linear(h, w_hh), bias_hh=bias_hh,
                            threshold=self.threshold, graded_spikes_factor=self.graded_spikes_factor,
                            spike_grad=self.spike_grad)
            spikes.append(spk)
        return torch.stack(spikes)
