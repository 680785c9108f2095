"""Neuron kernels: one pure step function per neuron model, shared by ``snngraph.nn`` and the runtime.

Each kernel takes the input and the previous state tensors positionally, the hyper-parameters as
keywords with snnTorch 1.0.0's constructor names, and returns ``(out, *new_state)`` (recurrent
neurons: their spike output is their first state, see :class:`NeuronKernel`)::

    spk, mem = leaky_step(x, mem, beta=0.9, threshold=1.0, spike_grad=sg.surrogate.atan())

:data:`NEURON_KERNELS` maps the IR op names to the kernel and the names of its state tensors, in
the order the kernel takes and returns them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from snngraph.runtimes.torch.kernels_common import RESET_MECHANISMS, Scalar, SpikeFn, clamp01
from snngraph.runtimes.torch.kernels_lapicque import lapicque_rc, lapicque_step
from snngraph.runtimes.torch.kernels_lif import (
    adaptive_leaky_step,
    integrate_fire_step,
    leaky_integrator_step,
    leaky_step,
)
from snngraph.runtimes.torch.kernels_synaptic import alpha_step, rleaky_step, rsynaptic_step, synaptic_step

__all__ = [
    "NEURON_KERNELS",
    "RESET_MECHANISMS",
    "NeuronKernel",
    "Scalar",
    "SpikeFn",
    "adaptive_leaky_step",
    "alpha_step",
    "clamp01",
    "integrate_fire_step",
    "lapicque_rc",
    "lapicque_step",
    "leaky_integrator_step",
    "leaky_step",
    "rleaky_step",
    "rsynaptic_step",
    "synaptic_step",
]


@dataclass(frozen=True, slots=True)
class NeuronKernel:
    """A neuron model's step function and the names of its state tensors.

    Attributes:
        state_names: the state, in the order ``step`` takes it after the input.
        step: ``step(x, *state, **hyper_parameters)``; returns ``(out, *new_state)``, except that
            for recurrent neurons (``output_is_state``) the spike output *is* the first state, so
            they return ``new_state`` itself: ``rleaky`` gives ``(spk, mem)``.
        output_is_state: whether the output doubles as the first state (``rleaky``, ``rsynaptic``).
    """

    state_names: tuple[str, ...]
    step: Callable[..., tuple[Tensor, ...]]
    output_is_state: bool = False

    def split(self, result: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """``(out, new_state)`` from what ``step`` returned, ``new_state`` in ``state_names`` order."""
        return result[0], tuple(result) if self.output_is_state else tuple(result[1:])


NEURON_KERNELS: dict[str, NeuronKernel] = {
    "leaky": NeuronKernel(("mem",), leaky_step),
    "synaptic": NeuronKernel(("syn", "mem"), synaptic_step),
    "alpha": NeuronKernel(("syn_exc", "syn_inh", "mem"), alpha_step),
    "lapicque": NeuronKernel(("mem",), lapicque_step),
    "rleaky": NeuronKernel(("spk", "mem"), rleaky_step, output_is_state=True),
    "rsynaptic": NeuronKernel(("spk", "syn", "mem"), rsynaptic_step, output_is_state=True),
    "integrate_fire": NeuronKernel(("mem",), integrate_fire_step),
    "leaky_integrator": NeuronKernel(("mem",), leaky_integrator_step),
    "adaptive_leaky": NeuronKernel(("mem", "b"), adaptive_leaky_step),
}
"""IR op name -> kernel."""
