r"""ONNX lowering of one time step of every neuron model, operation for operation like the torch kernels.

Each function mirrors its kernel in ``snngraph.runtimes.torch.kernels_*`` (same operations, same
order, same float32 constants), so spikes come out exactly equal and membranes equal up to the
rounding of the synapses feeding them. Notation: :math:`H(v) = [v > 0]` the forward pass of every
surrogate, :math:`R[t] = H(U[t-1] - \theta)` the reset from the previous membrane. Every parameter
is an initializer named as in the ``state_dict`` (``lif1.beta``); what the kernels derive from
parameters (the clamp of a decay to [0, 1], Lapicque's ``1 / (R C)``) is computed from those
initializers once, in the main graph, never inside the loop over time (onnxruntime folds it at
load). Only the Alpha neuron's :math:`\tau_\alpha`, which needs a logarithm, is computed at export
with torch so that it equals the kernel's value bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from snngraph.ir import neurons as N
from snngraph.ir.errors import LoweringError
from snngraph.ir.node import Node
from snngraph.runtimes.onnx.lower import Emitter, is_one, param_value

Ports = dict[str, str]


def _clamped(e: Emitter, node: Node, key: str) -> str:
    """``clamp(param, 0, 1)`` of a decay, computed from the ``<node>.<key>`` initializer (folded at load)."""
    return e.once(f"{node.name}/{key}.clamp01", lambda r: r.op("Clip", r.param(node, key), r.const(0.0),
                                                                r.const(1.0), hint=node.name))


def _times(e: Emitter, node: Node, value: str, threshold: str) -> str:
    """``value * threshold``, skipped when ``threshold`` is the node's scalar threshold 1 (exact: x * 1 = x)."""
    if threshold == f"{node.name}.threshold" and is_one(node, "threshold"):
        return value
    return e.mul(value, threshold, hint=node.name)


def _fire(e: Emitter, node: Node, mem: str, threshold: str) -> tuple[str, str]:
    """``(z, spk)``: ``z = H(mem - threshold)`` and ``spk = z * graded_spikes_factor``."""
    z = e.heaviside(e.sub_(mem, threshold, hint=node.name), hint=node.name)
    if is_one(node, "graded_spikes_factor"):
        return z, z
    return z, e.mul(z, e.param(node, "graded_spikes_factor"), hint=node.name)


def _reset_now(e: Emitter, node: Node, mem: str, spk: str, reset: str | None, threshold: str,
               graded: bool = True) -> str:
    """snnTorch's ``reset_delay=False`` branch: ``do_reset = spk / g - reset``, applied to ``mem``."""
    if node.reset_mechanism == "none":
        return mem
    ratio = spk
    if graded and not is_one(node, "graded_spikes_factor"):
        ratio = e.div(spk, e.param(node, "graded_spikes_factor"), hint=node.name)
    do_reset = e.sub_(ratio, reset, hint=node.name)
    amount = threshold if node.reset_mechanism == "subtract" else mem
    return e.sub_(mem, _times(e, node, do_reset, amount), hint=node.name)


def _reset(e: Emitter, node: Node, mem: str, threshold: str) -> str | None:
    if node.reset_mechanism == "none":
        return None
    return e.heaviside(e.sub_(mem, threshold, hint=node.name), hint=node.name)


def _leak(e: Emitter, node: Node, x: str, mem: str, reset: str | None, beta: str | None, threshold: str) -> str:
    """``_leak`` of kernels_lif; ``beta=None`` is the exact ``1.0 * mem`` of integrate-and-fire."""
    h = node.name
    if node.reset_mechanism == "zero":
        kept = e.mul(e.sub_(e.const(1.0), reset, hint=h), mem, hint=h)
        return e.add(kept if beta is None else e.mul(beta, kept, hint=h), x, hint=h)
    out = e.add(mem if beta is None else e.mul(beta, mem, hint=h), x, hint=h)
    if node.reset_mechanism == "subtract":
        out = e.sub_(out, _times(e, node, reset, threshold), hint=h)
    return out


def _leaky(e: Emitter, node: Node, x: str, state: Ports, beta: str | None) -> Ports:
    threshold = e.param(node, "threshold")
    reset = _reset(e, node, state["mem"], threshold)
    mem = _leak(e, node, x, state["mem"], reset, beta, threshold)
    z, spk = _fire(e, node, mem, threshold)
    if not node.reset_delay:
        mem = _reset_now(e, node, mem, spk, reset, threshold)
    return {"spk": spk, "mem": mem}


def leaky(e: Emitter, node: N.Leaky, x: str, state: Ports) -> Ports:
    r""":math:`U[t] = \beta U[t-1] + I[t] - R[t]\theta`, :math:`S[t] = g H(U[t] - \theta)`."""
    return _leaky(e, node, x, state, _clamped(e, node, "beta"))


