"""Re-rolling of models whose ``forward`` loops over time (snnTorch tutorial style).

::

    def forward(self, x):                       # x: (T, B, ...) or a static (B, ...) input
        mem1 = self.lif1.init_leaky()
        spk_rec = []
        for step in range(num_steps):
            spk1, mem1 = self.lif1(self.fc1(x[step]), mem1)
            spk_rec.append(spk1)
        return torch.stack(spk_rec)

``torch.fx`` unrolls the loop: every neuron module is called ``T`` times. The unrolled graph is
cut into steps (a call's step is its occurrence; any other node belongs to the latest step it
reads from, ``x[t]`` to step ``t``), every step is checked to repeat step 0, and step 0 becomes a
per-step fx graph in the explicit-state style: a neuron's initial state (zeros from
``init_leaky()`` & co.) becomes a state argument, which is valid because step ``t`` feeds it the
neuron's new state of step ``t - 1``. ``torch.stack`` of per-step values becomes the per-step
value, and ``x[t]`` the per-step input ``x``. Any other value that step ``t`` reads from step
``t - 1`` (a feedback connection, starting from ``torch.zeros``) becomes a one-step delay. A
static input (used as is at every step) stays an input: the compiled graph then takes it
repeated over time.
"""

from __future__ import annotations

import operator
from collections import Counter
from typing import Any

import torch
from torch import Tensor, fx, nn

from snngraph.frontends.fx_neurons import is_neuron_module, neuron_kind
from snngraph.ir.errors import GraphError

_STATIC, _COLLECT = -1, -2


def reroll(graph: fx.Graph, root: nn.Module, examples: tuple[Any, ...],
           constants: dict[str, Tensor]) -> tuple[fx.Graph, tuple[Any, ...], dict[str, str]] | None:
    """The per-step fx graph and examples of a time-looping ``forward``; ``None`` if it does not loop.

    ``constants`` are the tensors fx took out of the model as ``get_attr`` targets. The third item
    maps each zeros node that starts a carried value to the node whose previous-step value it
    stands for: the translator makes it a one-step feedback delay."""
    calls = Counter(n.target for n in graph.nodes if n.op == "call_module"
                    and is_neuron_module(root.get_submodule(n.target)))
    if not calls or max(calls.values()) == 1:
        return None
    steps = max(calls.values())
    if set(calls.values()) != {steps}:
        raise GraphError(f"sg.trace: forward loops over time but calls its neurons unequally often: {dict(calls)}")
    return _Reroller(graph, root, steps, constants).build(examples)


