"""``sg.trace``: a per-step PyTorch / snnTorch model as an snngraph IR graph, through ``torch.fx``.

The model is traced symbolically with spiking neurons (``snngraph.nn`` and snnTorch 1.0.0) as leaf
modules; every fx node is then translated to builder calls (``g.linear``, ``g.leaky``, ...) with
the model's current parameter values, so ``sg.compile(sg.trace(m, x))`` starts from the model's
weights and computes what running ``m`` step by step computes.

Conventions:

- **Names.** A module's node is named after its path with dots replaced by ``_`` (``fc1``,
  ``net_0``; a path starting with a digit gets a leading ``_``: ``_0`` in a bare ``nn.Sequential``),
  so ``state_dict`` keys read ``fc1.weight``. Functions keep fx's node name (``add``, ``cat``).
  Graph inputs are named after ``forward``'s arguments.
- **State.** Neurons with ``init_hidden=True`` (and snnTorch neurons called without state, which
  keep it on the instance) carry their state in the graph. In the explicit style
  ``forward(x, mem1, mem2) -> (spk, mem1, mem2)``, an argument that feeds a neuron's state is
  recognised as that state and removed from the graph's inputs. Every value ``forward`` returns is
  a graph output, carried state included (users record membranes for their losses);
  ``keep_state_outputs=False`` drops returned carried state (a neuron's spikes and the first
  occurrence of a non-spiking readout's membrane are always kept). Arguments that ``forward`` never
  uses are dropped.
- **Outputs** keep the order ``forward`` returns them in. Names: ``output_names`` when given; the
  keys when ``forward`` returns a dict; the port names (``spk``, ``mem``) when every output is a
  different port of one neuron (so a lone neuron's spikes are ``spk``); ``out`` for a single other
  output; else ``out0``, ``out1``, ...
- **Parameters** are copied into the graph, one copy per node: a parameter shared by two modules
  (tied weights, ``fc2.weight = fc1.weight``) raises ``GraphError`` naming both, since the copies
  would train apart.
- **Modes.** Dropout and batch norm follow the compiled module's ``train()`` / ``eval()`` like the
  torch layers they come from; a new compiled module starts in training mode.
- **Loops over time.** A ``forward`` that loops over time itself (snnTorch tutorial style: every
  neuron called ``T`` times, records returned with ``torch.stack``) is re-rolled into its per-step
  graph (:mod:`snngraph.frontends.fx_loop`). ``example_input`` is then what ``forward`` takes
  (``x`` of shape ``(T, B, ...)`` when it reads ``x[step]``); every recorded value, membranes
  included, is an output; a value carried from one step to the next outside the neurons
  (feedback, starting from zeros) becomes a one-step ``delay``.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor, fx, nn

from snngraph.frontends import fx_layers, fx_math, fx_spatial  # noqa: F401  (add their handlers to MODULES and FUNCTIONS)
from snngraph.frontends.fx_loop import reroll
from snngraph.frontends.fx_neurons import add_neuron, is_neuron_module, neuron_kind
from snngraph.frontends.fx_norse import SequentialRoot, add_norse_cell, is_sequential_state, state_tuple
from snngraph.frontends.fx_ops import BATCH, FUNCTIONS, MODULES, NeuronOut, describe, size, tensor
from snngraph.frontends.fx_sequence import (
    add_sequence_neuron,
    has_sequence_neurons,
    sequence_class,
    sequence_param_keys,
)
from snngraph.frontends.fx_spikingjelly import add_sj_neuron, is_multi_step, per_step_view, sj_layer_handler
from snngraph.frontends.fx_tracer import NeuronRoot, location, symbolic_trace
from snngraph.ir.errors import GraphError
from snngraph.ir.graph import Graph, Handle
from snngraph.ir.types import Param, Ref

__all__ = ["trace"]


def example_tensor(examples: tuple[Any, ...], index: int, min_dim: int, layout: str) -> tuple[Tensor, str]:
    """Forward argument ``index``'s example and its dtype name: a float32/float64 tensor of ``min_dim`` or more dims."""
    if index >= len(examples) or not isinstance(examples[index], Tensor):
        raise GraphError(f"example_input has no tensor for this argument (got {len(examples)} entries)")
    x = examples[index]
    dtype = str(x.dtype).removeprefix("torch.")
    if x.dim() < min_dim or dtype not in ("float32", "float64"):
        raise GraphError(f"example tensor must be a {layout} float32/float64 tensor, got {tuple(x.shape)} {dtype}")
    return x, dtype


