"""The torch maps of a cell model's weights (see :mod:`snngraph.ir.model_cell`): ``project``, ``recurrent``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from snngraph.ir.model_cell import conv_padding

Map = Callable[[Tensor], Tensor]


def cell_maps(kind: str, gates: int, t: dict[str, Any]) -> tuple[Map, Map]:
    """``(project, recurrent)`` of a cell of ``kind`` from its tensors by node field name."""
    if kind == "linear":
        w_ih, w_hh, b_ih, b_hh = (t.get(k) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        return (lambda x: F.linear(x, w_ih, b_ih)), (lambda h: F.linear(h, w_hh, b_hh))
    w, b = t["conv_weight"], t.get("conv_bias")
    cin, pad = w.shape[1] - w.shape[0] // gates, conv_padding(tuple(w.shape))
    w_x, w_h = w[:, :cin], w[:, cin:]
    return (lambda x: F.conv2d(x, w_x, b, padding=pad)), (lambda h: F.conv2d(h, w_h, None, padding=pad))


def projected(x: Tensor, kwargs: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
    """A cell model's input sequence ``(T, B, ...)`` projected over all ``T*B`` rows at once, and the
    kernel keywords that then skip the projection."""
    rows = kwargs["project"](x.reshape(-1, *x.shape[2:]))
    return rows.reshape(*x.shape[:2], *rows.shape[1:]), {**kwargs, "project": None}
