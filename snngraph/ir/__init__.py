"""The snngraph IR: typed, immutable nodes in a graph, its verifier, text form and file format.

Pure Python + numpy: nothing here imports torch or onnx at import time.
"""

import snngraph.models  # noqa: E402, F401, I001  (registers the built-in neuron models, after the IR it needs)
from snngraph.ir.errors import GraphError, LoweringError, PassError
from snngraph.ir.graph import Graph, Handle
from snngraph.ir.node import NODE_KINDS, Node
from snngraph.ir.serialize import load, save
from snngraph.ir.surrogate import Surrogate
from snngraph.ir.text import parse
from snngraph.ir.types import Param, Ref, TensorType
from snngraph.ir.verify import verify

__all__ = ["NODE_KINDS", "Graph", "GraphError", "Handle", "LoweringError", "Node", "Param", "PassError", "Ref",
           "Surrogate", "TensorType", "load", "parse", "save", "verify"]