def trace(module: nn.Module, example_input: Tensor | tuple[Any, ...], *, name: str | None = None,
          output_names: list[str] | tuple[str, ...] | None = None, keep_state_outputs: bool = True) -> Graph:
    """Trace a per-step model into an IR graph (SPEC §6).

    Args:
        module: a per-step ``nn.Module`` of torch layers and spiking neurons (``sg.nn`` or snnTorch).
        example_input: one time step, batch first: a tensor, or a tuple with one entry per
            ``forward`` argument (state arguments may be zeros or ``None``). For a ``forward``
            that loops over time itself: the arguments it takes (e.g. ``(T, B, ...)``).
        name: the graph's name (default: the module's class name).
        output_names: names of the graph outputs, in the order ``forward`` returns them.
        keep_state_outputs: keep returned carried state (``mem1`` ...) as graph outputs (default);
            ``False`` drops it, keeping spikes and a readout's first membrane.

    Returns:
        The graph; ``sg.compile`` runs it over sequences ``(T, B, ...)``. Like any new module, the
        compiled one starts in training mode (dropout active, batch statistics): call ``.eval()``
        to match a model in evaluation mode.

    Raises:
        GraphError: an operation, module or option cannot be expressed in the IR; the message names
            it and the line of the model's source.
    """
    if not isinstance(module, nn.Module):
        raise GraphError(f"sg.trace expects a torch.nn.Module, got {type(module).__name__}")
    examples = tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)
    if has_sequence_neurons(module):  # run on whole sequences (T, B, ...): the graph takes one step of them
        examples = tuple(e[0] if isinstance(e, Tensor) and e.dim() > 2 else e for e in examples)
    name = name or type(module).__name__
    if is_multi_step(module):  # SpikingJelly's multi-step mode: forward takes whole sequences (fx_seqops)
        from snngraph.frontends.fx_seqops import trace_sequence

        return trace_sequence(module, examples, name, output_names, keep_state_outputs)
    with per_step_view(module, examples) as (module, examples):  # SpikingJelly models (fx_spikingjelly)
        return _trace(module, examples, name, output_names, keep_state_outputs)


def _trace(module: nn.Module, examples: tuple[Any, ...], name: str, output_names: Any,
           keep_state_outputs: bool) -> Graph:
    if is_neuron_module(module):
        module = NeuronRoot(module, len(examples) - 1)
    elif is_sequential_state(module):
        module = SequentialRoot(module)
    fx_graph, constants = symbolic_trace(module)
    rerolled, feedback = reroll(fx_graph, module, examples, constants), {}
    if rerolled is not None:
        (fx_graph, examples, feedback), keep_state_outputs = rerolled, True
    translator = Translator(module, fx_graph, constants, name, feedback)
    return translator.run(examples, output_names, keep_state_outputs)


