"""Builder methods for neuron populations, with snnTorch 1.0.0's keyword names and defaults."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from snngraph.ir import neurons as N
from snngraph.ir.errors import GraphError
from snngraph.ir.init import as_array, kaiming_weight, uniform_fan_in
from snngraph.ir.surrogate import Surrogate
from snngraph.ir.types import Param

if TYPE_CHECKING:
    from snngraph.ir.graph import Handle


def as_surrogate(spike_grad: Any, where: str) -> Surrogate | None:
    """``None`` (default filled in by the ``insert_surrogates`` pass), a Surrogate, or any callable
    spike function (kept as ``Surrogate("callable", fn=...)``: runs eagerly, cannot be saved)."""
    if spike_grad is None or isinstance(spike_grad, Surrogate):
        return spike_grad
    if callable(spike_grad):
        return Surrogate("callable", fn=spike_grad)
    raise GraphError(f"{where}: spike_grad must be a surrogate (sg.surrogate.atan(), ...) or callable")


class NeuronBuilder:
    """Mixin: ``g.leaky(x, beta=...)`` and the other neuron models."""

    def _neuron_common(self, where: str, threshold: Any, spike_grad: Any, learn_threshold: bool,
                       reset_mechanism: str, reset_delay: bool, graded_spikes_factor: Any,
                       learn_graded_spikes_factor: bool) -> dict[str, Any]:
        if reset_mechanism not in N.RESETS:
            raise GraphError(f"{where}: reset_mechanism must be one of {N.RESETS}, got {reset_mechanism!r}")
        return dict(
            threshold=Param(as_array(threshold, f"{where} threshold"), learn_threshold),
            reset_mechanism=reset_mechanism, reset_delay=bool(reset_delay),
            graded_spikes_factor=Param(as_array(graded_spikes_factor, f"{where} graded_spikes_factor"),
                                       learn_graded_spikes_factor),
            surrogate=as_surrogate(spike_grad, where))

    def _decay(self, value: Any, key: str, where: str, learnable: bool) -> Param:
        if value is None:
            raise GraphError(f"{where}: {key} is required")
        arr = as_array(value, f"{where} {key}")
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            raise GraphError(f"{where}: {key} must lie in [0, 1], got values in [{arr.min():g}, {arr.max():g}]")
        return Param(arr, learnable)

    def _neuron(self, cls: type, x: Any, name: str | None, **fields: Any) -> Handle:
        name = self._name(name, cls.op)
        ref = self._ref(x, f"{cls.op} '{name}'")
        return self._add(cls(name=name, inputs=(ref,), **fields))

    def leaky(self, x: Any, beta: Any, threshold: Any = 1.0, spike_grad: Callable | None = None,
              learn_beta: bool = False, learn_threshold: bool = False, reset_mechanism: str = "subtract",
              reset_delay: bool = True, graded_spikes_factor: Any = 1.0, learn_graded_spikes_factor: bool = False,
              name: str | None = None) -> Handle:
        """Leaky integrate-and-fire population (snnTorch ``Leaky``); ports ``spk``, ``mem``."""
        name = self._name(name, "leaky")
        where = f"leaky '{name}'"
        common = self._neuron_common(where, threshold, spike_grad, learn_threshold, reset_mechanism, reset_delay,
                                     graded_spikes_factor, learn_graded_spikes_factor)
        return self._neuron(N.Leaky, x, name, beta=self._decay(beta, "beta", where, learn_beta), **common)

    def synaptic(self, x: Any, alpha: Any, beta: Any, threshold: Any = 1.0, spike_grad: Callable | None = None,
                 learn_alpha: bool = False, learn_beta: bool = False, learn_threshold: bool = False,
                 reset_mechanism: str = "subtract", reset_delay: bool = True, graded_spikes_factor: Any = 1.0,
                 learn_graded_spikes_factor: bool = False, name: str | None = None) -> Handle:
        """Current-based LIF (snnTorch ``Synaptic``); ports ``spk``, ``syn``, ``mem``."""
        name = self._name(name, "synaptic")
        where = f"synaptic '{name}'"
        common = self._neuron_common(where, threshold, spike_grad, learn_threshold, reset_mechanism, reset_delay,
                                     graded_spikes_factor, learn_graded_spikes_factor)
        return self._neuron(N.Synaptic, x, name, alpha=self._decay(alpha, "alpha", where, learn_alpha),
                            beta=self._decay(beta, "beta", where, learn_beta), **common)

    def alpha(self, x: Any, alpha: Any, beta: Any, threshold: Any = 1.0, spike_grad: Callable | None = None,
              learn_alpha: bool = False, learn_beta: bool = False, learn_threshold: bool = False,
              reset_mechanism: str = "zero", graded_spikes_factor: Any = 1.0,
              learn_graded_spikes_factor: bool = False, name: str | None = None) -> Handle:
        """Alpha neuron (snnTorch ``Alpha``: alpha > beta, default zero reset, reset always delayed);
        ports ``spk``, ``syn_exc``, ``syn_inh``, ``mem``."""
        reset_delay = True
        name = self._name(name, "alpha")
        where = f"alpha '{name}'"
        a, b = self._decay(alpha, "alpha", where, learn_alpha), self._decay(beta, "beta", where, learn_beta)
        if np.any(a.value <= b.value):
            raise GraphError(f"{where}: alpha must be greater than beta")
        common = self._neuron_common(where, threshold, spike_grad, learn_threshold, reset_mechanism, reset_delay,
                                     graded_spikes_factor, learn_graded_spikes_factor)
        return self._neuron(N.Alpha, x, name, alpha=a, beta=b, **common)

    def lapicque(self, x: Any, beta: Any = None, R: Any = None, C: Any = None, time_step: Any = 1.0,
                 threshold: Any = 1.0, spike_grad: Callable | None = None, learn_threshold: bool = False,
                 reset_mechanism: str = "subtract", reset_delay: bool = True, graded_spikes_factor: Any = 1.0,
                 learn_graded_spikes_factor: bool = False, name: str | None = None) -> Handle:
        """Lapicque RC neuron (snnTorch ``Lapicque``): give ``beta``, or ``R`` and ``C``, or beta and one of them."""
        name = self._name(name, "lapicque")
        where = f"lapicque '{name}'"
        r, c = lapicque_rc(beta, R, C, time_step, where)
        common = self._neuron_common(where, threshold, spike_grad, learn_threshold, reset_mechanism, reset_delay,
                                     graded_spikes_factor, learn_graded_spikes_factor)
        return self._neuron(N.Lapicque, x, name, R=Param(r), C=Param(c),
                            time_step=Param(as_array(time_step, f"{where} time_step")), **common)

    def _recurrence(self, x: Any, where: str, all_to_all: bool, V: Any, learn_recurrent: bool,
                    recurrent_weight: Any, recurrent_bias: Any) -> dict[str, Param | bool | None]:
        if not all_to_all:
            return dict(all_to_all=False, V=Param(as_array(V, f"{where} V"), learn_recurrent))
        n = self._in_type(x, where)[1].shape[-1]
        w = kaiming_weight((n, n)) if recurrent_weight is None else \
            as_array(recurrent_weight, f"{where} recurrent.weight", (n, n))
        b = uniform_fan_in((n,), n) if recurrent_bias is None else as_array(recurrent_bias, f"{where} recurrent.bias",
                                                                            (n,))
        return dict(all_to_all=True, recurrent_weight=Param(w, learn_recurrent),
                    recurrent_bias=Param(b, learn_recurrent))

    def rleaky(self, x: Any, beta: Any, V: Any = 1.0, all_to_all: bool = True, linear_features: int | None = None,
               threshold: Any = 1.0, spike_grad: Callable | None = None, learn_beta: bool = False,
               learn_threshold: bool = False, learn_recurrent: bool = True, reset_mechanism: str = "subtract",
               reset_delay: bool = True, graded_spikes_factor: Any = 1.0, learn_graded_spikes_factor: bool = False,
               recurrent_weight: Any = None, recurrent_bias: Any = None, name: str | None = None) -> Handle:
        """Recurrent LIF (snnTorch ``RLeaky``): dense recurrence ``recurrent.weight/.bias`` (initialised
        like ``nn.Linear``) when ``all_to_all``, else element-wise ``V``."""
        name = self._name(name, "rleaky")
        where = f"rleaky '{name}'"
        _check_features(self, x, linear_features, where)
        rec = self._recurrence(x, where, all_to_all, V, learn_recurrent, recurrent_weight, recurrent_bias)
        common = self._neuron_common(where, threshold, spike_grad, learn_threshold, reset_mechanism, reset_delay,
                                     graded_spikes_factor, learn_graded_spikes_factor)
        return self._neuron(N.RLeaky, x, name, beta=self._decay(beta, "beta", where, learn_beta), **rec, **common)

    def rsynaptic(self, x: Any, alpha: Any, beta: Any, V: Any = 1.0, all_to_all: bool = True,
                  linear_features: int | None = None, threshold: Any = 1.0, spike_grad: Callable | None = None,
                  learn_alpha: bool = False, learn_beta: bool = False, learn_threshold: bool = False,
                  learn_recurrent: bool = True, reset_mechanism: str = "subtract", reset_delay: bool = True,
                  graded_spikes_factor: Any = 1.0, learn_graded_spikes_factor: bool = False,
                  recurrent_weight: Any = None, recurrent_bias: Any = None, name: str | None = None) -> Handle:
        """Recurrent current-based LIF (snnTorch ``RSynaptic``)."""
        name = self._name(name, "rsynaptic")
        where = f"rsynaptic '{name}'"
        _check_features(self, x, linear_features, where)
        rec = self._recurrence(x, where, all_to_all, V, learn_recurrent, recurrent_weight, recurrent_bias)
        common = self._neuron_common(where, threshold, spike_grad, learn_threshold, reset_mechanism, reset_delay,
                                     graded_spikes_factor, learn_graded_spikes_factor)
        return self._neuron(N.RSynaptic, x, name, alpha=self._decay(alpha, "alpha", where, learn_alpha),
                            beta=self._decay(beta, "beta", where, learn_beta), **rec, **common)

    def integrate_fire(self, x: Any, threshold: Any = 1.0, spike_grad: Callable | None = None,
                       learn_threshold: bool = False, reset_mechanism: str = "subtract", reset_delay: bool = True,
                       graded_spikes_factor: Any = 1.0, learn_graded_spikes_factor: bool = False,
                       name: str | None = None) -> Handle:
        """Non-leaky integrate-and-fire (IF); ports ``spk``, ``mem``."""
        name = self._name(name, "integrate_fire")
        where = f"integrate_fire '{name}'"
        common = self._neuron_common(where, threshold, spike_grad, learn_threshold, reset_mechanism, reset_delay,
                                     graded_spikes_factor, learn_graded_spikes_factor)
        return self._neuron(N.IntegrateFire, x, name, **common)

    def leaky_integrator(self, x: Any, beta: Any, learn_beta: bool = False, name: str | None = None) -> Handle:
        """Non-spiking leaky integrator (LI) readout: the value is the membrane (port ``mem``)."""
        name = self._name(name, "leaky_integrator")
        where = f"leaky_integrator '{name}'"
        return self._neuron(N.LeakyIntegrator, x, name, beta=self._decay(beta, "beta", where, learn_beta))

    def adaptive_leaky(self, x: Any, beta: Any, rho: Any = 0.9, adaptation: Any = 1.0, threshold: Any = 1.0,
                       spike_grad: Callable | None = None, learn_beta: bool = False, learn_threshold: bool = False,
                       learn_rho: bool = False, learn_adaptation: bool = False, reset_mechanism: str = "subtract",
                       reset_delay: bool = True, graded_spikes_factor: Any = 1.0,
                       learn_graded_spikes_factor: bool = False, name: str | None = None) -> Handle:
        """Adaptive-threshold LIF (ALIF); ports ``spk``, ``mem``, ``b`` (threshold adaptation)."""
        name = self._name(name, "adaptive_leaky")
        where = f"adaptive_leaky '{name}'"
        common = self._neuron_common(where, threshold, spike_grad, learn_threshold, reset_mechanism, reset_delay,
                                     graded_spikes_factor, learn_graded_spikes_factor)
        return self._neuron(N.AdaptiveLeaky, x, name, beta=self._decay(beta, "beta", where, learn_beta),
                            rho=self._decay(rho, "rho", where, learn_rho),
                            adaptation=Param(as_array(adaptation, f"{where} adaptation"), learn_adaptation), **common)


def _check_features(builder: Any, x: Any, linear_features: int | None, where: str) -> None:
    if linear_features is not None:
        n = builder._in_type(x, where)[1].shape[-1]
        if linear_features != n:
            raise GraphError(f"{where}: linear_features={linear_features} but the input has {n} features")


def lapicque_rc(beta: Any, R: Any, C: Any, time_step: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Resolve (R, C) the way snnTorch's ``Lapicque`` does from beta / R / C and the time step,
    with torch's float32 arithmetic (as snnTorch computes them), so the values match bit for bit."""
    import torch

    def given(v: Any) -> bool:
        return v is not None and v is not False

    dt = time_step if isinstance(time_step, (int, float)) else as_array(time_step, f"{where} time_step")
    dt_t = torch.as_tensor(dt)
    if not given(beta):
        if not (given(R) and given(C)):
            raise GraphError(f"{where}: give beta, or both R and C")
        return as_array(R, f"{where} R"), as_array(C, f"{where} C")
    if given(R) and given(C):
        raise GraphError(f"{where}: give beta with at most one of R and C")
    b = torch.as_tensor(as_array(beta, f"{where} beta"))
    if torch.any(b <= 0) or torch.any(b >= 1):
        raise GraphError(f"{where}: beta must lie in (0, 1) to derive R and C")
    if given(C):
        c = torch.as_tensor(as_array(C, f"{where} C"))
        r = dt_t / (c * torch.log(1 / b))
    else:
        r = torch.as_tensor(as_array(R, f"{where} R")) if given(R) else torch.as_tensor(1)
        c = dt_t / (r * torch.log(1 / b))
    return as_array(r, f"{where} R"), as_array(c, f"{where} C")
