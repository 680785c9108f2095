"""ONNX deployment: ``export_onnx`` builds an ONNX model from the IR; ``Session`` runs it in onnxruntime."""

from snngraph.runtimes.onnx.export import export_onnx
from snngraph.runtimes.onnx.session import Session

__all__ = ["Session", "export_onnx"]
