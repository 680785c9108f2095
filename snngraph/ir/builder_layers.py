"""Builder methods for activations (``sigmoid``, ``tanh``, ``gelu``) and per-sample normalisation
(``layer_norm``, ``group_norm``), with torch's argument names. Mixed into ``Graph`` by
:class:`~snngraph.ir.builder.GraphBuilder`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from snngraph.ir import synapses_act as A
from snngraph.ir import synapses_norm as N
from snngraph.ir.errors import GraphError
from snngraph.ir.init import as_array
from snngraph.ir.types import Param

if TYPE_CHECKING:
    from snngraph.ir.graph import Handle


def _affine(value: Any, default: float, shape: tuple[int, ...], what: str) -> Param:
    arr = np.full(shape, default, np.float32) if value is None else as_array(value, what, shape)
    return Param(arr, True)


class LayerBuilder:
    """Activation and normalisation builders (the graph state lives in ``Graph``)."""

    def _unary(self, cls: type, x: Any, name: str | None, **fields: Any) -> Handle:
        name = self._name(name, cls.op)
        ref, _ = self._in_type(x, f"{cls.op} '{name}'")
        return self._add(cls(name=name, inputs=(ref,), **fields))

    def sigmoid(self, x: Any, name: str | None = None) -> Handle:
        """``torch.sigmoid`` of the per-step value."""
        return self._unary(A.Sigmoid, x, name)

    def tanh(self, x: Any, name: str | None = None) -> Handle:
        """``torch.tanh`` of the per-step value."""
        return self._unary(A.Tanh, x, name)

    def gelu(self, x: Any, approximate: str = "none", name: str | None = None) -> Handle:
        """``torch.nn.GELU(approximate)``: exact (``"none"``, with erf) or the ``"tanh"`` approximation."""
        if not isinstance(approximate, str):
            name = self._name(name, "gelu")
            raise GraphError(f"gelu '{name}': approximate must be 'none' or 'tanh', got {approximate!r}")
        return self._unary(A.GELU, x, name, approximate=approximate)

    def layer_norm(self, x: Any, normalized_shape: Any, eps: float = 1e-5, elementwise_affine: bool = True,
                   bias: bool = True, weight: Any = None, bias_value: Any = None, name: str | None = None) -> Handle:
        """``torch.nn.LayerNorm(normalized_shape, eps, elementwise_affine, bias)`` over the last per-step dims;
        ``weight`` / ``bias_value`` give the affine values (default ones and zeros)."""
        from snngraph.ir.builder import _flag, _int, _real

        name = self._name(name, "layer_norm")
        where = f"layer_norm '{name}'"
        ref, _ = self._in_type(x, where)
        dims = (normalized_shape,) if not isinstance(normalized_shape, (tuple, list)) else tuple(normalized_shape)
        if not dims:
            raise GraphError(f"{where}: normalized_shape must not be empty")
        shape = tuple(_int(d, f"{where}: normalized_shape", low=1) for d in dims)
        eps = _real(eps, f"{where}: eps")
        affine, with_bias = _flag(elementwise_affine, f"{where}: elementwise_affine"), _flag(bias, f"{where}: bias")
        w = _affine(weight, 1.0, shape, f"{where} weight") if affine or weight is not None else None
        b = _affine(bias_value, 0.0, shape, f"{where} bias") if (affine and with_bias) or bias_value is not None \
            else None
        return self._add(N.LayerNorm(name=name, inputs=(ref,), normalized_shape=shape, eps=eps, weight=w, bias=b))

    def group_norm(self, x: Any, num_groups: int, eps: float = 1e-5, affine: bool = True, weight: Any = None,
                   bias_value: Any = None, name: str | None = None) -> Handle:
        """``torch.nn.GroupNorm(num_groups, num_channels, eps, affine)`` on (C, ...) per-step values
        (num_channels is taken from ``x``)."""
        from snngraph.ir.builder import _flag, _int, _real

        name = self._name(name, "group_norm")
        where = f"group_norm '{name}'"
        ref, t = self._in_type(x, where)
        groups = _int(num_groups, f"{where}: num_groups", low=1)
        c = t.shape[0]
        if c % groups:
            raise GraphError(f"{where}: num_groups={groups} must divide the {c} channels")
        eps = _real(eps, f"{where}: eps")
        affine = _flag(affine, f"{where}: affine")
        w = _affine(weight, 1.0, (c,), f"{where} weight") if affine or weight is not None else None
        b = _affine(bias_value, 0.0, (c,), f"{where} bias") if affine or bias_value is not None else None
        return self._add(N.GroupNorm(name=name, inputs=(ref,), num_groups=groups, num_channels=c, eps=eps, weight=w,
                                     bias=b))
