r"""Spiking LSTMs with snnTorch 1.0.0's semantics: ``SLSTM`` and ``SConv2dLSTM``.

Both compute through the kernels derived from the ``slstm`` / ``sconv2d_lstm`` declarations
(:mod:`snngraph.models.lstm`); the cell's weights are the submodule snnTorch names
(``lstm_cell``: a ``torch.nn.LSTMCell``; ``conv``: a ``torch.nn.Conv2d`` over ``[x, mem]``), so
``state_dict`` keys match and an snnTorch module's ``state_dict`` loads as is.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from snngraph.ir.errors import GraphError
from snngraph.ir.model import get_model
from snngraph.nn.base import FiringNeuron
from snngraph.runtimes.torch.cell import cell_maps
from snngraph.runtimes.torch.kernels import NEURON_KERNELS

__all__ = ["SConv2dLSTM", "SLSTM"]


class _SpikingCell(FiringNeuron):
    """Shared: state ``(syn, mem)``, snnTorch's ``FiringNeuron`` arguments with ``reset_mechanism="none"``."""

    state_names = ("syn", "mem")
    snntorch_options = frozenset({"inhibition", "state_quant"})
    _op = ""

    def __init__(self, threshold: Any, spike_grad: Any, surrogate_disable: bool, init_hidden: bool, inhibition: bool,
                 learn_threshold: bool, reset_mechanism: str, state_quant: Any, output: bool):
        super().__init__(threshold=threshold, spike_grad=spike_grad, surrogate_disable=surrogate_disable,
                         init_hidden=init_hidden, inhibition=inhibition, learn_threshold=learn_threshold,
                         reset_mechanism=reset_mechanism, state_quant=state_quant, output=output)

    def forward(self, input_: Tensor, syn: Tensor | None = None, mem: Tensor | None = None) -> Any:
        """``spk, syn, mem = cell(x, syn, mem)`` (``init_hidden=True``: ``spk = cell(x)``)."""
        return self._run(input_, (syn, mem))

    def _cell_tensors(self) -> dict[str, Tensor]:
        raise NotImplementedError

    def _step(self, input_: Tensor, syn: Tensor, mem: Tensor) -> tuple[Tensor, ...]:
        model = get_model(self._op)
        project, recurrent = cell_maps(model.cell, model.gates, self._cell_tensors())
        return NEURON_KERNELS[self._op].step(input_, syn, mem, project=project, recurrent=recurrent,
                                             **self._fire_kwargs(), **self._pool_kwargs())

    def _pool_kwargs(self) -> dict[str, Any]:
        return {}


class SLSTM(_SpikingCell):
    r"""Spiking LSTM cell with snnTorch 1.0.0's ``SLSTM`` semantics (``torch.nn.LSTMCell`` gates).

    .. math::
        (i, f, g, o) &= W_{ih} x[t] + b_{ih} + W_{hh} U[t-1] + b_{hh} \\
        I_{syn}[t] &= \sigma(f) I_{syn}[t-1] + \sigma(i) \tanh(g), \quad
        U[t] = \sigma(o) \tanh(I_{syn}[t]) \ (- R[t]\theta \text{ subtract}; \ \times (1 - R[t]) \text{ zero}) \\
        S[t] &= H(U[t] - \theta), \qquad R[t] = \mathrm{sg}(H(U[t-1] - \theta))

    Args:
        input_size, hidden_size: the features of the input and of the state (``syn``, ``mem``, spikes).
        bias: the cell's biases ``lstm_cell.bias_ih`` / ``bias_hh``.
        threshold, spike_grad, surrogate_disable, init_hidden, learn_threshold, output: as ``Leaky``'s.
        inhibition: only each sample's largest membrane may spike (snnTorch 1.0.0 accepts and ignores it).
        state_quant: a quantiser of ``syn`` and ``mem`` after the update (e.g. ``sg.functional.state_quant()``).
        reset_mechanism: ``"none"`` (default, a plain LSTM), ``"subtract"`` or ``"zero"`` (on ``mem`` only).

    Note:
        snnTorch 1.0.0 compares the stored state's shape with the *input's* (not the state's), so
        whenever ``input_size != hidden_size`` it discards the state at every step (and builds it
        in float32 whatever the input's dtype). snngraph keeps a state of shape
        ``(batch, hidden_size)`` in the input's dtype, which is what the cell means.

    Example::

        slstm = sg.nn.SLSTM(784, 128)
        syn, mem = slstm.reset_mem()
        spk, syn, mem = slstm(x, syn, mem)
    """

    _op = "slstm"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, threshold: Any = 1.0,
                 spike_grad: Any = None, surrogate_disable: bool = False, init_hidden: bool = False,
                 inhibition: bool = False, learn_threshold: bool = False, reset_mechanism: str = "none",
                 state_quant: Any = False, output: bool = False):
        super().__init__(threshold, spike_grad, surrogate_disable, init_hidden, inhibition, learn_threshold,
                         reset_mechanism, state_quant, output)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.lstm_cell = nn.LSTMCell(input_size, hidden_size, bias=bias)

    def _state_shape(self, input_: Tensor) -> torch.Size:
        return torch.Size((input_.shape[0], self.hidden_size))

    def _cell_tensors(self) -> dict[str, Tensor]:
        c = self.lstm_cell
        return {"weight_ih": c.weight_ih, "weight_hh": c.weight_hh, "bias_ih": c.bias_ih, "bias_hh": c.bias_hh}

    def init_slstm(self) -> tuple[Tensor, Tensor]:
        """Deprecated in snnTorch: :meth:`reset_mem`."""
        return self.reset_mem()  # type: ignore[return-value]


