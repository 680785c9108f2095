"""Activation and normalisation layers and functions as IR nodes, for :func:`snngraph.frontends.fx.trace`:
``nn.Sigmoid/Tanh/GELU``, ``nn.LayerNorm``, ``nn.GroupNorm`` and their functional forms.

Importing this module adds the handlers to :data:`fx_ops.MODULES` and :data:`fx_ops.FUNCTIONS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from snngraph.frontends.fx_ops import FUNCTIONS, MODULES, tensor
from snngraph.ir.errors import GraphError
from snngraph.ir.graph import Handle

if TYPE_CHECKING:
    from snngraph.frontends.fx import Translator


def _layer_norm_module(tr: Translator, m: nn.LayerNorm, x: Handle, name: str) -> Handle:
    h = tr.g.layer_norm(x, m.normalized_shape, m.eps, weight=m.weight, bias_value=m.bias,
                        elementwise_affine=m.weight is not None, bias=m.bias is not None, name=name)
    tr.learnable(name, weight=m.weight, bias=m.bias)
    return h


def _group_norm_module(tr: Translator, m: nn.GroupNorm, x: Handle, name: str) -> Handle:
    if x.shape[0] != m.num_channels:
        raise GraphError(f"GroupNorm expects {m.num_channels} channels, got per-step shape {list(x.shape)}")
    h = tr.g.group_norm(x, m.num_groups, m.eps, affine=m.affine, weight=m.weight, bias_value=m.bias, name=name)
    tr.learnable(name, weight=m.weight, bias=m.bias)
    return h


def _param(value: Any, what: str) -> Any:
    """A weight given to a functional norm: a model parameter or constant tensor, or ``None``."""
    if value is None or isinstance(value, torch.Tensor):
        return value
    raise GraphError(f"{what} must be a parameter or constant tensor, got {value!r}")


def layer_norm(tr: Translator, x: Any, normalized_shape: Any, weight: Any = None, bias: Any = None,
               eps: float = 1e-5, name: str = "") -> Handle:
    """``F.layer_norm``; weight and bias are parameters of the model (or constants)."""
    weight, bias = _param(weight, "layer_norm weight"), _param(bias, "layer_norm bias")
    h = tr.g.layer_norm(tensor(x, "layer_norm"), normalized_shape, eps, elementwise_affine=weight is not None,
                        bias=bias is not None, weight=weight, bias_value=bias, name=name)
    tr.learnable(name, weight=weight, bias=bias)
    return h


def group_norm(tr: Translator, x: Any, num_groups: int, weight: Any = None, bias: Any = None, eps: float = 1e-5,
               name: str = "") -> Handle:
    """``F.group_norm``; weight and bias are parameters of the model (or constants)."""
    weight, bias = _param(weight, "group_norm weight"), _param(bias, "group_norm bias")
    h = tr.g.group_norm(tensor(x, "group_norm"), num_groups, eps, affine=weight is not None or bias is not None,
                        weight=weight, bias_value=bias, name=name)
    tr.learnable(name, weight=weight, bias=bias)
    return h


def sigmoid(tr: Translator, x: Any, name: str = "") -> Handle:
    return tr.g.sigmoid(tensor(x, "sigmoid"), name=name)


def tanh(tr: Translator, x: Any, name: str = "") -> Handle:
    return tr.g.tanh(tensor(x, "tanh"), name=name)


def gelu(tr: Translator, x: Any, approximate: str = "none", name: str = "") -> Handle:
    return tr.g.gelu(tensor(x, "gelu"), approximate, name=name)


MODULES.update({
    nn.Sigmoid: lambda tr, m, x, name: tr.g.sigmoid(x, name=name),
    nn.Tanh: lambda tr, m, x, name: tr.g.tanh(x, name=name),
    nn.GELU: lambda tr, m, x, name: tr.g.gelu(x, m.approximate, name=name),
    nn.LayerNorm: _layer_norm_module,
    nn.GroupNorm: _group_norm_module,
})

FUNCTIONS.update({
    torch.sigmoid: sigmoid, F.sigmoid: sigmoid, "sigmoid": sigmoid,
    torch.tanh: tanh, F.tanh: tanh, "tanh": tanh,
    F.gelu: gelu,
    F.layer_norm: layer_norm,
    F.group_norm: group_norm,
})