class _StateArg:
    """A ``forward`` argument that carries a neuron's state."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"state argument '{self.name}'"


class Translator:
    """Walks an fx graph in order and builds the IR graph ``g``."""

    def __init__(self, root: nn.Module, fx_graph: fx.Graph, constants: dict[str, Tensor], graph_name: str,
                 feedback: dict[str, str] | None = None):
        self.root = root
        self.feedback = feedback or {}
        self.connect: dict[str, Handle] = {}
        self.fx_graph = fx_graph
        self.constants = constants
        self.g = Graph(graph_name)
        self.batch_size: int | None = None
        self.env: dict[fx.Node, Any] = {}
        self.frozen: dict[str, list[str]] = {}
        self.carried: set[Ref] = set()
        self.called: set[str] = set()
        self.param_owners: dict[int, tuple[Tensor, str]] = {}
        self.paths: dict[str, str] = {}  # IR node -> the module path whose parameters it holds
        self._fx_names = {n.name for n in fx_graph.nodes}
        self.state_args = self._find_state_args()

    # --- helpers used by the op handlers -------------------------------------------------------------
    def unique(self, base: str, helper: bool = True) -> str:
        """``base``, or ``base_1``, ``base_2``... whichever is free. A ``helper`` node (one of several
        an fx node expands to) also avoids the names of the fx nodes still to come."""
        taken = set(self.g.nodes) | (self._fx_names if helper else set())
        if base not in taken:
            return base
        i = 1
        while f"{base}_{i}" in taken or f"{base}_{i}" in self._fx_names:
            i += 1
        return f"{base}_{i}"

    def learnable(self, node: str, **params: Tensor | None) -> None:
        """Record which of a node's parameters the model does not train (``requires_grad=False``)."""
        self.frozen[node] = [k for k, v in params.items() if v is not None and not v.requires_grad]

    # --- the walk --------------------------------------------------------------------------------------
    def run(self, examples: tuple[Any, ...], output_names: Any, keep_state_outputs: bool) -> Graph:
        placeholders = [n for n in self.fx_graph.nodes if n.op == "placeholder"]
        for node in self.fx_graph.nodes:
            try:
                if node.op == "placeholder":
                    self.env[node] = self._placeholder(node, placeholders.index(node), examples)
                elif node.op == "output":
                    self._outputs(node, output_names, keep_state_outputs)
                else:
                    self.env[node] = self._visit(node)
                if node.name in self.connect:
                    self.g.connect(self.connect.pop(node.name), tensor(self.env[node], "carried value"))
            except GraphError as exc:
                raise GraphError(f"sg.trace: {self._what(node)}{self._where(node)}: {exc}") from None
            except (TypeError, IndexError, KeyError, AttributeError, ZeroDivisionError) as exc:
                raise GraphError(f"sg.trace: {self._what(node)}{self._where(node)}: cannot be translated "
                                 f"({type(exc).__name__}: {exc})") from exc
        if not self.g.inputs:
            raise GraphError(f"sg.trace: {type(self.root).__name__}.forward uses none of its arguments as data")
        return self._apply_frozen()

    def _visit(self, node: fx.Node) -> Any:
        args = fx.node.map_aggregate(node.args, self._load)
        kwargs = fx.node.map_aggregate(node.kwargs, self._load)
        if node.name in self.feedback:
            return self._feedback(node, args, kwargs)
        if node.op == "get_attr":
            return self._get_attr(node.target)
        if node.op == "call_module":
            return self._call_module(node, self.root.get_submodule(node.target), args, kwargs)
        handler = FUNCTIONS.get(node.target)
        if handler is None:
            raise GraphError("unsupported operation (no IR equivalent)")
        try:
            inspect.signature(handler).bind(self, *args, name="", **kwargs)
        except TypeError:
            raise GraphError(f"unsupported arguments {_fmt(args, kwargs)}") from None
        return handler(self, *args, name=self.unique(node.name, helper=False), **kwargs)

    def _feedback(self, node: fx.Node, args: tuple, kwargs: dict) -> Handle:
        """The zeros that start a value carried across steps: a feedback delay, connected once the
        carried value is built (a forward that loops over time, see ``fx_loop``)."""
        if node.op == "get_attr":
            shape = (BATCH, *self._get_attr(node.target).shape[1:])
        elif node.target is torch.zeros_like:
            shape = size(self, args[0])
        else:
            shape = args[1:] if node.target == "new_zeros" else args
            shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)
        if not shape or not (shape[0] is BATCH or shape[0] == self.batch_size):
            raise GraphError(f"the zeros that start a carried value must have the batch first, got shape {shape}")
        handle = self.g.feedback(shape[1:], name=self.unique("feedback", helper=False))
        self.connect[self.feedback[node.name]] = handle
        return handle

    def _load(self, arg: Any) -> Any:
        return self.env[arg] if isinstance(arg, fx.Node) else arg

    def _get_attr(self, target: str) -> Any:
        if target in self.constants:
            return self.constants[target]
        owner = self.root
        for part in target.split("."):
            owner = getattr(owner, part)
        if isinstance(owner, nn.Parameter):
            self._claim(target, [(target, owner)])
        return owner

    def _claim(self, target: str, params: Any) -> None:
        """Record which module owns each parameter; refuse one already owned by another module.

        The IR gives every node its own copy of its parameters, so tied weights (``fc2.weight =
        fc1.weight``) would silently become two parameters that diverge after one training step.
        """
        for key, p in params:
            seen = self.param_owners.setdefault(id(p), (p, key))
            if seen[0] is p and seen[1] != key:
                raise GraphError(f"parameter '{key}' of '{target}' is the same tensor as '{seen[1]}' (tied weights); "
                                 "snngraph gives every node its own parameters, so they would diverge in training: "
                                 f"untie them (e.g. `{_attr_path(key)} = nn.Parameter({_attr_path(seen[1])}"
                                 ".detach().clone())`) or use one module")

    # --- inputs and state ------------------------------------------------------------------------------
    def _find_state_args(self) -> dict[fx.Node, str]:
        """Placeholders that feed a neuron's state argument -> the neuron's fx node name."""
        found: dict[fx.Node, str] = {}
        for node in self.fx_graph.nodes:
            if node.op != "call_module" or not is_neuron_module(self.root.get_submodule(node.target)):
                continue
            slots = self._state_slots(node).values()
            for arg in (leaf for v in slots for leaf in (v if isinstance(v, (tuple, list)) else (v,))):
                if isinstance(arg, fx.Node) and arg.op == "placeholder":
                    if arg in found:
                        raise GraphError(f"sg.trace: argument '{arg.name}' feeds the state of both "
                                         f"'{found[arg]}' and '{node.target}'")
                    found[arg] = node.target
        for arg, owner in found.items():
            if len(arg.users) > 1:
                raise GraphError(f"sg.trace: argument '{arg.name}' is the state of '{owner}' and is also used "
                                 "as data; pass a separate argument")
        return found

    def _state_slots(self, node: fx.Node) -> dict[str, Any]:
        module = self.root.get_submodule(node.target)
        try:
            kind = neuron_kind(module, f"module '{node.target}'")
        except GraphError:
            return {}  # reported with its source line by the walk
        try:
            bound = inspect.signature(module.forward).bind(*node.args, **node.kwargs)
        except TypeError as exc:
            raise GraphError(f"sg.trace: call of neuron '{node.target}'{self._where(node)}: {exc}") from None
        return {k: bound.arguments.get(k) for k in kind.state_args}

    def _placeholder(self, node: fx.Node, index: int, examples: tuple[Any, ...]) -> Any:
        if node in self.state_args:
            return _StateArg(node.name)
        if not node.users:
            return None
        x, dtype = example_tensor(examples, index, 2, "(batch, *features)")
        if self.batch_size not in (None, x.shape[0]):
            raise GraphError(f"example tensors disagree on the batch size ({self.batch_size} vs {x.shape[0]})")
        self.batch_size = int(x.shape[0])
        return self.g.input(self.unique(str(node.target).lstrip("*"), helper=False), tuple(x.shape[1:]), dtype=dtype)

    # --- modules -----------------------------------------------------------------------------------------
    def _call_module(self, node: fx.Node, module: nn.Module, args: tuple, kwargs: dict) -> Any:
        name = _module_node_name(node.target)
        if is_neuron_module(module):
            return self._neuron(node, module, args, kwargs, name)
        handler = MODULES.get(type(module)) or sj_layer_handler(module, MODULES)
        if handler is None:
            raise GraphError(f"unsupported module {type(module).__module__}.{type(module).__name__}")
        if len(args) != 1 or kwargs:
            raise GraphError(f"expected one tensor argument, got {_fmt(args, kwargs)}")
        if node.target in self.called and any(True for _ in module.parameters()):
            raise GraphError("a module with parameters is called more than once; the IR does not share weights")
        self.called.add(node.target)
        self._claim(node.target, _named_params(node.target, module))
        return self._keep_path(handler(self, module, tensor(args[0], "input"), self.unique(name, helper=False)),
                               node.target)

    def _keep_path(self, result: Any, target: str) -> Any:
        """Remember that the node made for module ``target`` holds its parameters: the compiled net
        registers it at ``target``, so its ``state_dict`` keys are the model's (``0.weight``)."""
        if isinstance(result, Handle) and result.node.params():
            self.paths[result.node.name] = target
        return result

    def _neuron(self, node: fx.Node, module: nn.Module, args: tuple, kwargs: dict, name: str) -> Any:
        label = f"{type(module).__name__} '{node.target}'"
        if sequence_class(module) is not None:
            return self._sequence_neuron(node, module, args, kwargs, name, label)
        kind = neuron_kind(module, label)
        if node.target in self.called:
            raise GraphError("a neuron is called more than once per step; give each population its own module")
        self.called.add(node.target)
        self._claim(node.target, _named_params(node.target, module))
        if kind.library == "spikingjelly":
            if len(args) != 1 or kwargs:
                raise GraphError(f"a SpikingJelly neuron takes one tensor, got {_fmt(args, kwargs)}")
            return self._keep_path(add_sj_neuron(self.g, tensor(args[0], "neuron input"), module,
                                                 self.unique(name, helper=False), label), node.target)
        try:
            bound = inspect.signature(module.forward).bind(*args, **kwargs)
        except TypeError as exc:
            raise GraphError(f"bad call of the neuron: {exc}") from None
        x = tensor(bound.arguments[next(iter(inspect.signature(module.forward).parameters))], "neuron input")
        if kind.library == "norse":
            return self._norse_cell(node, module, kind, x, bound.arguments.get(kind.state_args[0]), name, label)
        carried = [port for arg in kind.state_args for port, value in self._state_values(kind, arg, bound.arguments)
                   if self._check_state(module, kind, value)]
        handle = self._keep_path(add_neuron(self.g, x, module, kind, self.unique(name, helper=False), label),
                                 node.target)
        self.carried.update(Ref(handle.name, port) for port in carried)
        if module.init_hidden and not getattr(module, "output", False):
            return handle
        return NeuronOut(handle, kind.returns)

    def _sequence_neuron(self, node: fx.Node, module: nn.Module, args: tuple, kwargs: dict, name: str,
                         label: str) -> Any:
        """A whole-sequence neuron (``StateLeaky``, ``LeakyParallel`` ...): its input is its only argument."""
        if node.target in self.called:
            raise GraphError("a neuron is called more than once per step; give each population its own module")
        self.called.add(node.target)
        if len(args) + len(kwargs) != 1:
            raise GraphError(f"{label}: takes the input sequence only, got {_fmt(args, kwargs)}")
        self._claim(node.target, _named_params(node.target, module))
        x = tensor(args[0] if args else next(iter(kwargs.values())), "neuron input")
        neuron = self.unique(name, helper=False)
        result = add_sequence_neuron(self.g, x, module, neuron, label, self.frozen)
        if self.g.nodes[neuron].params():  # the neuron node holds the module's own parameters
            self.paths[neuron] = node.target
        for own, key in sequence_param_keys(module, neuron).items():  # the fused linears' under the module's keys
            if own.partition(".")[0] in self.g.nodes:
                self.paths[own] = f"{node.target}.{key}"
        return result
    def _norse_cell(self, node: fx.Node, module: nn.Module, kind: Any, x: Handle, state: Any, name: str,
                    label: str) -> tuple:
        """A Norse cell (:mod:`snngraph.frontends.fx_norse`): ``(out, state)`` as graph values."""
        if state is not None and not isinstance(state, _StateArg):
            raise GraphError("a Norse cell's state must be None (a fresh state, carried by the graph) or a forward "
                             "argument")
        handle = self._keep_path(add_norse_cell(self, x, module, kind.op, self.unique(name, helper=False), label,
                                                node.target), node.target)
        self.carried.update(Ref(handle.name, port) for port in handle.node.state_ports)
        return handle, state_tuple(kind.op, handle)

    @staticmethod
    def _state_values(kind: Any, arg: str, arguments: dict[str, Any]) -> list[tuple[str, Any]]:
        """``(port, value)`` of state argument ``arg``; a nested argument (DeltaLeaky's ``mem`` pair) gives
        one per port of its group."""
        value, ports = arguments.get(arg), kind.group(arg)
        if len(ports) == 1:
            return [(ports[0], value)]
        if value is None:
            return [(port, None) for port in ports]
        if not isinstance(value, (tuple, list)) or len(value) != len(ports):
            raise GraphError(f"the neuron's {arg!r} must be the tuple ({', '.join(ports)})")
        return list(zip(ports, value, strict=True))

    def _check_state(self, module: nn.Module, kind: Any, value: Any) -> bool:
        """Whether a state argument is carried through ``forward``'s arguments (else held inside)."""
        if isinstance(value, _StateArg):
            if module.init_hidden:
                raise GraphError("state passed to a neuron with init_hidden=True")
            return True
        if value is None:
            if not module.init_hidden and kind.library == "snngraph":
                raise GraphError("an sg.nn neuron called without its state and init_hidden=False restarts from "
                                 "zero at every step; pass the state as a forward argument or use init_hidden=True")
            return False
        if isinstance(value, Tensor):
            raise GraphError("the neuron's state is a constant, so it would restart at every step; pass the state "
                             "as a forward argument (explicit state) or use init_hidden=True")
        raise GraphError("a neuron's state must come from forward's arguments (explicit state) or be kept by the "
                         "neuron (init_hidden=True)")

    # --- outputs ---------------------------------------------------------------------------------------
    def _returned(self, node: fx.Node) -> Any:
        """What ``forward`` returns (the output node's argument), as graph values."""
        return fx.node.map_aggregate(node.args[0], self._load)

    def _outputs(self, node: fx.Node, output_names: Any, keep_state_outputs: bool) -> None:
        value = self._returned(node)
        keys, items = _flatten_outputs(value)
        kept, seen = [], set()
        for key, item in zip(keys, items, strict=True):
            handle = tensor(item, "forward's return value")
            ref = handle.ref
            state = ref in self.carried and (ref.port != handle.node.default_port or ref in seen)
            seen.add(ref)
            if not state or keep_state_outputs:
                kept.append((key, handle))
        if not kept:
            raise GraphError("forward returns no value that is not carried state")
        for out_name, (_, handle) in zip(_output_names(kept, output_names), kept, strict=True):
            self.g.output(out_name, handle)

    def _apply_frozen(self) -> Graph:
        changes = {}
        for name, keys in self.frozen.items():
            if keys:
                node = self.g.nodes[name]
                changes[name] = node.replace(**{k: Param(getattr(node, k).value, False) for k in keys})
        g = self.g.with_nodes(changes) if changes else self.g
        return g.with_module_paths(self.paths)

    # --- messages --------------------------------------------------------------------------------------
    def _what(self, node: fx.Node) -> str:
        if node.op == "call_module":
            return f"module '{node.target}' ({type(self.root.get_submodule(node.target)).__name__})"
        if node.op in ("call_function", "call_method"):
            return describe(node.target)
        if node.op == "placeholder":
            return f"argument '{node.name}'"
        if node.op == "output":
            return "the return value of forward"
        return f"attribute '{node.target}'"

    def _where(self, node: fx.Node) -> str:
        return location(node, self.root)


