r"""``DeltaLeaky``: snnTorch 1.0.0's delta LIF, which spikes when the membrane *changes* by more
than ``delta_threshold``; it computes through the ``delta_leaky`` model's derived kernel."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from snngraph.ir.errors import GraphTypeError
from snngraph.nn.leaky import Leaky
from snngraph.runtimes.torch.kernels import kernel_for

__all__ = ["DeltaLeaky"]


class DeltaLeaky(Leaky):
    r"""Delta leaky integrate-and-fire neuron (snnTorch ``DeltaLeaky``).

    .. math::
        U[t] &= \beta U[t-1] + I[t] \\
        S[t] &= H(|U[t] - U[t-1]| - \delta)

    There is no reset, ``beta`` is not clamped, and ``threshold``, ``reset_mechanism`` and
    ``graded_spikes_factor`` are accepted (``Leaky``'s arguments) but unused, as in snnTorch.
    The state is ``(mem, mem_prev)``: the membrane and the membrane one step earlier.

    Args:
        delta_threshold: the change :math:`\delta` of the membrane that fires a spike.
        *args, **kwargs: :class:`~snngraph.nn.Leaky`'s arguments (``beta`` first).

    ``forward(input_, mem)`` takes ``mem = (mem, mem_prev)`` and returns
    ``(spk, (mem, mem_prev))``. With ``init_hidden=True`` the state stays on the module and
    ``forward(input_)`` returns ``spk`` (``(spk, (mem, mem_prev))`` if ``output``).

    Differs from snnTorch 1.0.0: with ``init_hidden=True`` snnTorch always returns the state too
    (so the neuron cannot sit in an ``nn.Sequential``) and keeps it when the input's shape
    changes (a new batch size then crashes); with ``init_hidden=False`` an omitted ``mem``
    starts at zero instead of raising ``TypeError``.

    Example::

        lif = sg.nn.DeltaLeaky(delta_threshold=0.5, beta=0.9)
        state = lif.reset_mem()
        for x_t in x:
            spk, state = lif(x_t, state)
    """

    state_names = ("mem", "mem_prev")
    snntorch_options = frozenset()  # snnTorch's DeltaLeaky accepts and ignores them; here they are refused

    def __init__(self, delta_threshold: Any = 1.0, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if isinstance(delta_threshold, Tensor):  # moves with .to(); outside the state dict, as in snnTorch
            self.register_buffer("delta_threshold", delta_threshold, persistent=False)
        else:
            self.delta_threshold = delta_threshold  # a plain number, as snnTorch keeps it

    def forward(self, input_: Tensor, mem: Any = None) -> Any:
        """``(spk, (mem, mem_prev))``; with ``init_hidden``: ``spk`` (or the pair if ``output``)."""
        if mem is None:
            given: tuple[Any, ...] = (None, None)
        elif isinstance(mem, tuple | list) and len(mem) == 2:
            given = tuple(mem)
        else:
            raise GraphTypeError(f"DeltaLeaky: mem must be the pair (mem, mem_prev) it returned, "
                                 f"got {type(mem).__name__}")
        result = self._run(input_, given)
        if isinstance(result, tuple):
            return result[0], (result[1], result[2])
        return result

    def _step(self, input_: Tensor, mem: Tensor, mem_prev: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return kernel_for("delta_leaky").step(input_, mem, mem_prev, beta=self.beta,
                                              delta_threshold=self.delta_threshold, spike_grad=self.spike_grad)
