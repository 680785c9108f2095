"""snngraph: spiking neural networks as a typed graph IR, compiled for training and deployment.

Public names are imported lazily, so ``import snngraph`` stays cheap and the IR never pulls in
torch or onnx until a runtime is used.
"""

from importlib import import_module as _import_module

__version__ = "0.1.0"

# public name -> (module, attribute or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "Graph": ("snngraph.ir.graph", "Graph"),
    "Handle": ("snngraph.ir.graph", "Handle"),
    "GraphError": ("snngraph.ir.errors", "GraphError"),
    "PassError": ("snngraph.ir.errors", "PassError"),
    "LoweringError": ("snngraph.ir.errors", "LoweringError"),
    "verify": ("snngraph.ir.verify", "verify"),
    "neuron_model": ("snngraph.ir.model", "neuron_model"),
    "neuron_models": ("snngraph.ir.model", "neuron_models"),
    "NeuronModel": ("snngraph.ir.model", "NeuronModel"),
    "ParamSpec": ("snngraph.ir.model", "ParamSpec"),
    "OptionSpec": ("snngraph.ir.model", "OptionSpec"),
    "Heads": ("snngraph.ir.model_heads", "Heads"),
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


def __getattr__(name: str) -> object:
    """Import a public name on first use (PEP 562)."""
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'snngraph' has no attribute {name!r}") from None
    value = _import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names (``__all__``) and ``__version__``: no helpers, no imported modules."""
    return sorted([*__all__, "__version__"])
