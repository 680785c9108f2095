"""The torch maps of a cell model's weights (see :mod:`snngraph.ir.model_cell`): ``project``, ``recurrent``;
a heads model's ``project(x, head)`` (:mod:`snngraph.ir.model_heads`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
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


class HeadMaps:
    """A heads model's projections: ``maps(x, head)`` is :math:`W_h x + b_h`; ``maps.all(x)`` every
    present head's, concatenated along the features, which :meth:`sliced` then reads per head."""

    def __init__(self, t: dict[str, Any], heads: tuple[str, ...]):
        self.weights = {h: (t[f"{h}_weight"], t.get(f"{h}_bias")) for h in heads if t.get(f"{h}_weight") is not None}

    def __call__(self, x: Tensor, head: str) -> Tensor:
        w, b = self.weights[head]
        return F.linear(x, w, b)

    def all(self, x: Tensor) -> Tensor:
        return torch.cat([F.linear(x, w, b) for w, b in self.weights.values()], dim=-1)

    def sliced(self) -> Callable[[Tensor, str], Tensor]:
        """``project(x, head)`` over the output of :meth:`all`: the head's features (exactly its values)."""
        spans, start = {}, 0
        for head, (w, _) in self.weights.items():
            spans[head], start = (start, start + w.shape[0]), start + w.shape[0]
        return lambda x, head: x[..., spans[head][0]:spans[head][1]]


def model_maps(model: Any, t: dict[str, Any]) -> dict[str, Any]:
    """The kernel keywords of a cell model's weights: ``project`` (and ``recurrent``, gated cells)."""
    if model.heads is not None:
        return {"project": HeadMaps(t, tuple(model.heads.sizes))}
    project, recurrent = cell_maps(model.cell, model.gates, t)
    return {"project": project, "recurrent": recurrent}


def projected(x: Tensor, kwargs: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
    """A cell model's input sequence ``(T, B, ...)`` projected over all ``T*B`` rows at once, and the
    kernel keywords that then skip the projection (a heads model's: that read it per head)."""
    project = kwargs["project"]
    if isinstance(project, HeadMaps):
        rows = project.all(x.reshape(-1, *x.shape[2:]))
        return rows.reshape(*x.shape[:2], *rows.shape[1:]), {**kwargs, "project": project.sliced()}
    rows = project(x.reshape(-1, *x.shape[2:]))
    return rows.reshape(*x.shape[:2], *rows.shape[1:]), {**kwargs, "project": None}
