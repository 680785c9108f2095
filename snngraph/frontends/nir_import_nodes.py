r"""NIR -> snngraph: one converter per NIR node type (the table in ``docs/nir.md``).

A first-order NIR node :math:`\tau \dot v = (v_{leak} - v) + R I` becomes
:math:`v[t] = \beta v[t-1] + g\,I[t] + c` with :math:`\beta` from ``decay_from_tau``, input gain
:math:`g = R(1-\beta)` and constant :math:`c = (1-\beta) v_{leak}`. A gain other than 1 becomes a
``scale`` node before the neuron (weights stay intact); a non-zero constant is folded into the bias of
the ``Affine``/``Linear`` node feeding the neuron (:func:`fold_leaks`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np

from snngraph.frontends.nir import (
    DEFAULT_METHOD,
    DEFAULT_RESET,
    META_METHOD,
    META_RESET,
    META_RESET_DELAY,
    META_SHAPES,
    decay_from_tau,
)
from snngraph.ir.errors import GraphError
from snngraph.ir.graph import Graph, Handle


@dataclass(eq=False)
class Recurrent:
    """A LIF/CubaLIF with a dense self-connection (snnTorch's RLeaky/RSynaptic export)."""

    cell: Any
    w_rec: Any
    output_type: dict = field(init=False)

    def __post_init__(self):
        self.output_type = self.cell.output_type


@dataclass
class Ctx:
    """Import settings and the bookkeeping shared by the converters."""

    dt: float
    method: str | None
    undocumented: list[str] = field(default_factory=list)
    prescaled: set[str] = field(default_factory=set)
    reserved: set[str] = field(default_factory=set)

    def fresh(self, g: Graph, base: str) -> str:
        """A node name derived from ``base`` that is neither in ``g`` nor reserved for a NIR node."""
        name, i = base, 1
        while name in g.nodes or name in self.reserved:
            i += 1
            name = f"{base}_{i}"
        self.reserved.add(name)
        return name

    def method_of(self, node: Any) -> str:
        if self.method is not None:
            return self.method
        return str(node.metadata.get(META_METHOD, DEFAULT_METHOD))

    def reset_of(self, node: Any, name: str) -> tuple[str, bool]:
        meta = node.metadata
        if META_RESET not in meta:
            self.undocumented.append(name)
            return DEFAULT_RESET
        reset = str(meta[META_RESET])
        if reset not in ("subtract", "zero", "none"):
            raise GraphError(f"NIR node '{name}': unknown reset_mechanism {reset!r} in metadata")
        delay = meta.get(META_RESET_DELAY, DEFAULT_RESET[1])
        if not isinstance(delay, (bool, np.bool_)) and delay not in (0, 1):
            raise GraphError(f"NIR node '{name}': metadata reset_delay must be true or false, got {delay!r}")
        return reset, bool(delay)

    def note_method(self, node: Any, name: str) -> None:
        if self.method is None and META_METHOD not in node.metadata and name not in self.undocumented:
            self.undocumented.append(name)


def f32(value: Any) -> np.ndarray:
    """``value`` as float32; values beyond float32's range become inf (which the IR rejects, naming the node)."""
    with np.errstate(over="ignore"):
        return np.array(value, dtype=np.float32)


def restore_shape(value: np.ndarray, node: Any, key: str) -> np.ndarray:
    """Undo the export's broadcast of parameter ``key`` to the population shape (metadata ``param_shapes``)."""
    text = node.metadata.get(META_SHAPES, {}).get(key) if isinstance(node.metadata.get(META_SHAPES), dict) else None
    if text is None:
        return value
    try:
        shape = tuple(int(d) for d in str(text).split(",") if d)
    except ValueError:
        raise ValueError(f"metadata param_shapes[{key!r}] = {text!r} is not a shape") from None
    if any(d < 1 for d in shape) or math.prod(shape) > value.size:
        raise ValueError(f"metadata param_shapes[{key!r}] = {text!r} does not fit the parameter's shape "
                         f"{list(value.shape)}")
    full = value.shape
    if len(shape) > len(full):
        return value
    padded = (1,) * (len(full) - len(shape)) + shape
    idx = tuple(slice(0, 1) if s == 1 else slice(None) for s in padded)
    small = value[idx].reshape(shape)
    return small if np.array_equal(np.broadcast_to(small, full), value) else value


def decay(node: Any, name: str, key: str, tau: Any, ctx: Ctx) -> np.ndarray:
    """The per-step decay of time constant ``tau`` of NIR node ``name``, checked to lie in [0, 1]."""
    method = ctx.method_of(node)
    if method not in ("euler", "exp"):
        raise GraphError(f"NIR node '{name}': unknown discretization {method!r} in metadata")
    value = decay_from_tau(tau, ctx.dt, method)
    if not np.all(np.isfinite(value)) or value.min(initial=0.0) < 0 or value.max(initial=0.0) > 1:
        raise GraphError(f"NIR node '{name}': {key} from tau={np.min(tau):g}..{np.max(tau):g} at dt={ctx.dt:g} "
                         f"({method}) lies outside [0, 1]; choose dt below tau (snnTorch exports with dt=1e-4)")
    return value


def first_order(node: Any, name: str, ctx: Ctx) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(beta, gain, constant)`` of a LIF / LI node (float64)."""
    beta = decay(node, name, "beta", node.tau, ctx)
    one_minus = 1.0 - beta
    return beta, np.asarray(node.r, np.float64) * one_minus, one_minus * np.asarray(node.v_leak, np.float64)


def cuba(node: Any, name: str, ctx: Ctx) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(alpha, beta, gain)`` of a CubaLI / CubaLIF node; a non-zero ``v_leak`` raises GraphError."""
    if np.any(np.asarray(node.v_leak) != 0):
        raise GraphError(f"NIR node '{name}' ({type(node).__name__}): v_leak != 0 is not supported for "
                         "current-based neurons")
    alpha = decay(node, name, "alpha", node.tau_syn, ctx)
    beta = decay(node, name, "beta", node.tau_mem, ctx)
    gain = np.asarray(node.w_in, np.float64) * (1 - alpha) * np.asarray(node.r, np.float64) * (1 - beta)
    return alpha, beta, gain


def scaled_input(g: Graph, x: Handle, gain: np.ndarray, name: str, ctx: Ctx) -> Handle:
    """``x`` times the per-neuron ``gain`` (no node when the gain is 1 or was folded upstream)."""
    gain32 = f32(gain)
    if name in ctx.prescaled or np.all(gain32 == 1):
        return x
    if np.all(gain32 == gain32.flat[0]):
        gain32 = f32(gain32.flat[0])
    return g.scale(x, gain32, name=ctx.fresh(g, f"{name}_in"))


def _reset(node: Any, name: str, ctx: Ctx) -> dict[str, Any]:
    reset, delay = ctx.reset_of(node, name)
    v_reset = getattr(node, "v_reset", None)
    if reset != "subtract" and v_reset is not None and np.any(np.asarray(v_reset) != 0):
        raise GraphError(f"NIR node '{name}': v_reset != 0 is not supported (snngraph resets to 0 or subtracts "
                         "the threshold)")
    thr = restore_shape(f32(node.v_threshold), node, "threshold")
    return dict(threshold=thr, reset_mechanism=reset, reset_delay=delay)


def _check_leak(node: Any, name: str, c: np.ndarray, ctx: Ctx) -> None:
    if name not in ctx.prescaled and np.any(c != 0):
        raise GraphError(f"NIR node '{name}': v_leak != 0 needs a single Affine/Linear node feeding it (its bias "
                         "takes the leak)")


MODEL_KEY = "snngraph_model"  # metadata: the snngraph model a NIR LIF/IF was exported from, when not leaky/IF


def _follows_nir(node: Any, reset: dict[str, Any]) -> bool:
    """Whether a LIF/IF follows NIR's equation (``nir_lif``) rather than snnTorch's ``leaky``: exported
    from ``nir_lif``, or a foreign graph (no snngraph metadata) stating a subtract reset in the spiking step.
    Graphs snngraph exported from ``leaky``/``integrate_fire`` come back as what they were."""
    meta = node.metadata if isinstance(node.metadata, dict) else {}
    if meta.get(MODEL_KEY) == "nir_lif":
        return True
    return META_SHAPES not in meta and reset["reset_mechanism"] == "subtract" and not reset["reset_delay"]


def _lif(g: Graph, name: str, x: Handle, node: Any, ctx: Ctx) -> Handle:
    beta, gain, c = first_order(node, name, ctx)
    _check_leak(node, name, c, ctx)
    reset = _reset(node, name, ctx)
    x = scaled_input(g, x, gain, name, ctx)
    beta = restore_shape(f32(beta), node, "beta")
    if _follows_nir(node, reset):
        return g.nir_lif(x, beta=beta, threshold=reset["threshold"], reset_mechanism=reset["reset_mechanism"],
                         name=name)
    return g.leaky(x, beta=beta, name=name, **reset)


def _if(g: Graph, name: str, x: Handle, node: Any, ctx: Ctx) -> Handle:
    reset = _reset(node, name, ctx)
    x = scaled_input(g, x, np.asarray(node.r, np.float64), name, ctx)
    if _follows_nir(node, reset):
        return g.nir_lif(x, beta=1.0, threshold=reset["threshold"], reset_mechanism=reset["reset_mechanism"],
                         name=name)
    return g.integrate_fire(x, name=name, **reset)


def _li(g: Graph, name: str, x: Handle, node: Any, ctx: Ctx) -> Handle:
    ctx.note_method(node, name)
    beta, gain, c = first_order(node, name, ctx)
    _check_leak(node, name, c, ctx)
    x = scaled_input(g, x, gain, name, ctx)
    return g.leaky_integrator(x, beta=restore_shape(f32(beta), node, "beta"), name=name)


def _integrator(g: Graph, name: str, x: Handle, node: Any, ctx: Ctx) -> Handle:
    x = scaled_input(g, x, np.asarray(node.r, np.float64), name, ctx)
    return g.leaky_integrator(x, beta=restore_shape(np.ones_like(f32(node.r)), node, "beta"), name=name)


def _cuba_li(g: Graph, name: str, x: Handle, node: Any, ctx: Ctx) -> Handle:
    ctx.note_method(node, name)
    alpha, beta, gain = cuba(node, name, ctx)
    x = scaled_input(g, x, gain, name, ctx)
    syn = g.leaky_integrator(x, beta=f32(alpha), name=ctx.fresh(g, f"{name}_syn"))
    return g.leaky_integrator(syn, beta=f32(beta), name=name)


def _cuba_lif(g: Graph, name: str, x: Handle, node: Any, ctx: Ctx) -> Handle:
    alpha, beta, gain = cuba(node, name, ctx)
    reset = _reset(node, name, ctx)
    x = scaled_input(g, x, gain, name, ctx)
    return g.synaptic(x, alpha=restore_shape(f32(alpha), node, "alpha"),
                      beta=restore_shape(f32(beta), node, "beta"), name=name, **reset)


def _threshold(g: Graph, name: str, x: Handle, node: Any, ctx: Ctx) -> Handle:
    thr = restore_shape(f32(node.threshold), node, "threshold")
    return g.leaky(x, beta=0.0, threshold=thr, reset_mechanism="none", name=name)


def _recurrent(g: Graph, name: str, x: Handle, node: Recurrent, ctx: Ctx) -> Handle:
    cell, w_rec = node.cell, node.w_rec
    reset = _reset(cell, name, ctx)
    if isinstance(cell, nir.CubaLIF):
        alpha, beta, gain = cuba(cell, name, ctx)
        c = np.zeros_like(gain)
    else:
        beta, gain, c = first_order(cell, name, ctx)
    weight = np.asarray(w_rec.weight, np.float64)
    bias = np.asarray(getattr(w_rec, "bias", np.zeros(weight.shape[0])), np.float64)
    one_to_one = isinstance(w_rec, nir.Linear) and np.array_equal(weight, np.diag(np.diag(weight)))
    if one_to_one and np.any(c != 0):
        raise GraphError(f"NIR node '{name}': v_leak != 0 with a diagonal recurrence is not supported")
    rec: dict[str, Any] = {"all_to_all": not one_to_one}
    if one_to_one:
        rec["V"] = restore_shape(f32(np.diag(weight) * gain), cell, "V")
    else:
        rec["recurrent_weight"] = f32(weight if np.all(f32(gain) == 1) else weight * gain[:, None])
        rec["recurrent_bias"] = f32(bias * gain + c)
    x = scaled_input(g, x, gain, name, ctx)
    common = dict(beta=restore_shape(f32(beta), cell, "beta"), name=name, **rec, **reset)
    if isinstance(cell, nir.CubaLIF):
        return g.rsynaptic(x, alpha=restore_shape(f32(alpha), cell, "alpha"), **common)
    return g.rleaky(x, **common)


def _affine(g: Graph, name: str, x: Handle, node: Any, ctx: Ctx) -> Handle:
    weight = f32(node.weight)
    if weight.ndim != 2:
        raise GraphError(f"NIR node '{name}': only 2-D Affine/Linear weights are supported, got {list(weight.shape)}")
    bias = getattr(node, "bias", None)
    return g.linear(x, weight.shape[0], bias=bias is not None, weight=weight,
                    bias_value=None if bias is None else f32(bias), name=name)


def _ints(value: Any, n: int, name: str, key: str) -> Any:
    if isinstance(value, (str, bytes)):
        return value.decode() if isinstance(value, bytes) else value
    arr = np.atleast_1d(np.asarray(value)).reshape(-1)
    if arr.dtype.kind not in "biuf" or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)) or \
            np.any(np.abs(arr) > 2**31):
        raise GraphError(f"NIR node '{name}': {key} must hold whole numbers of magnitude up to 2**31, got "
                         f"{value!r}")
    arr = arr.astype(np.int64)
    if arr.size == 1:
        arr = np.repeat(arr, n)
    if arr.size != n:
        raise GraphError(f"NIR node '{name}': {key} must have {n} entries, got {value!r}")
    return tuple(int(v) for v in arr)


