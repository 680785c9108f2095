r"""Second-order and recurrent neuron kernels: Synaptic, Alpha, RLeaky and RSynaptic.

Pure step functions with snnTorch 1.0.0's equations, computed in snnTorch's order of operations.
Notation as in :mod:`snngraph.runtimes.torch.kernels_lif`; :math:`R[t]` is the detached reset
computed from the previous membrane.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from snngraph.runtimes.torch.kernels_common import (
    Scalar,
    SpikeFn,
    check_reset,
    clamp01,
    detached_reset,
    fire,
    reset_now,
    spike_fn,
)

__all__ = ["alpha_step", "rleaky_step", "rsynaptic_step", "synaptic_step"]


def _finish(
    spk: Tensor,
    mem: Tensor,
    reset: Tensor | None,
    reset_delay: bool,
    threshold: Scalar,
    graded_spikes_factor: Scalar,
    reset_mechanism: str,
) -> Tensor:
    """Apply the ``reset_delay=False`` immediate reset when asked; return the membrane."""
    if reset_delay:
        return mem
    return reset_now(
        mem,
        spk,
        reset,
        threshold=threshold,
        graded_spikes_factor=graded_spikes_factor,
        reset_mechanism=reset_mechanism,
    )


def _synaptic_update(
    syn_in: Tensor, mem: Tensor, reset: Tensor | None, beta: Scalar, threshold: Scalar, reset_mechanism: str
) -> Tensor:
    """Membrane update shared by Synaptic and RSynaptic (``syn_in`` is the new synaptic current)."""
    mem = clamp01(beta) * mem + syn_in
    if reset_mechanism == "subtract":
        return mem - reset * threshold
    if reset_mechanism == "zero":
        return mem - mem * reset
    return mem


def synaptic_step(
    x: Tensor,
    syn: Tensor,
    mem: Tensor,
    *,
    alpha: Scalar,
    beta: Scalar,
    threshold: Scalar = 1.0,
    spike_grad: SpikeFn | None = None,
    reset_mechanism: str = "subtract",
    reset_delay: bool = True,
    graded_spikes_factor: Scalar = 1.0,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""One step of snnTorch's ``Synaptic`` (current-based LIF).

    .. math::
        I_{syn}[t] &= \alpha I_{syn}[t-1] + I[t] \\
        U[t] &= \beta U[t-1] + I_{syn}[t] - R[t]\,\theta \qquad &\text{(subtract)} \\
        U[t] &= (1 - R[t])\,(\beta U[t-1] + I_{syn}[t]) &\text{(zero)} \\
        S[t] &= g\,H(U[t] - \theta)

    :math:`\alpha, \beta` are clamped to :math:`[0, 1]`. Unlike ``Leaky``, snnTorch's zero reset
    clears the *new* membrane, input included; the synaptic current is never reset.
    ``reset_delay=False`` resets immediately, as in :func:`leaky_step`.

    Returns:
        ``(spk, syn, mem)``.
    """
    check_reset("synaptic", reset_mechanism)
    spike_grad = spike_fn(spike_grad)
    reset = None if reset_mechanism == "none" else detached_reset(spike_grad, mem, threshold)
    syn = clamp01(alpha) * syn + x
    mem = _synaptic_update(syn, mem, reset, beta, threshold, reset_mechanism)
    spk = fire(spike_grad, mem, threshold, graded_spikes_factor)
    mem = _finish(spk, mem, reset, reset_delay, threshold, graded_spikes_factor, reset_mechanism)
    return spk, syn, mem


def _log(value: Scalar) -> Scalar:
    """``torch.log`` for tensors, and for numbers with ``log(0) = -inf`` like torch."""
    if isinstance(value, Tensor):
        return torch.log(value)
    return math.log(value) if value > 0 else -math.inf


