r"""Neuron nodes: stateful populations with snnTorch 1.0.0 semantics (discrete time).

Common notation: input current :math:`I[t]`, membrane :math:`U`, spike :math:`S[t] = g\,H(U[t]-\theta)`
with graded-spike factor :math:`g`, reset :math:`R[t] = H(U[t-1]-\theta)` (detached). With
``reset_delay=False`` the reset is applied in the same step the spike is emitted.

Explicit state (``state_inputs=True``): the node carries no state of its own; after its current
input it takes one input per entry of ``state_ports`` (same order), the state before each step.
Run for one step (the fully unrolled graph of ``unroll_time(g, steps=T)``) those inputs are the
initial state; a stateful neuron equals its explicit-state copy fed its own state ports through
``delay(steps=1)``.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from snngraph.ir.node import Node, broadcastable, require_positive, require_range
from snngraph.ir.surrogate import Surrogate
from snngraph.ir.types import Param, TensorType

frozen = dataclasses.dataclass(frozen=True, kw_only=True)
RESETS = ("subtract", "zero", "none")


@frozen
class Neuron(Node):
    """Base of spiking neurons: threshold, reset and surrogate shared by all."""

    threshold: Param
    reset_mechanism: str = "subtract"
    reset_delay: bool = True
    graded_spikes_factor: Param
    surrogate: Surrogate | None = None
    fused: bool = False  # set by the fuse_state_updates pass: run the whole time loop as one kernel
    state_inputs: bool = False  # the state before each step comes from inputs 1.. (one per state port)
    family: ClassVar[str] = "neuron"
    ports: ClassVar[tuple[str, ...]] = ("spk", "mem")
    decays: ClassVar[tuple[str, ...]] = ()

    @property
    def state_ports(self) -> tuple[str, ...]:
        """The carried state, in kernel order (``spk`` first for recurrent neurons)."""
        return tuple(p for p in self.ports if p != "spk")

    @property
    def arity(self) -> tuple[int, int]:  # type: ignore[override]
        return state_arity(self)

    def check(self) -> None:
        super().check()
        if self.reset_mechanism not in RESETS:
            raise self.error(f"reset_mechanism must be one of {RESETS}, got {self.reset_mechanism!r}")
        for key in self.decays:
            # a learnt decay may leave [0, 1] during training: the kernels clamp it (as snnTorch
            # does), and the raw value is kept so training resumes exactly; declarations are checked
            # by the builder
            if not getattr(self, key).learnable:
                require_range(self, key, 0.0, 1.0)

    def infer(self, ins: tuple[TensorType, ...]) -> dict[str, TensorType]:
        t = current_type(self, ins)
        for key, value in self.fields().items():
            if isinstance(value, Param) and key not in self.matrix_params:
                broadcastable(self, key, t.shape)
        types = {p: TensorType(t.shape, t.dtype) for p in self.ports}
        if "spk" in types:
            types["spk"] = TensorType(t.shape, t.dtype, spike=True)
        return types

    matrix_params: ClassVar[tuple[str, ...]] = ()


@frozen
class Leaky(Neuron):
    r"""Leaky integrate-and-fire (snnTorch ``Leaky``).

    .. math:: U[t] = \beta U[t-1] + I[t] - R[t]\,\theta
    """

    beta: Param
    op: ClassVar[str] = "leaky"
    decays: ClassVar[tuple[str, ...]] = ("beta",)


@frozen
class Synaptic(Neuron):
    r"""Current-based LIF, two state variables (snnTorch ``Synaptic``).

    .. math:: I_{syn}[t] = \alpha I_{syn}[t-1] + I[t],\quad U[t] = \beta U[t-1] + I_{syn}[t] - R[t]\,\theta
    """

    alpha: Param
    beta: Param
    op: ClassVar[str] = "synaptic"
    ports: ClassVar[tuple[str, ...]] = ("spk", "syn", "mem")
    decays: ClassVar[tuple[str, ...]] = ("alpha", "beta")


@frozen
class Alpha(Neuron):
    r"""Alpha-kernel neuron with excitatory and inhibitory synaptic currents (snnTorch ``Alpha``).

    .. math:: I_{exc}[t] = \alpha I_{exc}[t-1] + I[t],\quad I_{inh}[t] = \beta I_{inh}[t-1] - I[t],\quad
              U[t] = \tau_\alpha (I_{exc}[t] + I_{inh}[t]) - R[t]\theta,\
              \tau_\alpha = \log\alpha / (\log\beta - \log\alpha) + 1

    snnTorch requires ``alpha > beta``.
    """

    alpha: Param
    beta: Param
    op: ClassVar[str] = "alpha"
    ports: ClassVar[tuple[str, ...]] = ("spk", "syn_exc", "syn_inh", "mem")
    decays: ClassVar[tuple[str, ...]] = ("alpha", "beta")


@frozen
class Lapicque(Neuron):
    r"""Lapicque's RC neuron (snnTorch ``Lapicque``).

    .. math:: U[t] = I[t]\,\frac{\Delta t}{C} + \left(1 - \frac{\Delta t}{RC}\right) U[t-1] - R[t]\,\theta
    """

    R: Param
    C: Param
    time_step: Param
    op: ClassVar[str] = "lapicque"

    def check(self) -> None:
        super().check()
        for key in ("R", "C", "time_step"):
            require_positive(self, key)


@frozen
class RLeaky(Leaky):
    r"""Recurrent LIF (snnTorch ``RLeaky``): the previous spikes feed back through ``V``.

    .. math:: U[t] = \beta U[t-1] + I[t] + V(S[t-1]) - R[t]\,\theta

    ``V`` is a dense linear layer (``all_to_all``: ``recurrent.weight``, ``recurrent.bias``) or an
    element-wise scale ``V``.
    """

    all_to_all: bool = True
    recurrent_weight: Param | None = None
    recurrent_bias: Param | None = None
    V: Param | None = None
    op: ClassVar[str] = "rleaky"
    ports: ClassVar[tuple[str, ...]] = ("spk", "mem")
    param_aliases: ClassVar[dict[str, str]] = {"recurrent_weight": "recurrent.weight",
                                               "recurrent_bias": "recurrent.bias"}
    matrix_params: ClassVar[tuple[str, ...]] = ("recurrent_weight", "recurrent_bias")

    @property
    def state_ports(self) -> tuple[str, ...]:
        return ("spk", *(p for p in self.ports if p != "spk"))

    def check(self) -> None:
        super().check()
        if self.all_to_all and (self.recurrent_weight is None or self.V is not None):
            raise self.error("all_to_all recurrence needs recurrent.weight (and no V)")
        if not self.all_to_all and (self.V is None or self.recurrent_weight is not None):
            raise self.error("one-to-one recurrence needs V (and no recurrent.weight)")

    def infer(self, ins: tuple[TensorType, ...]) -> dict[str, TensorType]:
        t = current_type(self, ins)
        if self.all_to_all:
            n = t.shape[-1]
            if len(t.shape) != 1 or self.recurrent_weight.shape != (n, n):
                raise self.error(f"all_to_all recurrence needs a 1-D input and a [{n}, {n}] recurrent.weight; "
                                 f"got input {list(t.shape)} and weight {list(self.recurrent_weight.shape)}")
            if self.recurrent_bias is not None and self.recurrent_bias.shape != (n,):
                raise self.error(f"recurrent.bias must have shape [{n}]")
        return super().infer(ins)


@frozen
class RSynaptic(RLeaky):
    r"""Recurrent current-based LIF (snnTorch ``RSynaptic``).

    .. math:: I_{syn}[t] = \alpha I_{syn}[t-1] + I[t] + V(S[t-1]),\quad U[t] = \beta U[t-1] + I_{syn}[t] - R[t]\theta
    """

    alpha: Param
    op: ClassVar[str] = "rsynaptic"
    ports: ClassVar[tuple[str, ...]] = ("spk", "syn", "mem")
    decays: ClassVar[tuple[str, ...]] = ("alpha", "beta")


@frozen
class IntegrateFire(Neuron):
    r"""Integrate-and-fire without leak.

    .. math:: U[t] = U[t-1] + I[t] - R[t]\,\theta
    """

    op: ClassVar[str] = "integrate_fire"


@frozen
class LeakyIntegrator(Node):
    r"""Non-spiking leaky integrator (LI) readout; its output is the membrane.

    .. math:: U[t] = \beta U[t-1] + I[t]
    """

    beta: Param
    fused: bool = False
    state_inputs: bool = False  # as for Neuron: the state before each step comes from input 1
    op: ClassVar[str] = "leaky_integrator"
    family: ClassVar[str] = "neuron"
    ports: ClassVar[tuple[str, ...]] = ("mem",)

    @property
    def state_ports(self) -> tuple[str, ...]:
        return ("mem",)

    @property
    def arity(self) -> tuple[int, int]:  # type: ignore[override]
        return state_arity(self)

    def check(self) -> None:
        super().check()
        if not self.beta.learnable:  # a learnt beta is clamped by the kernel, like Neuron's decays
            require_range(self, "beta", 0.0, 1.0)

    def infer(self, ins: tuple[TensorType, ...]) -> dict[str, TensorType]:
        t = current_type(self, ins)
        broadcastable(self, "beta", t.shape)
        return {"mem": TensorType(t.shape, t.dtype)}


@frozen
class AdaptiveLeaky(Leaky):
    r"""Adaptive-threshold LIF (ALIF, Bellec et al. 2018), discretised like ``Leaky``.

    .. math:: b[t] = \rho\,b[t-1] + (1-\rho)\,R[t],\quad \theta[t] = \theta_0 + a\,b[t],\quad
              U[t] = \beta U[t-1] + I[t] - R[t]\,\theta[t-1],\quad S[t] = H(U[t] - \theta[t])
    """

    rho: Param
    adaptation: Param
    op: ClassVar[str] = "adaptive_leaky"
    ports: ClassVar[tuple[str, ...]] = ("spk", "mem", "b")
    decays: ClassVar[tuple[str, ...]] = ("beta", "rho")


def state_arity(node: Neuron | LeakyIntegrator) -> tuple[int, int]:
    """Inputs taken: the current, plus one per state port with ``state_inputs``."""
    n = 1 + (len(node.state_ports) if node.state_inputs else 0)
    return n, n


def current_type(node: Neuron | LeakyIntegrator, ins: tuple[TensorType, ...]) -> TensorType:
    """The current input's type; with ``state_inputs`` each state input must have its shape and dtype."""
    low, _ = state_arity(node)
    if len(ins) != low:
        states = f", then {', '.join(node.state_ports)}" if low > 1 else ""
        raise node.error(f"takes {low} inputs (the current{states}), got {len(ins)}")
    t = ins[0]
    for port, s in zip(node.state_ports if node.state_inputs else (), ins[1:], strict=True):
        if s.shape != t.shape or s.dtype != t.dtype:
            raise node.error(f"state input '{port}' has type {s}, expected {TensorType(t.shape, t.dtype)} "
                             "(the current input's shape and dtype)")
    return t


NEURON_OPS = ("leaky", "synaptic", "alpha", "lapicque", "rleaky", "rsynaptic", "integrate_fire",
              "leaky_integrator", "adaptive_leaky")
