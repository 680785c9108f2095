r"""Recurrent neurons with snnTorch 1.0.0 semantics: ``RLeaky`` and ``RSynaptic``.

The recurrence :math:`V` is the submodule ``recurrent``, named as in snnTorch so that state-dict
keys match: an ``nn.Linear`` (``recurrent.weight``, ``recurrent.bias``) or ``nn.Conv2d`` for
all-to-all recurrence, or :class:`RecurrentOneToOne` (``V * spk``) with the parameter or buffer
``V`` for one-to-one recurrence.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from snngraph.ir.errors import GraphTypeError
from snngraph.nn.base import LIF, register_value
from snngraph.runtimes.torch.kernels import rleaky_step, rsynaptic_step

__all__ = ["RLeaky", "RSynaptic", "RecurrentOneToOne"]


class RecurrentOneToOne(nn.Module):
    """One-to-one recurrence: ``x * V`` (element-wise, or one global weight)."""

    def __init__(self, V: Tensor):
        super().__init__()
        self.V = V

    def forward(self, x: Tensor) -> Tensor:
        return x * self.V


def _check_recurrent_args(
    owner: str, all_to_all: bool, linear_features: Any, conv2d_channels: Any, kernel_size: Any
) -> None:
    """snnTorch's ``_rleaky_init_cases``, raising GraphTypeError (a GraphError and snnTorch's TypeError)."""
    linear, conv = bool(linear_features), (bool(conv2d_channels), bool(kernel_size))
    if not all_to_all:
        if linear or any(conv):
            raise GraphTypeError(
                f"{owner}: with all_to_all=False give V, not linear_features, conv2d_channels or kernel_size"
            )
    elif linear and any(conv):
        raise GraphTypeError(f"{owner}: linear_features cannot be combined with conv2d_channels or kernel_size")
    elif not linear and not all(conv):
        raise GraphTypeError(f"{owner}: all_to_all=True needs linear_features, or both conv2d_channels and kernel_size")


class _Recurrent(LIF):
    """Shared set-up of the recurrence for ``RLeaky`` and ``RSynaptic``."""

    output_is_state = True

    def _init_recurrent(
        self,
        V: Any,
        all_to_all: bool,
        linear_features: Any,
        conv2d_channels: Any,
        kernel_size: Any,
        learn_recurrent: bool,
    ) -> None:
        _check_recurrent_args(type(self).__name__, all_to_all, linear_features, conv2d_channels, kernel_size)
        self.all_to_all = all_to_all
        self.learn_recurrent = learn_recurrent
        self.linear_features = linear_features
        self.kernel_size = kernel_size
        self.conv2d_channels = conv2d_channels
        if not all_to_all:
            register_value(self, "V", V, learn_recurrent)
            self.recurrent = RecurrentOneToOne(self.V)
        elif linear_features:
            self.recurrent = nn.Linear(linear_features, linear_features)
        else:
            size = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
            self.padding = size[0] // 2, size[1] // 2
            self.recurrent = nn.Conv2d(conv2d_channels, conv2d_channels, kernel_size, padding=self.padding)
        if not learn_recurrent:
            for param in self.recurrent.parameters():
                param.requires_grad = False

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> nn.Module:
        """Keep ``recurrent.V`` the same tensor as ``V`` after ``.to()``, ``.double()``, ..."""
        module = super()._apply(fn, *args, **kwargs)
        if isinstance(self.recurrent, RecurrentOneToOne):
            self.recurrent.V = self.V
        return module


class RLeaky(_Recurrent):
    r"""Recurrent LIF: a ``Leaky`` whose previous spikes feed back (snnTorch 1.0.0's ``RLeaky``).

    .. math::
        U[t] &= \beta U[t-1] + I[t] + V(S[t-1]) - R[t]\,\theta \qquad &\text{(subtract)} \\
        U[t] &= (1 - R[t])\,(\beta U[t-1] + I[t] + V(S[t-1])) &\text{(zero)} \\
        S[t] &= g\,H(U[t] - \theta)

    Args:
        beta: membrane decay, clamped to [0, 1].
        V: one-to-one recurrent weight (``all_to_all=False``), a number or per-neuron tensor.
        all_to_all: dense recurrence through ``recurrent`` (``nn.Linear`` or ``nn.Conv2d``).
        linear_features: size of the ``nn.Linear`` recurrence.
        conv2d_channels: channels of the ``nn.Conv2d`` recurrence.
        kernel_size: kernel of the ``nn.Conv2d`` recurrence (padding keeps the size).
        learn_recurrent: train the recurrent weights (or ``V``).
        graded_spikes_factor: spike amplitude (after snnTorch's arguments; snnTorch fixes it to 1).
        **others: as :class:`~snngraph.nn.Leaky`.

    Example::

        rlif = sg.nn.RLeaky(beta=0.9, linear_features=10)
        spk, mem = rlif(cur, spk, mem)
    """

    snntorch_options = frozenset({"inhibition", "state_quant"})
    state_names = ("spk", "mem")

    def __init__(
        self,
        beta: Any,
        V: Any = 1.0,
        all_to_all: bool = True,
        linear_features: int | None = None,
        conv2d_channels: int | None = None,
        kernel_size: Any = None,
        threshold: Any = 1.0,
        spike_grad: Any = None,
        surrogate_disable: bool = False,
        init_hidden: bool = False,
        inhibition: bool = False,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        learn_recurrent: bool = True,
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
        self._init_recurrent(V, all_to_all, linear_features, conv2d_channels, kernel_size, learn_recurrent)
        self.reset_delay = reset_delay

    def forward(self, input_: Tensor, spk: Tensor | None = None, mem: Tensor | None = None) -> Any:
        """``(spk, mem)``; with ``init_hidden``: ``spk`` (``(spk, mem)`` if ``output``)."""
        return self._run(input_, (spk, mem))

    def _step(self, input_: Tensor, spk: Tensor, mem: Tensor) -> tuple[Tensor, Tensor]:
        return rleaky_step(
            input_,
            spk,
            mem,
            recurrent=self.recurrent,
            beta=self.beta,
            reset_delay=self.reset_delay,
            **self._fire_kwargs(),
        )

    def init_rleaky(self) -> tuple[Tensor, Tensor]:
        """snnTorch's deprecated name of :meth:`reset_mem`."""
        return self.reset_mem()


class RSynaptic(_Recurrent):
    r"""Recurrent current-based LIF (snnTorch 1.0.0's ``RSynaptic``).

    .. math::
        I_{syn}[t] &= \alpha I_{syn}[t-1] + I[t] + V(S[t-1]) \\
        U[t] &= \beta U[t-1] + I_{syn}[t] - R[t]\,\theta \qquad &\text{(subtract)} \\
        U[t] &= (1 - R[t])\,(\beta U[t-1] + I_{syn}[t]) &\text{(zero)} \\
        S[t] &= g\,H(U[t] - \theta)

    Note:
        snnTorch 1.0.0 ignores ``reset_delay=False`` here (its branch computes on the arguments
        and drops the result, or raises ``TypeError`` when ``spk`` is omitted); snngraph resets
        in the spiking step, as ``Synaptic`` does.

    Args:
        alpha: synaptic current decay, clamped to [0, 1].
        learn_alpha: make ``alpha`` a parameter.
        **others: as :class:`RLeaky`.
    """

    snntorch_options = frozenset({"inhibition", "state_quant"})
    state_names = ("spk", "syn", "mem")

    def __init__(
        self,
        alpha: Any,
        beta: Any,
        V: Any = 1.0,
        all_to_all: bool = True,
        linear_features: int | None = None,
        conv2d_channels: int | None = None,
        kernel_size: Any = None,
        threshold: Any = 1.0,
        spike_grad: Any = None,
        surrogate_disable: bool = False,
        init_hidden: bool = False,
        inhibition: bool = False,
        learn_alpha: bool = False,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        learn_recurrent: bool = True,
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
        self._init_recurrent(V, all_to_all, linear_features, conv2d_channels, kernel_size, learn_recurrent)
        register_value(self, "alpha", alpha, learn_alpha)
        self.reset_delay = reset_delay

    def forward(
        self, input_: Tensor, spk: Tensor | None = None, syn: Tensor | None = None, mem: Tensor | None = None
    ) -> Any:
        """``(spk, syn, mem)``; with ``init_hidden``: ``spk`` (all three if ``output``)."""
        return self._run(input_, (spk, syn, mem))

    def _step(self, input_: Tensor, spk: Tensor, syn: Tensor, mem: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return rsynaptic_step(
            input_,
            spk,
            syn,
            mem,
            recurrent=self.recurrent,
            alpha=self.alpha,
            beta=self.beta,
            reset_delay=self.reset_delay,
            **self._fire_kwargs(),
        )

    def init_rsynaptic(self) -> tuple[Tensor, Tensor, Tensor]:
        """snnTorch's deprecated name of :meth:`reset_mem`."""
        return self.reset_mem()
