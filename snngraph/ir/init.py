"""Default parameter initialisation, identical to torch.nn's and drawn from torch's RNG, so
``torch.manual_seed(s)`` makes a built graph's weights equal those of the torch layers."""

from __future__ import annotations

import math

import numpy as np

from snngraph.ir import limits
from snngraph.ir.errors import GraphError


def uniform_fan_in(shape: tuple[int, ...], fan_in: int, what: str = "parameter") -> np.ndarray:
    """``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``: torch's default for Linear/Conv weights
    (kaiming_uniform with a=sqrt(5)) and biases. ``what`` names the parameter in errors."""

    w = _empty(shape, what)
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return w.uniform_(-bound, bound).numpy()


def kaiming_weight(shape: tuple[int, ...], what: str = "parameter") -> np.ndarray:
    """torch.nn.Linear / ConvNd default weight init (kaiming_uniform_, a=sqrt(5)). ``what`` names the
    parameter in errors."""
    import torch

    w = _empty(shape, what)
    torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5))
    return w.numpy()


def check_param_size(shape: tuple[int, ...], what: str) -> None:
    """Raise GraphError, before anything is allocated, when a parameter of ``shape`` would hold more
    than ``sg.limits.MAX_PARAM_ELEMENTS`` elements."""
    size = math.prod(shape)
    if size > limits.MAX_PARAM_ELEMENTS:
        raise GraphError(f"{what}: a parameter of shape {list(shape)} ({size} elements) is larger than "
                         f"{limits.MAX_PARAM_ELEMENTS} elements (sg.limits.MAX_PARAM_ELEMENTS)")


def _empty(shape: tuple[int, ...], what: str):
    """``torch.empty(shape)`` after :func:`check_param_size`; an allocation failure is a GraphError too."""
    import torch

    check_param_size(shape, what)
    try:
        return torch.empty(shape)
    except (RuntimeError, MemoryError) as err:  # torch reports a failed allocation as RuntimeError
        raise GraphError(f"{what}: cannot allocate a parameter of shape {list(shape)} ({err})") from None


def as_array(value, what: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A user-given tensor, array or number as a float numpy array (checked shape, finite).

    float64 arrays and tensors stay float64; everything else (Python numbers included, as in
    snnTorch) becomes float32."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        explicit64 = getattr(value, "dtype", None) == np.float64
        arr = np.asarray(value, dtype=np.float64 if explicit64 else np.float32)
    except (TypeError, ValueError):
        raise GraphError(f"{what}: expected a number, array or tensor, got {type(value).__name__}") from None
    if shape is not None and tuple(arr.shape) != tuple(shape):
        raise GraphError(f"{what}: expected shape {list(shape)}, got {list(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise GraphError(f"{what}: non-finite values")
    return arr