def alpha_step(
    x: Tensor,
    syn_exc: Tensor,
    syn_inh: Tensor,
    mem: Tensor,
    *,
    alpha: Scalar,
    beta: Scalar,
    threshold: Scalar = 1.0,
    spike_grad: SpikeFn | None = None,
    reset_mechanism: str = "zero",
    graded_spikes_factor: Scalar = 1.0,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""One step of snnTorch's ``Alpha`` neuron (excitatory and inhibitory synaptic currents).

    .. math::
        I_{exc}[t] &= \alpha I_{exc}[t-1] + I[t], \qquad I_{inh}[t] = \beta I_{inh}[t-1] - I[t] \\
        U[t] &= \tau_\alpha (I_{exc}[t] + I_{inh}[t]), \qquad
            \tau_\alpha = \frac{\log\alpha}{\log\beta - \log\alpha} + 1 \\
        S[t] &= g\,H(U[t] - \theta)

    The membrane does not depend on its previous value, only through the reset:
    ``subtract`` takes :math:`\theta R[t]` from :math:`I_{exc}`, clears :math:`I_{inh}` and adds
    :math:`R[t]\,I_{inh}[t-1]` to :math:`U`; ``zero`` clears all three. snnTorch's default is
    ``zero``, it needs :math:`\alpha > \beta` and has no ``reset_delay`` option (the reset is
    always delayed).

    Returns:
        ``(spk, syn_exc, syn_inh, mem)``.
    """
    check_reset("alpha", reset_mechanism)
    spike_grad = spike_fn(spike_grad)
    a, b = clamp01(alpha), clamp01(beta)
    exc = a * syn_exc + x
    inh = b * syn_inh - x
    log_a = _log(a)
    tau_alpha = log_a / (_log(b) - log_a) + 1
    new_mem = tau_alpha * (exc + inh)
    if reset_mechanism != "none":
        reset = detached_reset(spike_grad, mem, threshold)
        if reset_mechanism == "subtract":
            exc = exc - threshold * reset
            inh = inh - (b * syn_inh - x) * reset
            new_mem = new_mem - (-syn_inh) * reset
        else:
            exc, inh, new_mem = exc - exc * reset, inh - inh * reset, new_mem - new_mem * reset
    spk = fire(spike_grad, new_mem, threshold, graded_spikes_factor)
    return spk, exc, inh, new_mem


def rleaky_step(
    x: Tensor,
    spk: Tensor,
    mem: Tensor,
    *,
    recurrent: Callable[[Tensor], Tensor],
    beta: Scalar,
    threshold: Scalar = 1.0,
    spike_grad: SpikeFn | None = None,
    reset_mechanism: str = "subtract",
    reset_delay: bool = True,
    graded_spikes_factor: Scalar = 1.0,
) -> tuple[Tensor, Tensor]:
    r"""One step of snnTorch's ``RLeaky``: a ``Leaky`` whose previous spikes feed back.

    .. math::
        U[t] &= \beta U[t-1] + I[t] + V(S[t-1]) - R[t]\,\theta \qquad &\text{(subtract)} \\
        U[t] &= (1 - R[t])\,(\beta U[t-1] + I[t] + V(S[t-1])) &\text{(zero)} \\
        S[t] &= g\,H(U[t] - \theta)

    Args:
        recurrent: :math:`V`, applied to the previous spikes: a ``Linear`` (or ``Conv2d``) for
            all-to-all recurrence, an element-wise scale ``V * spk`` for one-to-one.

    Returns:
        ``(spk, mem)``.
    """
    check_reset("rleaky", reset_mechanism)
    spike_grad = spike_fn(spike_grad)
    reset = None if reset_mechanism == "none" else detached_reset(spike_grad, mem, threshold)
    mem = clamp01(beta) * mem + x + recurrent(spk)
    if reset_mechanism == "subtract":
        mem = mem - reset * threshold
    elif reset_mechanism == "zero":
        mem = mem - reset * mem
    spk = fire(spike_grad, mem, threshold, graded_spikes_factor)
    mem = _finish(spk, mem, reset, reset_delay, threshold, graded_spikes_factor, reset_mechanism)
    return spk, mem


def rsynaptic_step(
    x: Tensor,
    spk: Tensor,
    syn: Tensor,
    mem: Tensor,
    *,
    recurrent: Callable[[Tensor], Tensor],
    alpha: Scalar,
    beta: Scalar,
    threshold: Scalar = 1.0,
    spike_grad: SpikeFn | None = None,
    reset_mechanism: str = "subtract",
    reset_delay: bool = True,
    graded_spikes_factor: Scalar = 1.0,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""One step of snnTorch's ``RSynaptic``: a ``Synaptic`` whose previous spikes feed back.

    .. math::
        I_{syn}[t] &= \alpha I_{syn}[t-1] + I[t] + V(S[t-1]) \\
        U[t] &= \beta U[t-1] + I_{syn}[t] - R[t]\,\theta \qquad &\text{(subtract)} \\
        U[t] &= (1 - R[t])\,(\beta U[t-1] + I_{syn}[t]) &\text{(zero)} \\
        S[t] &= g\,H(U[t] - \theta)

    Note:
        snnTorch 1.0.0's ``reset_delay=False`` branch of ``RSynaptic`` reads the *arguments*
        ``spk``/``mem`` and discards its result (and raises ``TypeError`` when ``spk`` is
        omitted), so it never resets early. snngraph applies the immediate reset that the option
        means, exactly as ``Synaptic`` does.

    Returns:
        ``(spk, syn, mem)``.
    """
    check_reset("rsynaptic", reset_mechanism)
    spike_grad = spike_fn(spike_grad)
    reset = None if reset_mechanism == "none" else detached_reset(spike_grad, mem, threshold)
    syn = clamp01(alpha) * syn + x + recurrent(spk)
    mem = _synaptic_update(syn, mem, reset, beta, threshold, reset_mechanism)
    spk = fire(spike_grad, mem, threshold, graded_spikes_factor)
    mem = _finish(spk, mem, reset, reset_delay, threshold, graded_spikes_factor, reset_mechanism)
    return spk, syn, mem
