"""The text form of a graph: a stable listing, one node a line, types on every value.

    graph mlp
      %x = input(shape=(784,), dtype="float32") : f32[784]
      %fc1 = linear(%x, in_features=784, out_features=10, weight=param<f32[10,784]>, bias=param<f32[10]>) : f32[10]
      %lif1 = leaky(%fc1, beta=0.95, ...) : spk=spike f32[10], mem=f32[10]
      output spk = %lif1
    end

Parameters print as ``param<f32[10,784]>`` (learnable) or ``const<...>``; float32 scalars print
their value (``0.95``, ``param(0.95)``); ``to_text(with_params=True)`` appends every array's values.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from snngraph.ir.errors import GraphError
from snngraph.ir.surrogate import Surrogate
from snngraph.ir.text_parse import parse
from snngraph.ir.types import DTYPES, Param

__all__ = ["to_text", "parse", "format_value"]


def _num(x: Any, dtype: str) -> str:
    text = str(np.float32(x)) if dtype == "float32" else repr(float(x))
    return text if any(c in text for c in ".en") else text + ".0"


def format_param(p: Param, with_params: bool) -> str:
    if p.is_scalar and p.dtype == "float32":
        value = _num(p.value, p.dtype)
        return f"param({value})" if p.learnable else value
    head = f"{'param' if p.learnable else 'const'}<{DTYPES[p.dtype]}[{','.join(map(str, p.shape))}]>"
    if with_params or p.is_scalar:
        head += "(" + ", ".join(_num(v, p.dtype) for v in p.value.reshape(-1)) + ")"
    return head


def format_value(value: Any, with_params: bool = False) -> str:
    if isinstance(value, Param):
        return format_param(value, with_params)
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        inner = ", ".join(format_value(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, Surrogate):
        return value.name + "(" + ", ".join(f"{k}={v!r}" for k, v in value.params) + ")"
    raise GraphError(f"cannot print value {value!r}")


def to_text(graph: Any, with_params: bool = False) -> str:
    """The stable text listing of ``graph`` (see module docstring)."""
    types = graph.types()
    lines = [f"graph {graph.name}"]
    for name, node in graph.nodes.items():
        args = [ref.text(graph.nodes[ref.node].default_port) for ref in node.inputs]
        quiet = getattr(node, "quiet_defaults", {})
        args += [f"{k}={format_value(v, with_params)}" for k, v in node.fields().items()
                 if not (k in quiet and v == quiet[k] and type(v) is type(quiet[k]))]
        outs = [(p, types[r]) for p in node.ports if (r := _ref(name, p)) in types]
        sig = str(outs[0][1]) if len(outs) == 1 else ", ".join(f"{p}={t}" for p, t in outs)
        lines.append(f"  %{name} = {node.op}({', '.join(args)}) : {sig}")
    for key, ref in graph.outputs.items():
        lines.append(f"  output {key} = {ref.text(graph.nodes[ref.node].default_port)}")
    lines.append("end")
    return "\n".join(lines) + "\n"


def _ref(node: str, port: str):
    from snngraph.ir.types import Ref

    return Ref(node, port)
