"""An unfused neuron's whole time loop as one custom operator, for ``torch.compile`` / ``torch.export``.

Eager runs loop a model's derived step over T in Python (``sequence.run_neuron_sequence``). Traced
by dynamo that loop unrolls: the graph is T steps long, compiling takes O(T) and every new sequence
length recompiles. Under compilation a model without a fused scan (``alpha``, ``lapicque``, user
models, options the scans do not cover) therefore runs as ``snngraph::derived_scan``: one opaque node
whose implementation is the same Python loop over the model's declared step, so T and B stay
symbolic. Its backward, ``snngraph::derived_scan_backward``, recomputes the loop with autograd on
and returns the vector-Jacobian product (values identical to eager; the forward runs twice).

The node is described by a JSON string (model name, options, surrogate, parameter names,
recurrence), built once per node when the net is made (``describe``; dynamo does not trace
``json``), and its tensors; a plain-callable ``spike_grad`` cannot be described and keeps the
unrolled loop.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from snngraph.ir.model import get_model
from snngraph.ir.node import Node
from snngraph.ir.surrogate import Surrogate, surrogate_of
from snngraph.ir.types import Param


@dataclass(frozen=True)
class _Spec:
    model: str
    options: tuple[tuple[str, Any], ...]
    surrogate: Surrogate | None
    params: tuple[str, ...]
    recurrent: str | None  # "all_to_all" (weight, bias?), "one_to_one" (V) or None
    bias: bool
    constants: tuple[tuple[str, float], ...] = ()  # ParamSpec(constant=True): numbers, not tensors


@dataclass(frozen=True)
class Description:
    """An unfused neuron node as the op sees it: ``spec`` (JSON) and the keys of its tensors in op order."""

    spec: str
    operands: tuple[str, ...]

    def tensors(self, tensors: dict[str, Tensor]) -> list[Tensor]:
        """``lower.param_tensors``'s dict as the op's tensor list."""
        return [tensors[k] for k in self.operands]


def describe(node: Node) -> Description | None:
    """How the op runs ``node`` (computed once, when the net is made: dynamo traces neither ``json`` nor
    caches), or None when it cannot (a plain-callable surrogate; a cell model, whose weights and input
    projection the op does not carry: it keeps the unrolled loop). The tensors are its parameters, then
    the recurrence (weight and bias, or ``V``)."""
    model = node.model
    if model.cell is not None:
        return None
    surrogate = surrogate_of(node) if model.spiking else None
    if surrogate is not None and surrogate.name == "callable":
        return None
    recurrent = None if not model.recurrent else "all_to_all" if node.all_to_all else "one_to_one"
    bias = recurrent == "all_to_all" and isinstance(getattr(node, "recurrent_bias", None), Param)
    extra = {"all_to_all": ("recurrent_weight",) + (("recurrent_bias",) if bias else ()), "one_to_one": ("V",),
             None: ()}[recurrent]
    params = [k for k, s in model.params.items() if not s.constant]
    spec = json.dumps({
        "model": model.name, "options": [[k, getattr(node, k)] for k in model.options],
        "surrogate": None if surrogate is None else [surrogate.name, [[k, v] for k, v in surrogate.params]],
        "params": params, "recurrent": recurrent, "bias": bias,
        "constants": [[k, getattr(node, k).item()] for k, s in model.params.items() if s.constant]})
    return Description(spec, (*params, *extra))


@functools.cache
def _spec(text: str) -> _Spec:
    d = json.loads(text)
    sur = d["surrogate"]
    surrogate = None if sur is None else Surrogate(sur[0], tuple((k, v) for k, v in sur[1]))
    return _Spec(d["model"], tuple((k, v) for k, v in d["options"]), surrogate, tuple(d["params"]),
                 d["recurrent"], d["bias"], tuple((k, v) for k, v in d.get("constants", ())))


def _recurrence(spec: _Spec, extra: Sequence[Tensor]) -> Any:
    if spec.recurrent == "all_to_all":
        w, b = extra[0], extra[1] if spec.bias else None
        return lambda s: F.linear(s, w, b)
    if spec.recurrent == "one_to_one":
        v = extra[0]
        return lambda s: v * s
    return None


def _loop(text: str, x: Tensor, state: Sequence[Tensor], tensors: Sequence[Tensor]) -> list[Tensor]:
    """``sequence.step_over_time`` of the described node: every port stacked over T."""
    from snngraph.runtimes.torch.sequence import step_over_time

    spec = _spec(text)
    model = get_model(spec.model)
    kw: dict[str, Any] = dict(zip(spec.params, tensors, strict=False)) | dict(spec.options) | dict(spec.constants)
    if model.spiking:
        kw["spike_grad"] = spec.surrogate
    if spec.recurrent:
        kw["recurrent"] = _recurrence(spec, tensors[len(spec.params):])
    return list(step_over_time(model, x, tuple(state), kw).values())


@torch.library.custom_op("snngraph::derived_scan", mutates_args=())
def _derived_op(spec: str, x: Tensor, state: list[Tensor], tensors: list[Tensor]) -> list[Tensor]:
    """Every port of the node over (T, B, ...), in the model's port order."""
    with torch.no_grad():
        return _loop(spec, x, state, tensors)


