r"""First-order neuron kernels: Leaky (LIF), IF, LI and the adaptive LIF.

Pure state-in/state-out step functions: no module state, nothing mutated. Notation:
:math:`I[t]` input, :math:`U` membrane, :math:`\theta` threshold, :math:`g` graded-spike factor,
:math:`H` the spike function (``spike_grad``: Heaviside forward, surrogate backward) and
:math:`R[t] = \mathrm{sg}(H(U[t-1] - \theta))` the reset computed from the *previous* membrane
and detached from the graph (``sg``), exactly as snnTorch 1.0.0 computes it.
"""

from __future__ import annotations

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

__all__ = ["adaptive_leaky_step", "integrate_fire_step", "leaky_integrator_step", "leaky_step"]


def _leak(
    x: Tensor, mem: Tensor, reset: Tensor | None, beta: Scalar, threshold: Scalar, reset_mechanism: str
) -> Tensor:
    """snnTorch Leaky's state function (``beta`` already clamped)."""
    if reset_mechanism == "subtract":
        return beta * mem + x - reset * threshold
    if reset_mechanism == "zero":
        return beta * ((1 - reset) * mem) + x
    return beta * mem + x


def leaky_step(
    x: Tensor,
    mem: Tensor,
    *,
    beta: Scalar,
    threshold: Scalar = 1.0,
    spike_grad: SpikeFn | None = None,
    reset_mechanism: str = "subtract",
    reset_delay: bool = True,
    graded_spikes_factor: Scalar = 1.0,
) -> tuple[Tensor, Tensor]:
    r"""One step of snnTorch's ``Leaky`` (first-order LIF).

    .. math::
        U[t] &= \beta U[t-1] + I[t] - R[t]\,\theta \qquad &\text{(subtract)} \\
        U[t] &= \beta (1 - R[t]) U[t-1] + I[t] &\text{(zero)} \\
        U[t] &= \beta U[t-1] + I[t] &\text{(none)} \\
        S[t] &= g\,H(U[t] - \theta)

    with :math:`\beta` clamped to :math:`[0, 1]`. With ``reset_delay=False`` the membrane is reset
    in the step that spiked: :math:`U[t] \mathrel{-}= (S[t]/g - R[t])\,\theta` (subtract) or
    :math:`(S[t]/g - R[t])\,U[t]` (zero).

    Args:
        x: input current :math:`I[t]`.
        mem: previous membrane :math:`U[t-1]`.
        beta: membrane decay.
        threshold: firing threshold :math:`\theta`.
        spike_grad: spike function; ``None`` means ``sg.surrogate.atan()``.
        reset_mechanism: ``"subtract"``, ``"zero"`` or ``"none"``.
        reset_delay: apply the reset one step after the spike (snnTorch's default).
        graded_spikes_factor: spike amplitude :math:`g`.

    Returns:
        ``(spk, mem)``.
    """
    check_reset("leaky", reset_mechanism)
    spike_grad = spike_fn(spike_grad)
    reset = None if reset_mechanism == "none" else detached_reset(spike_grad, mem, threshold)
    mem = _leak(x, mem, reset, clamp01(beta), threshold, reset_mechanism)
    spk = fire(spike_grad, mem, threshold, graded_spikes_factor)
    if not reset_delay:
        mem = reset_now(
            mem,
            spk,
            reset,
            threshold=threshold,
            graded_spikes_factor=graded_spikes_factor,
            reset_mechanism=reset_mechanism,
        )
    return spk, mem


def integrate_fire_step(
    x: Tensor,
    mem: Tensor,
    *,
    threshold: Scalar = 1.0,
    spike_grad: SpikeFn | None = None,
    reset_mechanism: str = "subtract",
    reset_delay: bool = True,
    graded_spikes_factor: Scalar = 1.0,
) -> tuple[Tensor, Tensor]:
    r"""One step of the integrate-and-fire neuron: ``leaky_step`` with :math:`\beta = 1`.

    .. math:: U[t] = U[t-1] + I[t] - R[t]\,\theta, \qquad S[t] = g\,H(U[t] - \theta)

    Returns:
        ``(spk, mem)``.
    """
    check_reset("integrate_fire", reset_mechanism)
    return leaky_step(
        x,
        mem,
        beta=1.0,
        threshold=threshold,
        spike_grad=spike_grad,
        reset_mechanism=reset_mechanism,
        reset_delay=reset_delay,
        graded_spikes_factor=graded_spikes_factor,
    )