def integrate_fire(e: Emitter, node: N.IntegrateFire, x: str, state: Ports) -> Ports:
    r""":math:`U[t] = U[t-1] + I[t] - R[t]\theta` (``leaky`` with :math:`\beta = 1`)."""
    return _leaky(e, node, x, state, None)


def leaky_integrator(e: Emitter, node: N.LeakyIntegrator, x: str, state: Ports) -> Ports:
    r""":math:`U[t] = \beta U[t-1] + I[t]`, output the membrane."""
    return {"mem": e.add(e.mul(_clamped(e, node, "beta"), state["mem"], hint=node.name), x, hint=node.name)}


def _synaptic_update(e: Emitter, node: Node, syn: str, mem: str, reset: str | None, threshold: str) -> str:
    h = node.name
    out = e.add(e.mul(_clamped(e, node, "beta"), mem, hint=h), syn, hint=h)
    if node.reset_mechanism == "subtract":
        return e.sub_(out, _times(e, node, reset, threshold), hint=h)
    if node.reset_mechanism == "zero":
        return e.sub_(out, e.mul(out, reset, hint=h), hint=h)
    return out


def _recurrent(e: Emitter, node: N.RLeaky, spk: str) -> str:
    if node.all_to_all:
        ins = [spk, e.param(node, "recurrent_weight")]
        if node.recurrent_bias is not None:
            ins.append(e.param(node, "recurrent_bias"))
        return e.op("Gemm", *ins, transB=1, hint=node.name)
    return e.mul(e.param(node, "V"), spk, hint=node.name)


def _synaptic_like(e: Emitter, node: Node, x: str, state: Ports, recurrent: str | None) -> Ports:
    h, threshold = node.name, e.param(node, "threshold")
    reset = _reset(e, node, state["mem"], threshold)
    syn = e.add(e.mul(_clamped(e, node, "alpha"), state["syn"], hint=h), x, hint=h)
    if recurrent is not None:
        syn = e.add(syn, recurrent, hint=h)
    mem = _synaptic_update(e, node, syn, state["mem"], reset, threshold)
    z, spk = _fire(e, node, mem, threshold)
    if not node.reset_delay:
        mem = _reset_now(e, node, mem, spk, reset, threshold)
    return {"spk": spk, "syn": syn, "mem": mem}


def synaptic(e: Emitter, node: N.Synaptic, x: str, state: Ports) -> Ports:
    r""":math:`I_{syn}[t] = \alpha I_{syn}[t-1] + I[t]`, :math:`U[t] = \beta U[t-1] + I_{syn}[t] - R[t]\theta`."""
    return _synaptic_like(e, node, x, state, None)


def rsynaptic(e: Emitter, node: N.RSynaptic, x: str, state: Ports) -> Ports:
    r"""``synaptic`` with :math:`V(S[t-1])` added to the synaptic current."""
    return _synaptic_like(e, node, x, state, _recurrent(e, node, state["spk"]))


def rleaky(e: Emitter, node: N.RLeaky, x: str, state: Ports) -> Ports:
    r""":math:`U[t] = \beta U[t-1] + I[t] + V(S[t-1]) - R[t]\theta`."""
    h, threshold = node.name, e.param(node, "threshold")
    reset = _reset(e, node, state["mem"], threshold)
    mem = e.add(e.add(e.mul(_clamped(e, node, "beta"), state["mem"], hint=h), x, hint=h),
                _recurrent(e, node, state["spk"]), hint=h)
    if node.reset_mechanism == "subtract":
        mem = e.sub_(mem, _times(e, node, reset, threshold), hint=h)
    elif node.reset_mechanism == "zero":
        mem = e.sub_(mem, e.mul(reset, mem, hint=h), hint=h)
    z, spk = _fire(e, node, mem, threshold)
    if not node.reset_delay:
        mem = _reset_now(e, node, mem, spk, reset, threshold)
    return {"spk": spk, "mem": mem}


def alpha(e: Emitter, node: N.Alpha, x: str, state: Ports) -> Ports:
    r"""snnTorch's ``Alpha``: :math:`U[t] = \tau_\alpha (I_{exc}[t] + I_{inh}[t])`; the reset is always delayed."""
    import torch

    h, threshold = node.name, e.param(node, "threshold")
    a, b = (torch.as_tensor(np.asarray(np.clip(param_value(node, k), 0.0, 1.0))) for k in ("alpha", "beta"))
    log_a = torch.log(a)
    tau = e.const((log_a / (torch.log(b) - log_a) + 1).numpy(), name=f"{h}/tau_alpha")
    b_name = _clamped(e, node, "beta")
    exc = e.add(e.mul(_clamped(e, node, "alpha"), state["syn_exc"], hint=h), x, hint=h)
    inh = e.sub_(e.mul(b_name, state["syn_inh"], hint=h), x, hint=h)
    mem = e.mul(tau, e.add(exc, inh, hint=h), hint=h)
    if node.reset_mechanism != "none":
        reset = _reset(e, node, state["mem"], threshold)
        if node.reset_mechanism == "subtract":
            exc = e.sub_(exc, _times(e, node, reset, threshold), hint=h)
            mem = e.sub_(mem, e.mul(e.op("Neg", state["syn_inh"], hint=h), reset, hint=h), hint=h)
            inh = e.sub_(inh, e.mul(inh, reset, hint=h), hint=h)
        else:
            exc, inh, mem = (e.sub_(v, e.mul(v, reset, hint=h), hint=h) for v in (exc, inh, mem))
    z, spk = _fire(e, node, mem, threshold)
    return {"spk": spk, "syn_exc": exc, "syn_inh": inh, "mem": mem}