@_derived_op.register_fake
def _(spec, x, state, tensors):
    with torch.no_grad():  # one step on fake tensors gives each port's per-step shape
        one = _loop(spec, x[:1], state, tensors)
    return [v.new_empty((x.shape[0], *v.shape[1:])) for v in one]


def _autograd_keys() -> Any:
    keys = torch._C.DispatchKeySet(torch._C.DispatchKey.Undefined)  # noqa: SLF001 (no public API for this)
    for name in dir(torch._C.DispatchKey):  # noqa: SLF001
        if name.startswith("Autograd") and name != "Autograd":  # (the alias key has no keyset)
            keys = keys | torch._C.DispatchKeySet(getattr(torch._C.DispatchKey, name))  # noqa: SLF001
    return keys


_AUTOGRAD_KEYS = _autograd_keys()


def _autograd_on() -> Any:
    """Autograd recording inside an operator's implementation, which torch runs with the autograd keys
    excluded (autocast stays excluded: the recomputation sees the dtypes the forward saw)."""
    exclude = torch._C._dispatch_tls_local_exclude_set() - _AUTOGRAD_KEYS  # noqa: SLF001
    return torch._C._ForceDispatchKeyGuard(torch._C._dispatch_tls_local_include_set(), exclude)  # noqa: SLF001


@torch.library.custom_op("snngraph::derived_scan_backward", mutates_args=())
def _derived_backward_op(spec: str, x: Tensor, state: list[Tensor], tensors: list[Tensor],
                         grads: list[Tensor], needs: list[bool]) -> list[Tensor]:
    """Gradients of ``(x, *state, *tensors)`` (empty where not needed): the loop recomputed with autograd."""
    inputs = [x, *state, *tensors]
    with _autograd_on(), torch.enable_grad():
        leaves = [t.detach().requires_grad_(need) for t, need in zip(inputs, needs, strict=True)]
        outs = _loop(spec, leaves[0], leaves[1:1 + len(state)], leaves[1 + len(state):])
        pairs = [(o, g) for o, g in zip(outs, grads, strict=True) if g.numel() and o.requires_grad]
        wanted = [t for t, need in zip(leaves, needs, strict=True) if need]
        got = torch.autograd.grad([o for o, _ in pairs], wanted, [g for _, g in pairs],
                                  allow_unused=True) if pairs and wanted else [None] * len(wanted)
    it = iter(got)
    result = []
    for t, need in zip(inputs, needs, strict=True):
        g = next(it) if need else None
        result.append(t.new_empty(0) if not need else torch.zeros_like(t) if g is None else g)
    return result


@_derived_backward_op.register_fake
def _(spec, x, state, tensors, grads, needs):
    return [torch.empty_like(t) if need else t.new_empty(0) for t, need in zip([x, *state, *tensors], needs,
                                                                               strict=True)]


def _setup(ctx: Any, inputs: tuple, output: Any) -> None:
    ctx.set_materialize_grads(False)  # an unused port gets None, not zeros (AOTAutograd too)
    spec, x, state, tensors = inputs
    ctx.spec, ctx.counts = spec, (len(state), len(tensors))
    ctx.needs = [t.requires_grad for t in (x, *state, *tensors)]
    ctx.save_for_backward(x, *state, *tensors)


def _backward(ctx: Any, grads: Sequence[Tensor | None]) -> tuple:
    saved = ctx.saved_tensors
    n_state, n_tensors = ctx.counts
    x, state, tensors = saved[0], list(saved[1:1 + n_state]), list(saved[1 + n_state:])
    needs = ctx.needs
    grads = [g if g is not None else x.new_empty(0) for g in grads]
    out = _derived_backward_op(ctx.spec, x, state, tensors, grads, needs)
    gx, rest = (out[0] if needs[0] else None), out[1:]
    g_state = [g if need else None for g, need in zip(rest[:n_state], needs[1:1 + n_state], strict=True)]
    g_tensors = [g if need else None for g, need in zip(rest[n_state:], needs[1 + n_state:], strict=True)]
    return None, gx, g_state, g_tensors


_derived_op.register_autograd(_backward, setup_context=_setup)


def derived_scan(spec: str, x: Tensor, state: Sequence[Tensor], tensors: Sequence[Tensor]) -> list[Tensor]:
    """``run_neuron_sequence``'s loop as the custom op: one port list in the model's port order."""
    return _derived_op(spec, x, list(state), list(tensors))
