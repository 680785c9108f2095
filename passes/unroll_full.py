"""Full unrolling over a fixed number of steps: ``unroll_time(graph, steps=T)``.

The result is a graph to be run for a single time step (run length 1) from a fresh state:

* every input ``x`` becomes ``T`` inputs ``x_t0 ... x_t{T-1}``; every output ``out`` becomes
  ``out_t0 ... out_t{T-1}`` (each output's steps in order, outputs in the graph's order);
* every other node is copied once per step (``fc1`` -> ``fc1_t3``) with the same parameter values;
* a stateful neuron at step 0 is the original node (one step from zero state is step 0); at step
  ``t > 0`` it is an explicit-state copy (``state_inputs=True``) whose state inputs are step
  ``t-1``'s state ports; an explicit-state neuron is copied with its inputs mapped;
* ``delay(x, steps=k)`` at step ``t`` is ``x`` at step ``t-k`` (no node); for ``t < k`` it is a
  delay fed by its own output, which outputs zeros whatever the run length (it has no history);
* loops closed by delays (``g.feedback`` / ``g.connect``) unroll by the same two rules.

Copies are named ``<name>_t<step>`` (``@`` is not legal in IR names). The naming is injective,
the step being the digits after the last ``_t``, so copies never collide; :func:`split_step_name`
inverts it.
"""

from __future__ import annotations

from snngraph.ir import limits
from snngraph.ir.errors import GraphError
from snngraph.ir.graph import Graph
from snngraph.ir.node import Node
from snngraph.ir.synapses import Delay
from snngraph.ir.types import Ref
from snngraph.ir.verify import verify
from snngraph.passes.time_structure import stages


def step_name(name: str, t: int) -> str:
    """The name of ``name``'s copy (or of output ``name``) at step ``t``."""
    return f"{name}_t{t}"


def split_step_name(name: str) -> tuple[str, int]:
    """``(name, t)`` from a name made by :func:`step_name`; GraphError for any other name."""
    base, sep, t = name.rpartition("_t")
    if not sep or not base or not t.isascii() or not t.isdigit():
        raise GraphError(f"'{name}' is not the name of a per-step copy (<name>_t<step>)")
    return base, int(t)


def unroll_fully(graph: Graph, steps: int) -> Graph:
    """``graph`` unrolled over ``steps`` steps (see the module docstring); ``graph`` must be valid.

    Raises:
        GraphError: ``graph`` is invalid, or the unrolled graph would exceed the limits of
            :func:`check_unroll_size`.
    """
    verify(graph)
    check_unroll_size(graph, steps)
    unroller = _Unroller(graph)
    order = [n for stage in stages(graph) for n in stage.nodes]
    for t in range(steps):
        for name in order:
            unroller.copy(name, t)
    outputs = {step_name(key, t): unroller.ref_at(ref, t) for key, ref in graph.outputs.items()
               for t in range(steps)}
    return Graph(graph.name, unroller.nodes, outputs)


def check_unroll_size(graph: Graph, steps: int) -> None:
    """Refuse, before building anything, more than ``sg.limits.MAX_UNROLL_STEPS`` steps, or an unrolled
    graph of more than ``sg.limits.MAX_UNROLLED_NODES`` nodes (each costs time and memory, in the unrolled
    graph and again in an ONNX model built from it: ~0.3 ms and ~15 kB a node)."""
    if steps > limits.MAX_UNROLL_STEPS:
        raise GraphError(f"graph '{graph.name}': cannot unroll {steps} time steps, more than "
                         f"sg.limits.MAX_UNROLL_STEPS = {limits.MAX_UNROLL_STEPS} (export with a dynamic T instead)")
    if len(graph.nodes) * steps > limits.MAX_UNROLLED_NODES:
        raise GraphError(f"graph '{graph.name}': unrolling its {len(graph.nodes)} nodes over {steps} steps makes "
                         f"{len(graph.nodes) * steps} nodes, more than sg.limits.MAX_UNROLLED_NODES = "
                         f"{limits.MAX_UNROLLED_NODES}")


class _Unroller:
    """Collects the per-step copies, in step-major order (each copy after the ones it reads)."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.nodes: list[Node] = []
        self.zero_delays: set[str] = set()

    def ref_at(self, ref: Ref, t: int) -> Ref:
        """The value ``ref`` at step ``t``: delays resolved to the step they read."""
        node = self.graph.nodes[ref.node]
        while isinstance(node, Delay):
            if t < node.steps:
                return self._zeros(node, t)
            t -= node.steps
            ref = node.inputs[0]
            node = self.graph.nodes[ref.node]
        return Ref(step_name(ref.node, t), ref.port)

    def _zeros(self, delay: Delay, t: int) -> Ref:
        """The delay at a step before its first input arrives: a delay of its own output (zeros)."""
        name = step_name(delay.name, t)
        if name not in self.zero_delays:
            self.zero_delays.add(name)
            self.nodes.append(delay.replace(name=name, inputs=(Ref(name, "out"),)))
        return Ref(name, "out")

    def copy(self, name: str, t: int) -> None:
        node = self.graph.nodes[name]
        if isinstance(node, Delay):
            return
        inputs = tuple(self.ref_at(r, t) for r in node.inputs)
        changes: dict = {"name": step_name(name, t), "inputs": inputs}
        if node.family == "neuron" and not node.state_inputs and t > 0:
            prev = step_name(name, t - 1)
            changes.update(inputs=inputs + tuple(Ref(prev, p) for p in node.state_ports), state_inputs=True,
                           fused=False)
        self.nodes.append(node.replace(**changes))


__all__ = ["check_unroll_size", "split_step_name", "step_name", "unroll_fully"]
