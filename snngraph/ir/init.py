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
    snnTorch) becomes float32. Values are checked in float64 first, so a number beyond the float32
    range is reported rather than silently becoming ``inf``."""
    if hasattr(value, "detach"):
        value = _tensor_to_numpy(value, what)
    if isinstance(value, (bool, np.bool_, str, bytes)) or getattr(value, "dtype", None) is not None and (
            np.asarray(value).dtype.kind not in "iuf"):
        raise GraphError(f"{what}: expected a real number, array or tensor, got {_describe(value)}")
    explicit64 = getattr(value, "dtype", None) == np.float64
    try:
        wide = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise GraphError(f"{what}: expected a real number, array or tensor, got {_describe(value)}") from None
    if not np.all(np.isfinite(wide)):
        raise GraphError(f"{what}: non-finite values")
    if not explicit64 and wide.size and float(np.max(np.abs(wide))) > float(np.finfo(np.float32).max):
        raise GraphError(f"{what}: values beyond the float32 range (pass a float64 array to keep them)")
    arr = wide if explicit64 else wide.astype(np.float32)
    if shape is not None and tuple(arr.shape) != tuple(shape):
        raise GraphError(f"{what}: expected shape {list(shape)}, got {list(arr.shape)}")
    return arr


def _tensor_to_numpy(value, what: str) -> np.ndarray:
    """A torch tensor's values as a numpy array (float64 kept, other real dtypes as float32)."""
    import torch

    if not isinstance(value, torch.Tensor):
        raise GraphError(f"{what}: expected a number, array or tensor, got {type(value).__name__}")
    if value.device.type == "meta":
        raise GraphError(f"{what}: the tensor is on the meta device and has no values (materialise it first, "
                         "e.g. module.to_empty(device='cpu') and initialise it)")
    if value.is_complex() or value.dtype == torch.bool:
        raise GraphError(f"{what}: expected a real tensor, got dtype {value.dtype}")
    value = value.detach()
    if value.layout != torch.strided:
        value = value.to_dense()
    return value.to("cpu", torch.float64 if value.dtype == torch.float64 else torch.float32).numpy()


def _describe(value) -> str:
    dtype = getattr(value, "dtype", None)
    return f"{type(value).__name__} of dtype {dtype}" if dtype is not None else type(value).__name__