class _Reroller:
    def __init__(self, graph: fx.Graph, root: nn.Module, steps: int, constants: dict[str, Tensor]):
        self.graph, self.root, self.steps, self.constants = graph, root, steps, constants
        self.step: dict[fx.Node, int] = {}
        self.time_inputs: set[fx.Node] = set()
        self.feedback: dict[fx.Node, fx.Node] = {}
        self._assign_steps()
        self.corr = self._correspondence()

    # --- cutting into steps ----------------------------------------------------------------------------
    def _assign_steps(self) -> None:
        calls = Counter(n.target for n in self.graph.nodes if n.op == "call_module")
        seen: Counter = Counter()
        for node in self.graph.nodes:
            if node.op in ("placeholder", "get_attr", "output"):
                self.step[node] = _STATIC
            elif node.op == "call_module" and calls[node.target] == self.steps:
                self.step[node] = seen[node.target]
                seen[node.target] += 1
            elif self._time_index(node) is not None:
                self.step[node] = self._time_index(node)
                self.time_inputs.add(node.args[0])
            elif node.target is torch.stack:
                self.step[node] = _COLLECT
            else:
                deps = [self.step[a] for a in node.all_input_nodes]
                if _COLLECT in deps:
                    raise _error(node, "a stacked record is used inside forward; only return torch.stack(...)")
                self.step[node] = max(deps, default=_STATIC)

    def _time_index(self, node: fx.Node) -> int | None:
        if node.target is operator.getitem and node.args[0].op == "placeholder" and isinstance(node.args[1], int):
            return node.args[1] if 0 <= node.args[1] < self.steps else None
        return None

    def _correspondence(self) -> dict[fx.Node, fx.Node]:
        """Each node of step t -> the node of step 0 in the same place; checks the steps repeat."""
        by_step: dict[int, list[fx.Node]] = {}
        for node, s in self.step.items():
            by_step.setdefault(s, []).append(node)
        first = by_step.get(0, [])
        corr = {n: n for n in first}
        for t in range(1, self.steps):
            nodes = by_step.get(t, [])
            if len(nodes) != len(first):
                raise _error(nodes[0] if nodes else first[0], f"step {t} of the time loop does not repeat step 0")
            for node, ref in zip(nodes, first, strict=True):
                self._check_same(node, ref, t, corr)
                corr[node] = ref
        return corr

    def _check_same(self, node: fx.Node, ref: fx.Node, t: int, corr: dict[fx.Node, fx.Node]) -> None:
        if (node.op, node.target) != (ref.op, ref.target) or len(node.args) != len(ref.args) or \
                set(node.kwargs) != set(ref.kwargs):
            raise _error(node, f"step {t} of the time loop does not repeat step 0 ({node.format_node()})")
        if self._time_index(node) is not None:
            return
        pairs = list(zip(_flat(node.args), _flat(ref.args), strict=True)) + \
            list(zip(_flat(list(node.kwargs.values())), _flat([ref.kwargs[k] for k in node.kwargs]), strict=True))
        for a, b in pairs:
            if not isinstance(a, fx.Node):
                if a != b and not (isinstance(a, Tensor) and a is b):
                    raise _error(node, f"step {t} differs from step 0 in a constant ({a!r} vs {b!r})")
            elif self.step[a] == _STATIC:
                if a is not b:
                    raise _error(node, f"step {t} of the time loop reads '{a.name}' where step 0 reads '{b}'")
            elif self.step[a] == t:
                if corr.get(a) is not b:
                    raise _error(node, f"step {t} of the time loop is wired differently from step 0")
            elif self.step[a] == t - 1 and self._state_slot(node, a) is not None:
                self._check_state_link(node, a, b, corr)
            elif self.step[a] == t - 1:
                self._check_feedback(node, a, b, corr)
            else:
                raise _error(node, "only values of the previous step may be carried into a step")

    def _state_slot(self, call: fx.Node, arg: fx.Node) -> str | None:
        """The state argument of neuron ``call`` that ``arg`` is passed as, if any."""
        if call.op != "call_module" or not is_neuron_module(module := self.root.get_submodule(call.target)):
            return None
        slot = _slot_of(call, arg, module)
        return slot if slot in neuron_kind(module, call.target).state_args else None

    def _check_feedback(self, node: fx.Node, prev: fx.Node, initial: Any, corr: dict[fx.Node, fx.Node]) -> None:
        """A value of step t-1 read at step t (not a neuron's state) becomes a one-step delay, which
        starts from zeros: step 0 must read zeros in its place."""
        source = corr.get(prev)
        if source is None or not isinstance(initial, fx.Node) or self.step[initial] != _STATIC or \
                not self._is_zeros(initial):
            raise _error(node, "a value carried from one step to the next must start from zeros (torch.zeros)")
        if self.feedback.setdefault(initial, source) is not source:
            raise _error(node, "one initial value starts two different carried values")

    def _check_state_link(self, call: fx.Node, prev: fx.Node, initial: Any, corr: dict[fx.Node, fx.Node]) -> None:
        """Step t's state argument must be the same neuron's new state (same port) of step t-1."""
        module = self.root.get_submodule(call.target)
        kind = neuron_kind(module, f"module '{call.target}'")
        source = corr.get(prev)
        ok = (source is not None and source.target is operator.getitem and source.args[0].target == call.target
              and isinstance(source.args[1], int) and isinstance(initial, fx.Node) and self.step[initial] == _STATIC)
        if ok:
            slot = _slot_of(call, prev, module)
            ok = slot is not None and kind.returns[source.args[1]] == slot
        if not ok:
            raise _error(call, "a neuron's state at step t must be its own new state of step t-1 (same port), "
                         "starting from zeros (init_leaky() & co.)")

    # --- the per-step graph ----------------------------------------------------------------------------
    def build(self, examples: tuple[Any, ...]) -> tuple[fx.Graph, tuple[Any, ...], dict[str, str]]:
        new, env = fx.Graph(), {}
        placeholders = [n for n in self.graph.nodes if n.op == "placeholder"]
        new_examples: list[Any] = []
        for i, ph in enumerate(placeholders):
            env[ph] = new.node_copy(ph)
            example = examples[i] if i < len(examples) else None
            new_examples.append(example[0] if ph in self.time_inputs and isinstance(example, Tensor) else example)
        state_args = self._initial_states()
        for initial, name in state_args.items():
            env[initial] = new.placeholder(name)
            new_examples.append(None)
        for node in self.graph.nodes:
            if node in env or node.op in ("placeholder", "output") or self.step[node] not in (_STATIC, 0):
                continue
            if self._time_index(node) is not None:
                env[node] = env[node.args[0]]
            elif node.target == "size" and node.args[0] in self.time_inputs and len(node.args) == 2:
                dim = node.args[1]  # x.size(1) of the (T, B, ...) input is the per-step x.size(0)
                env[node] = self.steps if dim == 0 else new.call_method("size", (env[node.args[0]], dim - 1))
            else:
                env[node] = new.node_copy(node, lambda a: env[a])
        out = next(n for n in self.graph.nodes if n.op == "output")
        new.output(fx.node.map_aggregate(out.args[0], lambda v: self._per_step(v, env)))
        new.lint()
        return new, tuple(new_examples), {env[k].name: env[v].name for k, v in self.feedback.items()}

    def _initial_states(self) -> dict[fx.Node, str]:
        """Initial states of step 0's neurons (checked to be zeros) -> names of new state arguments."""
        found: dict[fx.Node, str] = {}
        for node, s in self.step.items():
            if s != 1 or node.op != "call_module" or not is_neuron_module(self.root.get_submodule(node.target)):
                continue
            first = self.corr[node]
            for a, b in zip(_flat(node.args) + _flat(list(node.kwargs.values())),
                            _flat(first.args) + _flat(list(first.kwargs.values())), strict=True):
                if isinstance(a, fx.Node) and self.step[a] == 0 and b.op != "placeholder" and \
                        self._state_slot(node, a) is not None:
                    if not self._is_zeros(b):
                        raise _error(first, "a neuron's initial state must be zeros (init_leaky(), torch.zeros)")
                    slot = _slot_of(first, b, self.root.get_submodule(first.target))
                    found[b] = f"{first.target.replace('.', '_')}_{slot}"
        return found

    def _is_zeros(self, node: fx.Node) -> bool:
        if node.op == "call_function":
            return node.target in (torch.zeros, torch.zeros_like)
        if node.op == "call_method":
            return node.target == "new_zeros"
        if node.op != "get_attr":
            return False
        value = self.constants[node.target] if node.target in self.constants else _attr(self.root, node.target)
        return isinstance(value, Tensor) and not (value.numel() and bool(value.ne(0).any()))

    def _per_step(self, value: Any, env: dict[fx.Node, Any]) -> Any:
        if not isinstance(value, fx.Node):
            return value
        if value.target is torch.stack:
            items = value.args[0]
            dim = value.kwargs.get("dim", value.args[1] if len(value.args) > 1 else 0)
            if dim != 0 or len(items) != self.steps or any(self.step[v] != t or self.corr[v] is not items[0]
                                                             for t, v in enumerate(items)):
                raise _error(value, "return torch.stack(values, dim=0) of one value recorded at every step")
            return env[items[0]]
        if self.step[value] == _STATIC and value.op == "placeholder":
            return env[value]
        raise _error(value, "forward returns a value of one step only; return torch.stack(...) of its values over "
                     "all steps")


def _slot_of(call: fx.Node, arg: fx.Node, module: nn.Module) -> str | None:
    import inspect

    bound = inspect.signature(module.forward).bind(*call.args, **call.kwargs).arguments
    return next((k for k, v in bound.items() if v is arg), None)


def _attr(root: nn.Module, target: str) -> Any:
    owner: Any = root
    for part in target.split("."):
        owner = getattr(owner, part)
    return owner


def _flat(args: Any) -> list[Any]:
    out: list[Any] = []
    fx.node.map_aggregate(args, out.append)
    return out


def _error(node: fx.Node, message: str) -> GraphError:
    frames = (node.stack_trace or "").strip().splitlines()
    where = f" ({frames[0].strip()})" if frames else ""
    return GraphError(f"sg.trace: {message}{where}")
