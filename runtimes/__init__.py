"""Backends: ``snngraph.runtimes.torch`` (eager PyTorch) and ``snngraph.runtimes.onnx`` (export + onnxruntime).

Each is imported on first attribute access (``sg.runtimes.onnx.Session``), so importing snngraph
pulls in neither torch nor onnx.
"""

from __future__ import annotations

import importlib
from typing import Any

_BACKENDS = ("onnx", "torch")


def __getattr__(name: str) -> Any:
    if name not in _BACKENDS:
        raise AttributeError(f"module 'snngraph.runtimes' has no attribute {name!r}")
    return importlib.import_module(f"snngraph.runtimes.{name}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_BACKENDS))