def _conv(g: Graph, name: str, x: Handle, node: Any, ctx: Ctx) -> Handle:
    weight = f32(node.weight)
    n = weight.ndim - 2
    conv = g.conv1d if n == 1 else g.conv2d
    return conv(x, weight.shape[0], weight.shape[2:], stride=_ints(node.stride, n, name, "stride"),
                padding=_ints(node.padding, n, name, "padding"), dilation=_ints(node.dilation, n, name, "dilation"),
                groups=int(node.groups), weight=weight, bias_value=f32(node.bias), name=name)


def _pool(g: Graph, name: str, x: Handle, node: Any, ctx: Ctx) -> Handle:
    k = _ints(node.kernel_size, 2, name, "kernel_size")
    pooled = g.avg_pool2d(x, k, stride=_ints(node.stride, 2, name, "stride"),
                          padding=_ints(node.padding, 2, name, "padding"), name=name if isinstance(
                              node, nir.AvgPool2d) else ctx.fresh(g, f"{name}_avg"))
    if isinstance(node, nir.AvgPool2d):
        return pooled
    return g.scale(pooled, float(k[0] * k[1]), name=name)


def _flatten(g: Graph, name: str, x: Handle, node: Any, ctx: Ctx) -> Handle:
    return g.flatten(x, start_dim=int(node.start_dim), end_dim=int(node.end_dim), name=name)