class SConv2dLSTM(_SpikingCell):
    r"""Spiking convolutional LSTM with snnTorch 1.0.0's ``SConv2dLSTM`` semantics.

    .. math::
        (i, f, o, g) &= W * [x[t], U[t-1]] + b \quad (\text{one convolution, padding } k // 2) \\
        I_{syn}[t] &= \sigma(f) I_{syn}[t-1] + \sigma(i) \tanh(g), \quad U[t] = \sigma(o) \tanh(I_{syn}[t])
        \text{ (reset as } \texttt{SLSTM}) \\
        S[t] &= H(P(U[t]) - \theta)

    with :math:`P` the ``max_pool`` / ``avg_pool`` of the membrane (identity when both are 0); the
    reset reads the unpooled membrane, as in snnTorch.

    Args:
        in_channels, out_channels: channels of the input and of the state.
        kernel_size: an odd int or pair (snnTorch fails on even sizes: the padding ``k // 2`` changes the size).
        bias: the convolution's bias ``conv.bias``.
        max_pool, avg_pool: pooling kernel of the membrane before firing (at most one non-zero).
        threshold, spike_grad, surrogate_disable, init_hidden, learn_threshold, output, reset_mechanism:
            inhibition, state_quant: as ``SLSTM``'s.
    """

    _op = "sconv2d_lstm"

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, bias: bool = True, max_pool: Any = 0,
                 avg_pool: Any = 0, threshold: Any = 1.0, spike_grad: Any = None, surrogate_disable: bool = False,
                 init_hidden: bool = False, inhibition: bool = False, learn_threshold: bool = False,
                 reset_mechanism: str = "none", state_quant: Any = False, output: bool = False):
        super().__init__(threshold, spike_grad, surrogate_disable, init_hidden, inhibition, learn_threshold,
                         reset_mechanism, state_quant, output)
        if max_pool and avg_pool:
            raise GraphError("SConv2dLSTM: only one of either `max_pool` or `avg_pool` may be specified, not both.")
        size = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        if len(size) != 2 or any(k % 2 == 0 for k in size):
            raise GraphError(f"SConv2dLSTM: kernel_size must be odd (padding k // 2 keeps the state's size), "
                             f"got {kernel_size!r}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.max_pool, self.avg_pool, self.bias = max_pool, avg_pool, bias
        self.padding = size[0] // 2, size[1] // 2
        self.conv = nn.Conv2d(in_channels + out_channels, 4 * out_channels, kernel_size, padding=self.padding,
                              bias=bias)

    def _state_shape(self, input_: Tensor) -> torch.Size:
        return torch.Size((input_.shape[0], self.out_channels, *input_.shape[2:]))

    def _cell_tensors(self) -> dict[str, Tensor]:
        return {"conv_weight": self.conv.weight, "conv_bias": self.conv.bias}

    def _pool_kwargs(self) -> dict[str, Any]:
        """The kernel's ``pool`` / ``pool_size`` (the ``sconv2d_lstm`` declaration pools the spikes itself)."""
        if self.max_pool:
            return {"pool": "max", "pool_size": self.max_pool}
        if self.avg_pool:
            return {"pool": "avg", "pool_size": self.avg_pool}
        return {}

    def init_sconv2dlstm(self) -> tuple[Tensor, Tensor]:
        """Deprecated in snnTorch: :meth:`reset_mem`."""
        return self.reset_mem()  # type: ignore[return-value]
