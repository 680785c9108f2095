"""ONNX lowering of the activation (``sigmoid``, ``tanh``, ``gelu``) and per-sample normalisation
(``layer_norm``, ``group_norm``) synapses, over rows ``(N, *shape)`` like every synapse.

Opset 17 is enough: ``Gelu`` and ``GroupNormalization`` (opsets 20 and 18) are written out with
``Erf`` / ``Tanh`` arithmetic and with ``LayerNormalization`` over the reshaped groups.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from snngraph.ir import synapses_act as A
from snngraph.ir import synapses_norm as N
from snngraph.ir.node import Node
from snngraph.ir.types import TensorType

if TYPE_CHECKING:
    from snngraph.runtimes.onnx.lower import Emitter

KINDS = (A.Sigmoid, A.Tanh, A.GELU, N.LayerNorm, N.GroupNorm)


def _gelu(e: Emitter, node: A.GELU, x: str) -> str:
    """``0.5 x (1 + erf(x / sqrt 2))``, or torch's ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``."""
    h = node.name
    if node.approximate == "tanh":
        cube = e.mul(e.mul(x, x, hint=h), x, hint=h)
        inner = e.mul(e.add(x, e.mul(cube, e.const(0.044715), hint=h), hint=h),
                      e.const(math.sqrt(2.0 / math.pi)), hint=h)
        phi = e.op("Tanh", inner, hint=h)
    else:
        phi = e.op("Erf", e.mul(x, e.const(1.0 / math.sqrt(2.0)), hint=h), hint=h)
    return e.mul(e.mul(x, e.const(0.5), hint=h), e.add(phi, e.const(1.0), hint=h), hint=h)


def _layer_norm(e: Emitter, node: N.LayerNorm, x: str) -> str:
    shape = node.normalized_shape
    scale = e.param(node, "weight") if node.weight is not None else e.const(np.ones(shape, np.float32))
    ins = [x, scale] + ([e.param(node, "bias")] if node.bias is not None else [])
    return e.op("LayerNormalization", *ins, axis=-len(shape), epsilon=float(node.eps), hint=node.name)


def _group_norm(e: Emitter, node: N.GroupNorm, x: str, in_type: TensorType) -> str:
    """The groups as the last dim of ``(N, G, C/G * rest)``, normalised by ``LayerNormalization``,
    reshaped back, then the per-channel affine (``(C, 1, ...)`` broadcasting over the spatial dims)."""
    h, shape = node.name, in_type.shape
    per_group = math.prod(shape) // node.num_groups
    grouped = e.op("Reshape", x, e.ints([-1, node.num_groups, per_group]), hint=h)
    normed = e.op("LayerNormalization", grouped, e.const(np.ones(per_group, np.float32)), axis=-1,
                  epsilon=float(node.eps), hint=h)
    out = e.op("Reshape", normed, e.ints([-1, *shape]), hint=h)
    channel = [node.num_channels] + [1] * (len(shape) - 1)
    if node.weight is not None:
        out = e.mul(out, e.op("Reshape", e.param(node, "weight"), e.ints(channel), hint=h), hint=h)
    if node.bias is not None:
        out = e.add(out, e.op("Reshape", e.param(node, "bias"), e.ints(channel), hint=h), hint=h)
    return out


def lower_layer(e: Emitter, node: Node, xs: list[str], in_types: list[TensorType]) -> str:
    """Lower one of :data:`KINDS` over rows; return the output's name."""
    x, h = xs[0], node.name
    if isinstance(node, A.Sigmoid):
        return e.op("Sigmoid", x, hint=h)
    if isinstance(node, A.Tanh):
        return e.op("Tanh", x, hint=h)
    if isinstance(node, A.GELU):
        return _gelu(e, node, x)
    if isinstance(node, N.LayerNorm):
        return _layer_norm(e, node, x)
    return _group_norm(e, node, x, in_types[0])
