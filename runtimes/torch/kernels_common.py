"""Pieces shared by the neuron kernels: parameter clamps, firing and snnTorch's reset rules.

Hyper-parameters (``beta``, ``threshold``, ...) may be Python numbers, 0-d tensors or per-neuron
tensors that broadcast over the last dimensions of the state; tensors may require grad.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from snngraph.ir.errors import GraphError
from snngraph.surrogate import atan

Scalar = float | Tensor
SpikeFn = Callable[[Tensor], Tensor]

RESET_MECHANISMS = ("subtract", "zero", "none")
DEFAULT_SURROGATE = atan()


def check_reset(op: str, reset_mechanism: str) -> None:
    """Raise GraphError naming ``op`` unless ``reset_mechanism`` is subtract, zero or none."""
    if reset_mechanism not in RESET_MECHANISMS:
        raise GraphError(f"{op}: reset_mechanism must be one of {RESET_MECHANISMS}, got {reset_mechanism!r}")


def spike_fn(spike_grad: SpikeFn | None) -> SpikeFn:
    """The spike function to use: ``spike_grad``, or snnTorch's default ``atan()``."""
    return DEFAULT_SURROGATE if spike_grad is None else spike_grad


def clamp01(value: Scalar) -> Scalar:
    """snnTorch's ``beta.clamp(0, 1)``, for tensors and Python numbers alike."""
    if isinstance(value, Tensor):
        return value.clamp(0, 1)
    return min(max(value, 0.0), 1.0)


def detached_reset(spike_grad: SpikeFn, mem: Tensor, threshold: Scalar) -> Tensor:
    """snnTorch's ``mem_reset``: the spike of the previous membrane, without gradient."""
    return spike_grad(mem - threshold).detach()


def fire(spike_grad: SpikeFn, mem: Tensor, threshold: Scalar, graded_spikes_factor: Scalar) -> Tensor:
    """snnTorch's ``fire``: ``spike_grad(mem - threshold) * graded_spikes_factor``."""
    return spike_grad(mem - threshold) * graded_spikes_factor


def reset_now(
    mem: Tensor,
    spk: Tensor,
    reset: Tensor | None,
    *,
    threshold: Scalar,
    graded_spikes_factor: Scalar,
    reset_mechanism: str,
) -> Tensor:
    """The ``reset_delay=False`` branch of snnTorch: reset in the step that spiked.

    ``do_reset = spk / graded_spikes_factor - reset`` removes the reset already applied from the
    previous membrane (snnTorch's "avoid double reset"); it carries the surrogate gradient of
    ``spk``.
    """
    if reset_mechanism == "none":
        return mem
    do_reset = spk / graded_spikes_factor - reset
    if reset_mechanism == "subtract":
        return mem - do_reset * threshold
    return mem - do_reset * mem