def _scale(g: Graph, name: str, x: Handle, node: Any, ctx: Ctx) -> Handle:
    return g.scale(x, restore_shape(f32(node.scale), node, "factor"), name=name)


def fold_leaks(nodes: dict[str, Any], edges: list[tuple[str, str]], names: dict[str, str], ctx: Ctx) -> None:
    """Fold the gain and leak constant of each LIF/LI with ``v_leak != 0`` into the Affine/Linear node that
    alone feeds it (and feeds nothing else); the neuron is then marked ``prescaled``."""
    for key, node in list(nodes.items()):
        if not isinstance(node, (nir.LIF, nir.LI)) or not np.any(np.asarray(node.v_leak) != 0):
            continue
        ins = [a for a, b in edges if b == key]
        if len(ins) != 1 or not isinstance(nodes[ins[0]], (nir.Affine, nir.Linear)):
            continue
        src = nodes[ins[0]]
        if sum(1 for a, _ in edges if a == ins[0]) != 1 or np.ndim(src.weight) != 2:
            continue
        _, gain, c = first_order(node, names[key], ctx)
        gain, c = gain.reshape(-1), c.reshape(-1)
        weight = np.asarray(src.weight, np.float64)
        bias = np.asarray(getattr(src, "bias", np.zeros(weight.shape[0])), np.float64)
        nodes[ins[0]] = nir.Affine(weight=f32(weight * gain[:, None]), bias=f32(bias * gain + c))
        ctx.prescaled.add(names[key])


CONVERTERS: dict[type, Callable[..., Handle]] = {
    nir.Affine: _affine, nir.Linear: _affine, nir.Conv1d: _conv, nir.Conv2d: _conv, nir.SumPool2d: _pool,
    nir.AvgPool2d: _pool, nir.Flatten: _flatten, nir.Scale: _scale, nir.Threshold: _threshold, nir.IF: _if,
    nir.I: _integrator, nir.LI: _li, nir.LIF: _lif, nir.CubaLI: _cuba_li, nir.CubaLIF: _cuba_lif,
    Recurrent: _recurrent,
}
