r"""Pooled spikes of declared neuron models (``spike_pool=True`` in :func:`~snngraph.ir.model.neuron_model`).

snnTorch's ``SConv2dLSTM(max_pool=k)`` / ``(avg_pool=k)`` fires on the pooled membrane while its state
(and reset) stays unpooled: :math:`S[t] = g\,H(Q(U[t]) - \theta)`, :math:`Q` a 2-D max or average
pooling with window = stride = ``pool_size`` (no padding, floor mode). A pooling model's nodes get
two fields, ``pool`` (``"none"``, ``"max"``, ``"avg"``) and ``pool_size`` (a pair, ``None`` without
pooling), its kernels and builder the keywords of those names, and its step function calls
``ops.pool(v)`` (the identity without pooling). The ``spk`` port has the pooled per-step shape
``(C, H // k_h, W // k_w)``; the state ports keep ``(C, H, W)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from snngraph.ir.errors import GraphError

POOLS = ("none", "max", "avg")
"""The ``pool`` field's values."""


def pool_fields(pool: Any, size: Any, where: str) -> dict[str, Any]:
    """The node fields of the builder's ``pool`` / ``pool_size`` (an int or a pair; required with pooling)."""
    if not isinstance(pool, str) or pool not in POOLS:
        raise GraphError(f"{where}: pool must be one of {POOLS}, got {pool!r}")
    if pool == "none":
        if size is not None:
            raise GraphError(f"{where}: pool_size given without pool ('max' or 'avg')")
        return {"pool": pool, "pool_size": None}
    pair = (size, size) if isinstance(size, (int, np.integer)) else size
    if (not isinstance(pair, (tuple, list)) or len(pair) != 2
            or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in pair)):
        raise GraphError(f"{where}: pool={pool!r} needs pool_size, a positive int or a pair of them, got {size!r}")
    return {"pool": pool, "pool_size": (int(pair[0]), int(pair[1]))}


def pool_problem(pool: str, size: tuple[int, ...] | None) -> str | None:
    """Why a node's ``pool`` / ``pool_size`` fields do not fit together, or ``None``."""
    if pool not in POOLS:
        return f"pool must be one of {POOLS}, got {pool!r}"
    if (pool == "none") != (size is None):
        return "pool_size is given exactly when pool is 'max' or 'avg'"
    if size is not None and (len(size) != 2 or min(size) < 1):
        return f"pool_size must be two positive ints, got {list(size)}"
    return None


def pooled_shape(shape: tuple[int, ...], pool: str, size: tuple[int, ...] | None) -> tuple[int, ...] | str:
    """The per-step shape of the spikes for a state of per-step ``shape``, or why it cannot be pooled."""
    if pool == "none" or size is None:
        return tuple(shape)
    if len(shape) != 3 or shape[1] < size[0] or shape[2] < size[1]:
        return f"pool {list(size)} needs a (C, H, W) state at least that large, got {list(shape)}"
    return (shape[0], shape[1] // size[0], shape[2] // size[1])
