r"""Lapicque's RC neuron: the step kernel and snnTorch's resolution of ``beta``, ``R`` and ``C``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from snngraph.ir.errors import GraphError
from snngraph.runtimes.torch.kernels_common import (
    Scalar,
    SpikeFn,
    check_reset,
    detached_reset,
    fire,
    spike_fn,
)

__all__ = ["is_given", "lapicque_rc", "lapicque_step"]


def lapicque_step(
    x: Tensor,
    mem: Tensor,
    *,
    R: Scalar,
    C: Scalar,
    time_step: Scalar = 1.0,
    threshold: Scalar = 1.0,
    spike_grad: SpikeFn | None = None,
    reset_mechanism: str = "subtract",
    graded_spikes_factor: Scalar = 1.0,
) -> tuple[Tensor, Tensor]:
    r"""One step of snnTorch's ``Lapicque`` neuron (forward-Euler RC circuit).

    .. math::
        U_0[t] &= I[t]\,R\,\frac{1}{RC}\,\Delta t + \left(1 - \frac{\Delta t}{RC}\right) U[t-1] \\
        U[t] &= U_0[t] - R[t]\,\theta \quad \text{(subtract)}, \qquad
            U_0[t] - R[t]\,U_0[t] \quad \text{(zero: the new membrane is cleared)} \\
        S[t] &= g\,H(U[t] - \theta)

    ``beta`` does not appear: snnTorch uses it only to derive ``R`` or ``C``
    (:func:`lapicque_rc`). snnTorch's ``Lapicque`` has no ``reset_delay`` option.

    Returns:
        ``(spk, mem)``.
    """
    check_reset("lapicque", reset_mechanism)
    spike_grad = spike_fn(spike_grad)
    reset = None if reset_mechanism == "none" else detached_reset(spike_grad, mem, threshold)
    mem = x * R * (1 / (R * C)) * time_step + (1 - (time_step / (R * C))) * mem
    if reset_mechanism == "subtract":
        mem = mem - reset * threshold
    elif reset_mechanism == "zero":
        mem = mem - reset * mem
    spk = fire(spike_grad, mem, threshold, graded_spikes_factor)
    return spk, mem


def is_given(value: Any) -> bool:
    """snnTorch's truthiness test: ``None``, ``False`` and zero mean "not given"; tensors are given."""
    if value is None or value is False:
        return False
    if isinstance(value, Tensor):
        return True
    return bool(np.any(np.asarray(value) != 0))


def _log(value: Any) -> Any:
    if isinstance(value, Tensor):
        return torch.log(value)
    out = np.log(np.asarray(value, dtype=np.float64))
    return float(out) if out.ndim == 0 else out


def _one_like(beta: Any) -> Any:
    return torch.as_tensor(1) if isinstance(beta, Tensor) else 1.0


def _require_beta(beta: Any) -> None:
    arr = np.asarray(beta, dtype=np.float64)
    if not np.all((arr > 0) & (arr < 1)):
        raise GraphError(f"lapicque: beta must be in (0, 1) to derive R or C, got {beta!r}")


def _require_positive(name: str, value: Any) -> None:
    if isinstance(value, Tensor):
        ok = bool(torch.all(torch.isfinite(value) & (value > 0)))
    else:
        arr = np.asarray(value, dtype=np.float64)
        ok = bool(np.all(np.isfinite(arr) & (arr > 0)))
    if not ok:
        raise GraphError(f"lapicque: {name} must be finite and positive (beta in (0, 1)), got {value!r}")


def lapicque_rc(beta: Any = None, R: Any = None, C: Any = None, time_step: Any = 1.0, *, check: bool = True):
    r"""Resolve Lapicque's ``R`` and ``C`` the way snnTorch's ``_lapicque_cases`` does.

    Exactly one of these must hold (``None``, ``False`` or 0 mean "not given", as in snnTorch):

    * ``R`` and ``C`` given, ``beta`` not: they are used as they are;
    * ``beta`` only: :math:`R = 1`, :math:`C = \Delta t / (R \log(1/\beta))`;
    * ``beta`` and ``R``: :math:`C = \Delta t / (R \log(1/\beta))`;
    * ``beta`` and ``C``: :math:`R = \Delta t / (C \log(1/\beta))`.

    Values may be Python numbers, numpy arrays or torch tensors; tensors are computed with
    snnTorch's own expressions (``R`` becomes ``torch.as_tensor(1)``), so buffers match bit for
    bit. snnTorch accepts ``beta``, ``R`` and ``C`` together and then fails at the first forward
    (``R`` is never set); here that is an error up front.

    Args:
        beta: membrane decay, in (0, 1).
        R: resistance.
        C: capacitance.
        time_step: :math:`\Delta t`.
        check: verify that ``R``, ``C`` and ``time_step`` are finite and positive.

    Returns:
        ``(R, C)``.

    Raises:
        GraphError: a combination snnTorch rejects, or non-finite / non-positive results.
    """
    has_beta, has_r, has_c = is_given(beta), is_given(R), is_given(C)
    if has_r and has_c and not has_beta:
        out = (R, C)
    elif has_beta and not (has_r and has_c):
        if not isinstance(beta, Tensor):
            _require_beta(beta)
        log_inv = _log(1 / beta)
        if has_c:
            out = (time_step / (C * log_inv), C)
        else:
            R = R if has_r else _one_like(beta)
            out = (R, time_step / (R * log_inv))
    else:
        raise GraphError(
            "lapicque: give beta (optionally with one of R, C) or both R and C without beta; "
            f"got beta={beta!r}, R={R!r}, C={C!r}"
        )
    if check:
        for name, value in (("R", out[0]), ("C", out[1]), ("time_step", time_step)):
            _require_positive(name, value)
    return out
