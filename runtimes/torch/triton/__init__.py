"""Triton kernels for the fused neuron scans (``sg.compile(g, kernels=...)``, SPEC §12).

This package imports without ``triton``: the kernels (``leaky.py``, ``synaptic.py``, ``recurrent.py``,
``spikingjelly.py``, ``norse.py``, ``lstm.py``) and their custom ops (``ops.py``) load on first use.
:func:`use_triton` is the per-call choice, made from the tensor's device and the compile-time setting,
with no host sync.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch
from torch import Tensor

from snngraph.ir.errors import GraphError
from snngraph.ir.surrogate import Surrogate

KERNELS = ("auto", "torch", "triton")
"""The values of ``sg.compile(..., kernels=)``."""

SURROGATES = ("atan", "fast_sigmoid", "sigmoid", "triangular", "heaviside", "straight_through_estimator",
              "spike_rate_escape", "LSO", "SFS")
"""The surrogates the kernels compute (``surrogate.py``); a ``custom`` one keeps the torch scan."""


@functools.cache
def available() -> bool:
    """Whether ``triton`` imports (checked once)."""
    try:
        if importlib.util.find_spec("triton") is None:
            return False
        import triton  # noqa: F401
    except Exception:  # a broken install counts as absent: "auto" falls back to the torch scans
        return False
    return True


def interpreting() -> bool:
    """Whether Triton's interpreter is on (``TRITON_INTERPRET=1``): kernels then run on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def check_kernels(kernels: object) -> str:
    """Validate ``sg.compile``'s ``kernels``; ``"triton"`` needs the package importable.

    Raises:
        GraphError: an unknown value, or ``"triton"`` without triton installed.
    """
    if not isinstance(kernels, str) or kernels not in KERNELS:
        raise GraphError(f"sg.compile: kernels must be one of {', '.join(map(repr, KERNELS))}, got {kernels!r}")
    if kernels == "triton" and not available():
        raise GraphError("sg.compile(kernels='triton') needs the triton package (pip install triton, or "
                         "kernels='auto' to fall back to the torch scans)")
    return kernels


def use_triton(kernels: str, x: Tensor, surrogate: Surrogate | None = None) -> bool:
    """Whether a fused scan over ``x`` runs as Triton kernels: ``"auto"`` on CUDA tensors when triton
    imports, ``"triton"`` always (on CPU tensors only under ``TRITON_INTERPRET=1``, else a GraphError);
    never for a ``custom`` (Python) surrogate, nor for float64 state (the kernels compute in float32:
    the torch scans keep float64 exact). Reads only ``x``'s device and dtype: no host synchronisation."""
    if kernels == "torch" or x.dtype == torch.float64 or (surrogate is not None and surrogate.name not in SURROGATES):
        return False
    if kernels == "auto":
        return x.is_cuda and available()
    if not x.is_cuda and not interpreting():
        raise GraphError(f"kernels='triton' on a {x.device.type} tensor: Triton kernels run on CUDA tensors, or on "
                         "CPU tensors only in Triton's interpreter (TRITON_INTERPRET=1); use kernels='auto' or "
                         "'torch' on CPU")
    return True