def leaky_integrator_step(x: Tensor, mem: Tensor, *, beta: Scalar) -> tuple[Tensor, Tensor]:
    r"""One step of the non-spiking leaky integrator (LI readout); the output is the membrane.

    .. math:: U[t] = \beta U[t-1] + I[t]

    with :math:`\beta` clamped to :math:`[0, 1]` like ``Leaky``'s.

    Returns:
        ``(mem, mem)``.
    """
    mem = clamp01(beta) * mem + x
    return mem, mem


def adaptive_leaky_step(
    x: Tensor,
    mem: Tensor,
    b: Tensor,
    *,
    beta: Scalar,
    rho: Scalar,
    adaptation: Scalar,
    threshold: Scalar = 1.0,
    spike_grad: SpikeFn | None = None,
    reset_mechanism: str = "subtract",
    reset_delay: bool = True,
    graded_spikes_factor: Scalar = 1.0,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""One step of the adaptive-threshold LIF (ALIF, Bellec et al. 2018), discretised like ``Leaky``.

    Every spike raises the threshold, which relaxes back with :math:`\rho`. With
    :math:`\vartheta[t] = \theta + a\,b[t]` the effective threshold and
    :math:`Z[t-1] = H(U[t-1] - \vartheta[t-1])` the previous step's spike recomputed from the state:

    .. math::
        b[t] &= \rho\,b[t-1] + (1 - \rho)\,Z[t-1] \\
        U[t] &= \beta U[t-1] + I[t] - \mathrm{sg}(Z[t-1])\,\vartheta[t-1] \qquad &\text{(subtract)} \\
        U[t] &= \beta (1 - \mathrm{sg}(Z[t-1])) U[t-1] + I[t] &\text{(zero)} \\
        S[t] &= g\,H(U[t] - \vartheta[t])

    :math:`\beta, \rho` are clamped to :math:`[0, 1]`. The reset is detached like snnTorch's;
    :math:`Z` in the adaptation keeps its surrogate gradient (BPTT through the threshold, as in
    Bellec et al.). With ``adaptation = 0`` this is exactly ``leaky_step``.

    With ``reset_delay=False`` the membrane is reset in the step that spiked, so the stored
    membrane no longer tells whether the neuron fired; the spike is folded into ``b`` at the end
    of the step instead: :math:`b[t] = \rho\,b[t-1] + (1-\rho)\,S[t]/g` and step :math:`t`
    fires against :math:`\theta + a\,b[t-1]` (the same threshold sequence, stored one step
    earlier), with snnTorch's immediate reset by that threshold.

    Returns:
        ``(spk, mem, b)``.
    """
    check_reset("adaptive_leaky", reset_mechanism)
    spike_grad = spike_fn(spike_grad)
    rho = clamp01(rho)
    if not reset_delay:
        return _alif_reset_now(
            x, mem, b, beta, rho, adaptation, threshold, spike_grad, reset_mechanism, graded_spikes_factor
        )
    theta_prev = threshold + adaptation * b
    z_prev = spike_grad(mem - theta_prev)
    reset = z_prev.detach()
    b = rho * b + (1 - rho) * z_prev
    mem = _leak(x, mem, reset, clamp01(beta), theta_prev, reset_mechanism)
    spk = spike_grad(mem - (threshold + adaptation * b)) * graded_spikes_factor
    return spk, mem, b


def _alif_reset_now(
    x: Tensor,
    mem: Tensor,
    b: Tensor,
    beta: Scalar,
    rho: Scalar,
    adaptation: Scalar,
    threshold: Scalar,
    spike_grad: SpikeFn,
    reset_mechanism: str,
    graded_spikes_factor: Scalar,
) -> tuple[Tensor, Tensor, Tensor]:
    """``adaptive_leaky_step`` with ``reset_delay=False`` (``rho`` already clamped)."""
    theta = threshold + adaptation * b
    reset = None if reset_mechanism == "none" else detached_reset(spike_grad, mem, theta)
    mem = _leak(x, mem, reset, clamp01(beta), theta, reset_mechanism)
    z = spike_grad(mem - theta)
    spk = z * graded_spikes_factor
    mem = reset_now(mem, z, reset, threshold=theta, graded_spikes_factor=1.0, reset_mechanism=reset_mechanism)
    b = rho * b + (1 - rho) * z
    return spk, mem, b
