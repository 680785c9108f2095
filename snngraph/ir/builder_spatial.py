"""Builder methods for up-sampling and channel dropout on (C, H, W) maps (``conv_transpose2d``,
``upsample``, ``dropout2d``) and for shape ops (``transpose``, ``permute``, ``reshape``), with torch's
argument names. Mixed into ``Graph`` by :class:`~snngraph.ir.builder.GraphBuilder`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from snngraph.ir import synapses_shape as H
from snngraph.ir import synapses_spatial as P
from snngraph.ir.errors import GraphError

if TYPE_CHECKING:
    from snngraph.ir.graph import Handle


def _scales(value: Any, n: int, what: str) -> tuple[float, ...]:
    """A positive finite number or ``n`` of them as a tuple of ``n`` floats."""
    from snngraph.ir.builder import _real

    items = tuple(value) if isinstance(value, (tuple, list)) else (value,) * n
    if len(items) != n:
        raise GraphError(f"{what} must be a number or {n} numbers, got {value!r}")
    out = tuple(_real(v, what) for v in items)
    if min(out) <= 0:
        raise GraphError(f"{what} must be positive, got {value!r}")
    return out


class SpatialBuilder:
    """Up-sampling, channel-dropout and shape builders (the graph state lives in ``Graph``)."""

    def conv_transpose2d(self, x: Any, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                         output_padding: Any = 0, groups: int = 1, bias: bool = True, dilation: Any = 1,
                         weight: Any = None, bias_value: Any = None, name: str | None = None) -> Handle:
        """``torch.nn.ConvTranspose2d`` (its argument order) on (C, H, W) per-step inputs; in_channels is
        taken from ``x``, ``weight`` has shape ``(in_channels, out_channels / groups, kH, kW)``."""
        from snngraph.ir.builder import _conv_params, _int, _tuple

        name = self._name(name, "conv_transpose2d")
        where = f"conv_transpose2d '{name}'"
        ref, t = self._in_type(x, where)
        if len(t.shape) != 3:
            raise GraphError(f"{where}: expects (C, H, W) per step, got {list(t.shape)}")
        out_channels = _int(out_channels, f"{where}: out_channels", low=1)
        k, s, d = (_tuple(v, 2, f"{where} {key}") for v, key in
                   ((kernel_size, "kernel_size"), (stride, "stride"), (dilation, "dilation")))
        p = _tuple(padding, 2, f"{where} padding", low=0)
        op_ = _tuple(output_padding, 2, f"{where} output_padding", low=0)
        c_in = t.shape[0]
        groups, w, b = _conv_params(where, c_in, out_channels, groups, k, weight, bias, bias_value, transposed=True)
        return self._add(P.ConvTranspose2d(
            name=name, inputs=(ref,), in_channels=c_in, out_channels=out_channels, kernel_size=k, stride=s,
            padding=p, output_padding=op_, dilation=d, groups=groups, weight=w, bias=b))

    def upsample(self, x: Any, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                 align_corners: bool | None = None, name: str | None = None) -> Handle:
        """``torch.nn.Upsample(size, scale_factor, mode, align_corners)`` per step: ``"nearest"`` on (C, L) or
        (C, H, W), ``"bilinear"`` on (C, H, W). Give exactly one of ``size`` and ``scale_factor``."""
        from snngraph.ir.builder import _flag, _tuple

        name = self._name(name, "upsample")
        where = f"upsample '{name}'"
        ref, t = self._in_type(x, where)
        if not isinstance(mode, str) or mode not in P.UPSAMPLE_MODES:
            raise GraphError(f"{where}: mode must be one of {list(P.UPSAMPLE_MODES)}, got {mode!r}")
        n = len(t.shape) - 1
        if n not in ((2,) if mode == "bilinear" else (1, 2)):
            wanted = "(C, H, W)" if mode == "bilinear" else "(C, L) or (C, H, W)"
            raise GraphError(f"{where}: mode {mode!r} expects {wanted} per step, got {list(t.shape)}")
        if (size is None) == (scale_factor is None):
            raise GraphError(f"{where}: give exactly one of size and scale_factor")
        corners = False if align_corners is None else _flag(align_corners, f"{where}: align_corners")
        if corners and mode == "nearest":
            raise GraphError(f"{where}: align_corners only applies to mode 'bilinear'")
        scales = None
        if size is not None:
            out = _tuple(size, n, f"{where} size")
        else:
            scales = _scales(scale_factor, n, f"{where}: scale_factor")
            out = tuple(math.floor(i * s) for i, s in zip(t.shape[1:], scales, strict=True))
            if min(out) < 1:
                raise GraphError(f"{where}: scale_factor {list(scales)} leaves no output for {list(t.shape[1:])}")
        return self._add(P.Upsample(name=name, inputs=(ref,), mode=mode, size=out, scale_factor=scales,
                                    align_corners=corners))

    def dropout2d(self, x: Any, p: float = 0.5, name: str | None = None) -> Handle:
        """``torch.nn.Dropout2d(p)`` on (C, H, W) per-step maps: whole channels dropped in ``train()`` mode,
        a fresh mask each time step; identity in ``eval()``."""
        name = self._name(name, "dropout2d")
        ref, _ = self._in_type(x, f"dropout2d '{name}'")
        if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.integer, np.floating)) or \
                not 0.0 <= p <= 1.0:
            raise GraphError(f"dropout2d '{name}': p must lie in [0, 1], got {p!r}")
        return self._add(P.Dropout2d(name=name, inputs=(ref,), p=float(p)))

    # --- shapes (per-step dims: 0 is the first feature dim, the batch is implicit) --------------------
    def transpose(self, x: Any, dim0: int, dim1: int, name: str | None = None) -> Handle:
        """Swap per-step dims ``dim0`` and ``dim1`` (torch's ``x.transpose(dim0 + 1, dim1 + 1)`` on the batch)."""
        from snngraph.ir.builder import _int

        name = self._name(name, "transpose")
        where = f"transpose '{name}'"
        ref, _ = self._in_type(x, where)
        return self._add(H.Transpose(name=name, inputs=(ref,), dim0=_int(dim0, f"{where}: dim0"),
                                     dim1=_int(dim1, f"{where}: dim1")))

    def permute(self, x: Any, dims: Any, name: str | None = None) -> Handle:
        """Reorder the per-step dims: output dim ``i`` is input dim ``dims[i]`` (negative dims count from the end)."""
        from snngraph.ir.builder import _int

        name = self._name(name, "permute")
        where = f"permute '{name}'"
        ref, t = self._in_type(x, where)
        if not isinstance(dims, (tuple, list)):
            raise GraphError(f"{where}: dims must be a tuple of ints, got {dims!r}")
        n = len(t.shape)
        order = tuple(_int(d, f"{where}: dims") for d in dims)
        return self._add(H.Permute(name=name, inputs=(ref,), dims=tuple(d % n if -n <= d < 0 else d for d in order)))

    def reshape(self, x: Any, shape: Any, name: str | None = None) -> Handle:
        """The per-step value in per-step ``shape`` (one entry may be -1: inferred), same element count."""
        from snngraph.ir.builder import _int

        name = self._name(name, "reshape")
        where = f"reshape '{name}'"
        ref, t = self._in_type(x, where)
        dims = list(shape) if isinstance(shape, (tuple, list)) else [shape]
        dims = [_int(d, f"{where}: shape", low=-1) for d in dims]
        if not dims or dims.count(-1) > 1 or 0 in dims:
            raise GraphError(f"{where}: shape must be positive ints with at most one -1, got {shape!r}")
        if -1 in dims:
            known = math.prod(d for d in dims if d != -1)
            if math.prod(t.shape) % known:
                raise GraphError(f"{where}: cannot reshape per-step shape {list(t.shape)} to {list(dims)}")
            dims[dims.index(-1)] = math.prod(t.shape) // known
        return self._add(H.Reshape(name=name, inputs=(ref,), shape=tuple(dims)))

    def slice(self, x: Any, dim: int, start: int, stop: int, name: str | None = None) -> Handle:
        """Entries ``start:stop`` of per-step dim ``dim`` (torch's ``x.narrow(dim + 1, start, stop - start)``
        on the batch); ``x.chunk(n, dim)`` is one slice per chunk."""
        from snngraph.ir.builder import _int

        name = self._name(name, "slice")
        where = f"slice '{name}'"
        ref, _ = self._in_type(x, where)
        return self._add(H.Slice(name=name, inputs=(ref,), dim=_int(dim, f"{where}: dim"),
                                 start=_int(start, f"{where}: start", low=0), stop=_int(stop, f"{where}: stop", low=1)))
