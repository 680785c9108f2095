"""Default parameter initialisation, identical to torch.nn's and drawn from torch's RNG, so
``torch.manual_seed(s)`` makes a built graph's weights equal those of the torch layers."""

from __future__ import annotations

import math

import numpy as np

from snngraph.ir.errors import GraphError


def uniform_fan_in(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    """``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``: torch's default for Linear/Conv weights
    (kaiming_uniform with a=sqrt(5)) and biases."""
    import torch

    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return torch.empty(shape).uniform_(-bound, bound).numpy()


def kaiming_weight(shape: tuple[int, ...]) -> np.ndarray:
    """torch.nn.Linear / ConvNd default weight init (kaiming_uniform_, a=sqrt(5))."""
    import torch

    w = torch.empty(shape)
    torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5))
    return w.numpy()


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