def lapicque(e: Emitter, node: N.Lapicque, x: str, state: Ports) -> Ports:
    r"""Lapicque: :math:`U[t] = I[t] R \frac{1}{RC} \Delta t + (1 - \frac{\Delta t}{RC}) U[t-1] - R[t]\theta`.

    The reset is always delayed (snnTorch's ``Lapicque`` has no ``reset_delay``).
    """
    h, threshold = node.name, e.param(node, "threshold")
    rc = e.once(f"{h}/rc", lambda r: r.mul(r.param(node, "R"), r.param(node, "C"), hint=h))
    inv_rc = e.once(f"{h}/inv_rc", lambda r: r.div(r.const(1.0), rc, hint=h))
    keep = e.once(f"{h}/keep", lambda r: r.sub_(r.const(1.0), r.div(r.param(node, "time_step"), rc, hint=h), hint=h))
    reset = _reset(e, node, state["mem"], threshold)
    drive = e.mul(e.mul(e.mul(x, e.param(node, "R"), hint=h), inv_rc, hint=h), e.param(node, "time_step"), hint=h)
    mem = e.add(drive, e.mul(keep, state["mem"], hint=h), hint=h)
    if node.reset_mechanism == "subtract":
        mem = e.sub_(mem, _times(e, node, reset, threshold), hint=h)
    elif node.reset_mechanism == "zero":
        mem = e.sub_(mem, e.mul(reset, mem, hint=h), hint=h)
    z, spk = _fire(e, node, mem, threshold)
    return {"spk": spk, "mem": mem}


def adaptive_leaky(e: Emitter, node: N.AdaptiveLeaky, x: str, state: Ports) -> Ports:
    r"""ALIF: :math:`b[t] = \rho b[t-1] + (1-\rho) Z[t-1]`, threshold :math:`\theta + a\,b`."""
    h, threshold, adapt = node.name, e.param(node, "threshold"), e.param(node, "adaptation")
    rho = _clamped(e, node, "rho")
    one_minus = e.once(f"{h}/1-rho", lambda r: r.sub_(r.const(1.0), rho, hint=h))
    beta, mem, b = _clamped(e, node, "beta"), state["mem"], state["b"]
    theta = e.add(threshold, e.mul(adapt, b, hint=h), hint=h)

    def decay(z: str) -> str:
        return e.add(e.mul(rho, b, hint=h), e.mul(one_minus, z, hint=h), hint=h)

    if node.reset_delay:
        z_prev = e.heaviside(e.sub_(mem, theta, hint=h), hint=h)
        b_new = decay(z_prev)
        mem = _leak(e, node, x, mem, z_prev, beta, theta)
        _, spk = _fire(e, node, mem, e.add(threshold, e.mul(adapt, b_new, hint=h), hint=h))
        return {"spk": spk, "mem": mem, "b": b_new}
    reset = _reset(e, node, mem, theta)
    mem = _leak(e, node, x, mem, reset, beta, theta)
    z, spk = _fire(e, node, mem, theta)
    mem = _reset_now(e, node, mem, z, reset, theta, graded=False)
    return {"spk": spk, "mem": mem, "b": decay(z)}


NEURON_LOWERINGS: dict[str, Callable[[Emitter, Node, str, Ports], Ports]] = {
    "leaky": leaky, "synaptic": synaptic, "alpha": alpha, "lapicque": lapicque, "rleaky": rleaky,
    "rsynaptic": rsynaptic, "integrate_fire": integrate_fire, "leaky_integrator": leaky_integrator,
    "adaptive_leaky": adaptive_leaky,
}


def lower_neuron(e: Emitter, node: Node, x: str, state: Ports) -> Ports:
    """One step of ``node``: input ``x`` and previous state by port name -> every output port's value.

    Raises:
        LoweringError: naming the node, for a model without an ONNX lowering.
    """
    fn = NEURON_LOWERINGS.get(node.op)
    if fn is None:
        raise LoweringError(f"{node.op} '{node.name}': no ONNX lowering for this neuron model")
    out = fn(e, node, x, state)
    return {p: out[p] for p in node.ports}
