"""Matrix products and adaptive average pooling as IR nodes, for :func:`snngraph.frontends.fx.trace`:
``torch.matmul`` / ``@`` / ``torch.bmm`` of per-step matrices, ``nn.AdaptiveAvgPool1d/2d`` and
``F.adaptive_avg_pool1d/2d``. (``x * y`` and ``x - y`` are handled in :mod:`fx_ops`.)

Importing this module adds the handlers to :data:`fx_ops.MODULES` and :data:`fx_ops.FUNCTIONS`.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from snngraph.frontends.fx_ops import FUNCTIONS, MODULES, tensor
from snngraph.ir.graph import Handle

if TYPE_CHECKING:
    from snngraph.frontends.fx import Translator


def matmul(tr: Translator, a: Any, b: Any, name: str = "") -> Handle:
    """``a @ b`` of batched values: per step, matrices ``(..., n, k) @ (..., k, m)``."""
    return tr.g.matmul(tensor(a, "matmul"), tensor(b, "matmul"), name=name)


def _adaptive(dims: int):
    def handler(tr: Translator, x: Any, output_size: Any, name: str = "") -> Handle:
        build = tr.g.adaptive_avg_pool1d if dims == 1 else tr.g.adaptive_avg_pool2d
        return build(tensor(x, "adaptive_avg_pool"), output_size, name=name)

    return handler


MODULES.update({
    nn.AdaptiveAvgPool1d: lambda tr, m, x, name: tr.g.adaptive_avg_pool1d(x, m.output_size, name=name),
    nn.AdaptiveAvgPool2d: lambda tr, m, x, name: tr.g.adaptive_avg_pool2d(x, m.output_size, name=name),
})

FUNCTIONS.update({
    torch.matmul: matmul, operator.matmul: matmul, torch.bmm: matmul, "matmul": matmul, "bmm": matmul,
    F.adaptive_avg_pool1d: _adaptive(1), F.adaptive_avg_pool2d: _adaptive(2),
})
