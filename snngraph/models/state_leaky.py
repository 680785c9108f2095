r"""State-only leaky neuron (snnTorch 1.0.0's ``StateLeaky`` / ``LinearLeaky``), declared once.

snnTorch computes the membrane as a causal convolution of the input with the kernel
:math:`h[s] = e^{-s/\tau}`; with the full window that convolution *is* the first-order recurrence
declared here, so one step function serves the per-step graph, streaming, ONNX and ``sg.nn``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from snngraph.ir.model import ParamSpec, neuron_model
from snngraph.models.common import FIRING, fire


def _tau_nonzero(values: dict[str, Any]) -> str | None:
    return "tau must be non-zero" if np.any(values["tau"] == 0) else None


def _beta(node: Any) -> np.ndarray:
    """snnTorch's ``beta`` buffer (read only when it builds ``tau = 1 / (1 - beta + 1e-12)``)."""
    return (1.0 - 1.0 / node.tau.value + 1e-12).astype(node.tau.value.dtype)


@neuron_model("state_leaky", params={"tau": ParamSpec(None), **FIRING}, state=("mem",), check=_tau_nonzero,
              builtin=True, snntorch_buffers={"reset_mechanism_val": lambda node: 0, "beta": _beta})
def state_leaky(ops: Any, x: Any, state: dict[str, Any], p: dict[str, Any]) -> tuple[Any, dict]:
    r"""State-only leaky neuron (snnTorch ``StateLeaky``); ports ``spk``, ``mem``.

    .. math::
        U[t] &= \sum_{s=0}^{t} e^{-s/\tau} I[t-s] = e^{-1/\tau}\,U[t-1] + I[t] \\
        S[t] &= g\,H(U[t] - \theta)

    No reset: the spikes threshold the state but never feed back. :math:`\tau` is snnTorch's
    ``tau = 1 / (1 - beta + 1e-12)``, so the per-step decay is :math:`e^{-1/\tau} = e^{\beta - 1}`
    (not :math:`\beta`), exactly as snnTorch's kernel decays.
    """
    mem = ops.exp(-1.0 / p["tau"]) * state["mem"] + x
    return fire(ops, mem, p["threshold"], p["graded_spikes_factor"]), {"mem": mem}


def truncated(ops: Any, mem: Any, mem_k_ago: Any, tau: Any, steps: int) -> Any:
    r"""snnTorch's ``kernel_truncation_steps=K``: only the ``K`` newest taps of the kernel count.

    .. math:: U_K[t] = \sum_{s=0}^{K-1} e^{-s/\tau} I[t-s] = U[t] - e^{-K/\tau}\,U[t-K]

    with :math:`U` the full-window membrane of :func:`state_leaky` and :math:`U[t-K] = 0` for :math:`t < K`.
    """
    return mem - ops.exp(-float(steps) / tau) * mem_k_ago
