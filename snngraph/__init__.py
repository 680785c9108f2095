"""snngraph: spiking neural networks as a typed graph IR, compiled for training and deployment.

Public names are imported lazily, so ``import snngraph`` stays cheap and the IR never pulls in
torch or onnx until a runtime is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> (module, attribute or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "Graph": ("snngraph.ir.graph", "Graph"),
    "Handle": ("snngraph.ir.graph", "Handle"),
    "GraphError": ("snngraph.ir.errors", "GraphError"),
    "PassError": ("snngraph.ir.errors", "PassError"),
    "LoweringError": ("snngraph.ir.errors", "LoweringError"),
    "verify": ("snngraph.ir.verify", "verify"),
    "parse": ("snngraph.ir.text", "parse"),
    "save": ("snngraph.ir.serialize", "save"),
    "load": ("snngraph.ir.serialize", "load"),
    "limits": ("snngraph.ir.limits", None),
    "compile": ("snngraph.runtimes.torch.module", "compile"),
    "trace": ("snngraph.frontends.fx", "trace"),
    "to_nir": ("snngraph.frontends.nir", "to_nir"),
    "from_nir": ("snngraph.frontends.nir", "from_nir"),
    "export_onnx": ("snngraph.runtimes.onnx.export", "export_onnx"),
    "passes": ("snngraph.passes", None),
    "runtimes": ("snngraph.runtimes", None),
    "nn": ("snngraph.nn", None),
    "surrogate": ("snngraph.surrogate", None),
    "spikegen": ("snngraph.spikegen", None),
    "functional": ("snngraph.functional", None),
    "spikeplot": ("snngraph.spikeplot", None),
    "datasets": ("snngraph.datasets", None),
    "utils": ("snngraph.utils", None),
    "testing": ("snngraph.testing", None),
    "train": ("snngraph.train", None),
    "backprop": ("snngraph.backprop", None),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'snngraph' has no attribute {name!r}") from None
    value = importlib.import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