def _named_params(target: str, module: nn.Module) -> list[tuple[str, Tensor]]:
    """``(<module path>.<param>, parameter)`` for every parameter of ``module``."""
    return [(f"{target}.{k}", p) for k, p in module.named_parameters()]


def _attr_path(key: str) -> str:
    """A parameter path as Python attribute access on the model (``net.0.weight`` -> ``net[0].weight``)."""
    return "model" + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in key.split("."))


def _module_node_name(target: str) -> str:
    name = target.replace(".", "_")
    return f"_{name}" if name[:1].isdigit() else name


def _fmt(args: tuple, kwargs: dict) -> str:
    return ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])


def _flatten_outputs(value: Any) -> tuple[list[str | None], list[Any]]:
    """Returned values in order, with their dict keys (``None`` outside dicts)."""
    if isinstance(value, dict):
        keys, items = [], []
        for k, v in value.items():
            sub_keys, sub = _flatten_outputs(v)
            keys += [str(k)] * len(sub) if len(sub) == 1 else [f"{k}_{i}" for i in range(len(sub))]
            items += sub
        return keys, items
    if isinstance(value, (tuple, list)):
        keys, items = [], []
        for v in value:
            sub_keys, sub = _flatten_outputs(v)
            keys += sub_keys
            items += sub
        return keys, items
    if isinstance(value, NeuronOut):
        return _flatten_outputs(value.values())
    return [None], [value]


def _output_names(kept: list[tuple[str | None, Handle]], given: Any) -> list[str]:
    if given is not None:
        names = list(given)
        if len(names) != len(kept):
            raise GraphError(f"output_names has {len(names)} names for {len(kept)} outputs")
        return names
    if all(key is not None for key, _ in kept):
        return [key for key, _ in kept]
    refs = [h.ref for _, h in kept]
    ports = [r.port for r in refs]
    if len({r.node for r in refs}) == 1 and len(set(ports)) == len(ports) and kept[0][1].node.family == "neuron":
        return ports
    return ["out"] if len(kept) == 1 else [f"out{i}" for i in range(len(kept))]
