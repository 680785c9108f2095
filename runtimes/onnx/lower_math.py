"""ONNX lowering of the binary synapses (``mul``, ``sub``, ``matmul``) and adaptive average pooling,
over rows ``(N, *shape)`` like every synapse.

Adaptive pooling lowers to ``AveragePool`` with kernel = stride = input / output size, so it is
exact only where each output size divides its input size; other sizes (overlapping, uneven
windows) are refused with a LoweringError naming the node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from snngraph.ir import synapses_math as M
from snngraph.ir import synapses_pool as P
from snngraph.ir.errors import LoweringError
from snngraph.ir.node import Node
from snngraph.ir.types import TensorType

if TYPE_CHECKING:
    from snngraph.runtimes.onnx.lower import Emitter

KINDS = (M.Mul, M.Sub, M.MatMul, P.AdaptiveAvgPool1d, P.AdaptiveAvgPool2d)


def _adaptive_avg_pool(e: Emitter, node: P.AdaptiveAvgPool1d | P.AdaptiveAvgPool2d, x: str,
                       in_type: TensorType) -> str:
    sizes = in_type.shape[1:]
    if any(n % o for n, o in zip(sizes, node.output_size, strict=True)):
        raise LoweringError(f"{node.op} '{node.name}': ONNX export needs each output size to divide the input size "
                            f"(input {list(sizes)}, output_size {list(node.output_size)})")
    if all(o == 1 for o in node.output_size):
        return e.op("GlobalAveragePool", x, hint=node.name)
    kernel = [n // o for n, o in zip(sizes, node.output_size, strict=True)]
    return e.op("AveragePool", x, kernel_shape=kernel, strides=kernel, hint=node.name)


def lower_math(e: Emitter, node: Node, xs: list[str], in_types: list[TensorType]) -> str:
    """Lower one of :data:`KINDS` over rows; return the output's name."""
    h = node.name
    if isinstance(node, M.Mul):
        return e.mul(xs[0], xs[1], hint=h)
    if isinstance(node, M.Sub):
        return e.sub_(xs[0], xs[1], hint=h)
    if isinstance(node, M.MatMul):
        return e.op("MatMul", xs[0], xs[1], hint=h)
    return _adaptive_avg_pool(e, node, xs[0], in_types[0])
