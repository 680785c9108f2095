"""Symbolic tracing for :func:`snngraph.frontends.fx.trace`: ``torch.fx`` with spiking neurons as
leaf modules and source lines recorded, and the location of an fx node in the model's source."""

from __future__ import annotations

import functools
import inspect
import os
import re
import traceback
from typing import Any

import torch
from torch import Tensor, fx, nn

from snngraph.frontends.fx_neurons import is_neuron_module, neuron_kind
from snngraph.frontends.fx_norse import is_sequential_state, sequential_forward
from snngraph.frontends.fx_spikingjelly import is_sj_layer
from snngraph.ir.errors import GraphError

_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)\n\s*(.*)')
_INTERNAL = (os.path.dirname(torch.__file__) + os.sep, os.path.dirname(os.path.dirname(__file__)) + os.sep)


class NeuronRoot(nn.Module):
    """Holds a lone neuron traced by itself (``sg.trace(snn.Leaky(beta=0.9), x)``); its node is named
    after its op (``leaky``)."""

    def __init__(self, neuron: nn.Module, num_state: int):
        super().__init__()
        self.name = neuron_kind(neuron, type(neuron).__name__).op
        self.num_state = num_state
        self.add_module(self.name, neuron)

    def forward(self, x: Tensor, s0: Tensor | None = None, s1: Tensor | None = None, s2: Tensor | None = None):
        return getattr(self, self.name)(x, *(s0, s1, s2)[:self.num_state])


class _Tracer(fx.Tracer):
    """``torch.fx`` tracer that keeps spiking neurons as leaves and records source lines."""

    def __init__(self) -> None:
        super().__init__()
        self.record_stack_traces = True

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return is_neuron_module(m) or is_sj_layer(m) or super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward: Any, args: tuple, kwargs: dict) -> Any:
        if is_sequential_state(m):  # Norse's SequentialState: its state list is not traceable as written
            forward = functools.partial(sequential_forward, m)
        return super().call_module(m, forward, args, kwargs)


def symbolic_trace(module: nn.Module, tracer: fx.Tracer | None = None) -> tuple[fx.Graph, dict[str, Tensor]]:
    """Trace ``module`` (with ``tracer``, default :class:`_Tracer`); return the fx graph and the tensor
    constants fx attached to the module (removed again, so tracing leaves the model as it was)."""
    before = set(vars(module))
    try:
        graph = (tracer or _Tracer()).trace(module)
    except GraphError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of symbolic tracing is reported with its line
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(_INTERNAL)]
        where = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno} `{frames[-1].line}`" if frames \
            else ""
        raise GraphError(f"sg.trace: cannot trace {type(module).__name__}{where}: {type(exc).__name__}: {exc}") \
            from None
    finally:
        added = {k: vars(module)[k] for k in set(vars(module)) - before}
        for key in added:
            delattr(module, key)
    return graph, {k: v for k, v in added.items() if isinstance(v, Tensor)}


def location(node: fx.Node, root: nn.Module) -> str:
    """`` at model.py:12 in forward `code` `` for an fx node (its innermost frame outside torch and
    snngraph), else the file and line of the root's ``forward``, else ``""``."""
    frames = [f for f in _FRAME.findall(node.stack_trace or "") if not f[0].startswith(_INTERNAL)]
    if frames:
        file, line, func, code = frames[-1]
        return f" at {os.path.basename(file)}:{line} in {func} `{code.strip()}`"
    try:
        forward = type(root).forward
        file = inspect.getsourcefile(forward)
        if file is None or file.startswith(_INTERNAL):
            return ""
        return f" in {os.path.basename(file)}:{inspect.getsourcelines(forward)[1]} ({type(root).__name__}.forward)"
    except (OSError, TypeError):
        return ""
