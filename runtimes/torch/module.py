"""``sg.compile``: a graph as a ``torch.nn.Module`` that runs whole sequences (T, B, ...).

Feed-forward parts run as sequence stages: each synapse once over all T*B rows, each neuron
population through its time loop. Cycles closed by delays run as loop stages, one step at a
time. ``step`` runs the whole graph one step at a time with explicit state for streaming.

Lowering choices that change memory and speed, never values (see ``lower.py``): runs of
convolutions and pooling go block by block (``spatial_chains``); a fused neuron may keep its
state in its private input current's buffer (``scratch_inputs``); a linear or convolution fed by 0/1
spikes saves them as bool (``spike_fed_linears``, ``spike_linear.py``; ``spike_fed_convs``, ``spike_conv.py``).

Under ``torch.compile`` / ``torch.export`` / ``torch.func`` (``scan_ops.tracing``) the fused scans run as
custom ops without those buffer tricks and spike-fed linears as ``F.linear``, with the same values:
the forward and the backward trace as one graph, with dynamic T and B for fused neurons (an unfused
neuron's Python time loop is unrolled: a new T retraces it).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from snngraph.ir import limits
from snngraph.ir import synapses as S
from snngraph.ir.errors import GraphError
from snngraph.ir.graph import Graph
from snngraph.ir.types import Ref
from snngraph.passes.manager import PassManager
from snngraph.passes.time_structure import stages
from snngraph.runtimes.torch.derived_scan import describe
from snngraph.runtimes.torch.explicit_state import explicit_state_step, run_explicit_state
from snngraph.runtimes.torch.fused_check import check_fused
from snngraph.runtimes.torch.layers import torch_module
from snngraph.runtimes.torch.lower import (
    SPATIAL,
    NodeParams,
    neuron_kwargs,
    neuron_precision,
    param_of,
    param_tensors,
    per_step_in_training,
    scratch_inputs,
    sequence_in_training,
    spatial_chains,
    spike_fed_convs,
    spike_fed_linears,
    synapse_op,
    without_autocast,
)
from snngraph.runtimes.torch.scan_ops import tracing
from snngraph.runtimes.torch.sequence import run_neuron_sequence
from snngraph.runtimes.torch.state_keys import install as install_state_keys
from snngraph.runtimes.torch.state_keys import key_map
from snngraph.runtimes.torch.triton import check_kernels

State = dict[str, Tensor]
ROW_BLOCK_ELEMENTS = 2**21  # output elements per block of rows for spatial synapses


def _observed(module: nn.Module | None) -> bool:
    """Whether hooks may see (forward hooks) or wrap (full backward hooks, whose views a scan must not
    write into) the result of ``module``: then that result is not private scratch space for a scan."""
    from torch.nn.modules import module as m

    if m._global_forward_hooks or m._global_backward_hooks or m._global_backward_pre_hooks:
        return True
    return module is not None and bool(module._forward_hooks or module._backward_hooks or module._backward_pre_hooks)


def _refuse_tracing_export() -> None:
    """``torch.onnx.export`` / ``torch.jit.trace`` would bake one sequence length's Python loops and
    fused kernels into a wrong model (it used to write one with no inputs): refuse, naming the way."""
    if torch.compiler.is_compiling():  # torch.compile / torch.export: traced through custom ops (scan_ops)
        return
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        raise GraphError("torch.onnx.export and torch.jit.trace cannot capture a compiled snngraph net (its time "
                         "loops, state and fused kernels are not traceable ops); use sg.export_onnx(net, path) "
                         "(mode='sequence' | 'step', or num_steps=T, unroll=True)")


def compile(graph: Graph, passes: Sequence[Any] | None = None, verify: bool = True,
            kernels: str = "auto") -> CompiledNet:
    """Compile ``graph`` with ``passes`` (default: ``sg.passes.default_pipeline()``) into a module.

    ``kernels``: how the fused neuron scans run: ``"auto"`` (Triton kernels on CUDA tensors when
    ``triton`` imports, else the torch scans), ``"torch"``, or ``"triton"`` (CUDA tensors, or CPU
    tensors under ``TRITON_INTERPRET=1``; a GraphError otherwise). See ``runtimes/torch/triton``."""
    from snngraph.passes import default_pipeline

    if not isinstance(graph, Graph):
        raise GraphError(f"sg.compile expects an snngraph Graph, got {type(graph).__name__}")
    kernels = check_kernels(kernels)
    lowered = PassManager(default_pipeline() if passes is None else passes, verify=verify)(graph)
    check_fused(lowered)
    return CompiledNet(lowered, source=graph, kernels=kernels)


class CompiledNet(nn.Module):
    """A compiled graph. ``forward(x_seq) -> {output: (T, B, ...)}``; ``step`` for streaming.

    Parameters are registered as ``<node>.<param>`` (``fc1.weight``, ``lif1.beta``).
    """

    def __init__(self, graph: Graph, source: Graph | None = None, kernels: str = "auto"):
        super().__init__()
        self._kernels = check_kernels(kernels)
        self.graph = graph
        self.source = source if source is not None else graph
        self._ops: dict[str, Any] = {}
        types, paths = graph.types(), self.source.module_paths
        self._node_modules: dict[str, nn.Module] = {}
        owners = {key.partition(".")[0] for key in paths}
        for name, node in graph.nodes.items():
            rank = len(types[node.inputs[0]].shape) if node.inputs else 0
            module = torch_module(node, rank) if node.family == "synapse" else None
            if module is None and node.params():
                # a traced graph's node standing for no module of the model holds constants of its forward
                module = NodeParams(node, snntorch_buffers=name in paths,
                                    fixed_outside=bool(paths) and name not in owners)
            if module is not None:
                self._register(paths.get(name, name), name, module)
        if keys := key_map(paths):
            install_state_keys(self, keys)
        self._ops = self._synapse_ops()
        dtypes = {t.dtype for t in self.state_dict().values() if t.is_floating_point()}
        if len(dtypes) > 1:  # explicit float64 arrays next to float32 defaults: run in the widest
            self.to(max(dtypes, key=lambda d: torch.finfo(d).bits))
        self._stages = stages(graph)
        self._order = graph.topo_order()
        self._types = graph.types()
        self._shape_cache: dict[int, dict[str, tuple[int, ...]]] = {}  # batch -> state shapes, for step's checks
        self._has_params = next(self.parameters(), None) is not None
        self._scratch = scratch_inputs(graph)
        self._spike_fed = spike_fed_linears(graph)
        self._spike_fed_convs = spike_fed_convs(graph)
        self._chains = spatial_chains(graph)
        self._chained = {n for run in self._chains.values() for n in run[1:]}  # computed with their head
        self._derived = {name: describe(node) for name, node in graph.nodes.items()  # unfused loops' op specs
                         if node.family == "neuron" and not getattr(node, "fused", False)}

    def _register(self, path: str, name: str, module: nn.Module) -> None:
        """Register node ``name``'s module at ``path`` (its name, or a traced model's module path such as
        ``block.conv1``, so ``state_dict`` keys are the model's own); intermediate modules are created."""
        owner, (*heads, leaf) = self, path.split(".")
        for part in heads:
            if part not in owner._modules:
                if hasattr(owner, part) or part in dir(nn.Module):
                    raise GraphError(f"module path '{path}' of node '{name}' clashes with a torch.nn.Module attribute")
                owner.add_module(part, nn.Module())
            owner = owner._modules[part]
        if leaf in owner._modules or hasattr(owner, leaf) or leaf in dir(nn.Module):
            raise GraphError(f"node name '{name}' (module path '{path}') clashes with a torch.nn.Module attribute or "
                             "another node's module; rename it")
        owner.add_module(leaf, module)
        self._node_modules[name] = module

    def _synapse_ops(self) -> dict[str, Any]:
        return {name: synapse_op(node) for name, node in self.graph.nodes.items()
                if node.family == "synapse" and not isinstance(node, (S.Delay, S.Input))}

    def __getstate__(self) -> dict[str, Any]:
        """Pickling (``torch.save(net)``, ``copy.deepcopy``): everything but the rebuilt op table."""
        state = self.__dict__.copy()
        state.pop("_ops", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_kernels", "auto")  # a net saved before sg.compile had kernels=
        self._ops = self._synapse_ops()

    # --- helpers ------------------------------------------------------------------------------
    def _params(self, name: str) -> nn.Module | None:
        return self._node_modules.get(name)

    def _dtype(self) -> torch.dtype | None:
        """The dtype inputs must have: the parameters', else that of constant weights or statistics (matmul,
        convolution and batch norm need their operands in one dtype); ``None`` (any floating point) for a
        net whose constants are only element-wise (a bare neuron)."""
        for t in self.parameters():
            if t.is_floating_point():
                return t.dtype
        for name, module in self._node_modules.items():
            synapse = self.graph.nodes[name].family == "synapse"
            for t in module.buffers():  # (not batch norm's integer num_batches_tracked)
                if t.is_floating_point() and (t.dim() >= 2 or (t.dim() == 1 and synapse)):
                    return t.dtype
        return None

    def _check_inputs(self, args: tuple, kwargs: dict, time_dim: bool) -> dict[str, Tensor]:
        inputs = self.graph.inputs
        if len(args) + len(kwargs) != len(inputs) or set(kwargs) - set(inputs):
            raise GraphError(f"graph '{self.graph.name}' takes inputs {list(inputs)}, got {len(args)} positional "
                             f"and {sorted(kwargs)}")
        given = dict(zip(inputs, args, strict=False)) | kwargs
        lead = "(T, B, " if time_dim else "(B, "
        dtype = self._dtype()
        for name, node in inputs.items():
            x = given[name]
            expected = f"{lead}{', '.join(map(str, node.shape))})"
            if not isinstance(x, Tensor):
                raise GraphError(f"input '{name}': expected a tensor of shape {expected}, got {type(x).__name__}")
            if x.dim() != len(node.shape) + (2 if time_dim else 1) or tuple(x.shape[-len(node.shape):]) != node.shape:
                raise GraphError(f"input '{name}': expected shape {expected}, got {tuple(x.shape)}")
            if not x.is_floating_point() or (dtype is not None and x.dtype != dtype):
                raise GraphError(f"input '{name}': expected dtype {dtype or 'floating point'}, got {x.dtype}")
        lead = {name: tuple(x.shape[:2 if time_dim else 1]) for name, x in given.items()}
        first = next(iter(lead.items()))
        for name, dims in lead.items():
            if dims != first[1]:
                raise GraphError(f"input '{name}': leading dims {'(T, B)' if time_dim else '(B,)'} = {dims} differ "
                                 f"from input '{first[0]}''s {first[1]}")
        if time_dim and first[1][0] < 1:
            raise GraphError(f"input '{first[0]}': a sequence needs at least one time step, got T = 0")
        return given

    # --- whole sequences ----------------------------------------------------------------------
    def forward(self, *args: Tensor, **kwargs: Tensor) -> dict[str, Tensor]:
        """Run the graph over sequences ``(T, B, *shape)``; returns every output as ``(T, B, ...)``."""
        _refuse_tracing_export()
        given = self._check_inputs(args, kwargs, time_dim=True)
        values: dict[Ref, Tensor] = {}
        for name, x in given.items():
            values[Ref(name, "out")] = x
        steps = next(iter(given.values())).shape[0]
        for stage in self._stages:
            if stage.kind == "seq":
                self._run_sequence_node(stage.nodes[0], values, steps)
            else:
                self._run_loop(stage.nodes, values, steps)
        return {k: values[r] for k, r in self.graph.outputs.items()}

    def _run_sequence_node(self, name: str, values: dict[Ref, Tensor], steps: int) -> None:
        node = self.graph.nodes[name]
        if isinstance(node, S.Input) or name in self._chained:
            return
        xs = [values[r] for r in node.inputs]
        params = self._params(name)
        if isinstance(node, S.Delay):
            x = xs[0]
            if steps <= node.steps:
                out = torch.zeros_like(x)
            else:
                out = torch.cat([x.new_zeros((node.steps, *x.shape[1:])), x[:-node.steps]])
            values[Ref(name, "out")] = out
        elif node.family == "synapse":
            op = self._ops[name]
            if self.training and per_step_in_training(node):
                steps_of = [x.unbind(0) for x in xs]  # one UnbindBackward each, not T zero-filled SelectBackwards
                out = torch.stack([op(params, [x[t] for x in steps_of], True) for t in range(steps)])
            else:
                rows = [x.reshape(-1, *x.shape[2:]) for x in xs]
                if name in self._spike_fed and tracing():  # the Linear module (its hooks run) as the custom op
                    graded = param_of(self._params(self._spike_fed[name]), "graded_spikes_factor")
                    out = params(rows[0], graded=graded)
                elif name in self._spike_fed and self._unit_spikes(self._spike_fed[name]):
                    out = params(rows[0], unit_spikes=True)  # the Linear module: its hooks run
                else:
                    unit = name in self._spike_fed_convs and self._unit_spikes(self._spike_fed_convs[name])
                    out = self._rows_in_blocks(self._chains.get(name, (name,)), rows, unit)
                out = out.reshape(steps, -1, *out.shape[1:])
            values[Ref(self._chains[name][-1] if name in self._chains else name, "out")] = out
        elif node.state_inputs:
            xs = [neuron_precision(x) for x in xs]
            with without_autocast(xs[0]):
                ports = run_explicit_state(node, xs, neuron_kwargs(node, params))
            values.update({Ref(name, port): seq for port, seq in ports.items()})
        else:
            xs = [neuron_precision(xs[0])]
            with without_autocast(xs[0]):
                ports = run_neuron_sequence(node, xs[0], neuron_kwargs(node, params), self._zero_state(node, xs[0][0]),
                                            param_tensors(node, params) if params is not None else None,
                                            scratch=name in self._scratch and not _observed(
                                                self._params(node.inputs[0].node)),
                                            derived=self._derived.get(name),
                                            kernels=self._kernels)
            for port, seq in ports.items():
                values[Ref(name, port)] = seq

    def _unit_spikes(self, neuron: str) -> bool:
        """Whether ``neuron``'s spikes are exactly 0/1 now (its graded factor, perhaps learnt, is 1). Under
        tracing (``scan_ops.tracing``) never: reading the factor would sync with the host, and the plain
        ``F.linear`` gives the same values (it only saves its input as float)."""
        if tracing():
            return False
        return bool((param_of(self._params(neuron), "graded_spikes_factor") == 1).all())

    def _rows_in_blocks(self, run: tuple[str, ...], rows: list[Tensor], unit_spikes: bool = False) -> Tensor:
        """``run`` (one synapse, or a chain of convolutions and pooling) over all T*B rows at once;
        spatial ops in blocks of rows whose largest output stays cache-sized, each block through the
        whole chain (measured 1.5x faster than one huge call on the 2-core CPU; same values).
        ``unit_spikes``: the head is a convolution fed 0/1 spikes (``spike_fed_convs``), which it saves as bool."""
        def apply(r: Tensor) -> Tensor:
            for i, name in enumerate(run):
                if i == 0 and unit_spikes:
                    r = self._params(name)(r, unit_spikes=True)  # the Conv module: its hooks run
                else:
                    r = self._ops[name](self._params(name), [r], self.training)
            return r

        if not isinstance(self.graph.nodes[run[0]], SPATIAL):
            return self._ops[run[0]](self._params(run[0]), rows, self.training)
        (x,) = rows
        per_row = max(self._types[Ref(name, "out")].numel for name in run)
        block = max(1, ROW_BLOCK_ELEMENTS // per_row)
        if x.shape[0] <= 2 * block:
            return apply(x)
        return torch.cat([apply(x[i:i + block]) for i in range(0, x.shape[0], block)])

    def _run_loop(self, names: tuple[str, ...], values: dict[Ref, Tensor], steps: int) -> None:
        """Nodes on a cycle through delays: advance them together one step at a time."""
        batch = next(iter(values.values())).shape[1]
        like = next(iter(values.values()))
        state = {k: v for k, v in self.init_state(batch, like=like).items() if k.split(".")[0] in names}
        collected: dict[Ref, list[Tensor]] = {}
        for t in range(steps):
            step_values = {r: v[t] for r, v in values.items() if r.node not in names}
            state = self._step_nodes(names, step_values, state)
            for r, v in step_values.items():
                if r.node in names:
                    collected.setdefault(r, []).append(v)
        for r, seq in collected.items():
            values[r] = torch.stack(seq)

    # --- streaming --------------------------------------------------------------------------------
    def init_state(self, batch_size: int = 1, like: Tensor | None = None) -> State:
        """Fresh (zero) state for ``batch_size`` streams: ``{"<node>.<state>": tensor}``; delays
        keep their last ``steps`` inputs as ``"<node>.buffer"`` of shape (steps, B, ...)."""
        try:
            batch = operator.index(batch_size)
        except TypeError:
            batch = -1
        if batch < 0 or isinstance(batch_size, bool):
            raise GraphError(f"init_state: batch_size must be a non-negative int, got {batch_size!r}")
        ref = like if like is not None else next(self.parameters(), torch.zeros(()))
        shapes = self._state_shapes(batch)
        for key, shape in shapes.items():
            if math.prod(shape) > 2**31:
                raise GraphError(f"init_state: state '{key}' of shape {shape} for batch {batch} is too large")
        self._check_runtime_bytes(shapes, ref.element_size(), batch)
        return {key: ref.new_zeros(shape) for key, shape in shapes.items()}

    def _check_runtime_bytes(self, shapes: dict[str, tuple[int, ...]], itemsize: int, batch: int) -> None:
        """Refuse, before allocating, a state whose bytes (twice: the state a step reads and the one it
        writes) plus the parameters' exceed ``sg.limits.MAX_RUNTIME_BYTES``."""
        sizes = {key: math.prod(shape) * itemsize for key, shape in shapes.items()}
        state = sum(sizes.values())
        params = sum(t.numel() * t.element_size() for t in (*self.parameters(), *self.buffers()))
        if params + 2 * state > limits.MAX_RUNTIME_BYTES:
            largest = max(sizes, key=sizes.__getitem__)
            raise GraphError(f"init_state: the state for batch {batch} takes {state} bytes (the largest entry, "
                             f"'{largest}' of shape {shapes[largest]}, {sizes[largest]}); with the parameters' "
                             f"{params} a step would hold {params + 2 * state} bytes, more than "
                             f"sg.limits.MAX_RUNTIME_BYTES = {limits.MAX_RUNTIME_BYTES}")

    def _state_shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        """``{"<node>.<state>": shape}`` of the state for ``batch`` streams, in ``init_state``'s order."""
        shapes = {}
        for name, node in self.graph.nodes.items():
            if isinstance(node, S.Delay):
                shapes[f"{name}.buffer"] = (node.steps, batch, *node.shape)
            elif node.family == "neuron" and not node.state_inputs:  # explicit state: inputs, not carried
                for port in node.state_ports:
                    shapes[f"{name}.{port}"] = (batch, *node.state_shape(self._types[node.inputs[0]].shape))
        return shapes

    def _check_state(self, state: Any, like: Tensor) -> None:
        """``state`` must hold exactly the entries of ``init_state``: floating-point tensors of their shape, of
        ``like``'s (the inputs') dtype when the net has parameters or buffers."""
        if not isinstance(state, Mapping):
            raise GraphError(f"state must be a dict from init_state or the last step, got {type(state).__name__}")
        batch = like.shape[0]
        shapes = self._shape_cache.get(batch) or self._shape_cache.setdefault(batch, self._state_shapes(batch))
        missing, unknown = [k for k in shapes if k not in state], [k for k in state if k not in shapes]
        if missing or unknown:
            problems = [f"is missing {missing}"] * bool(missing) + [f"has unknown entries {unknown}"] * bool(unknown)
            raise GraphError(f"state {' and '.join(problems)}; start from net.init_state(batch_size)")
        dtype = like.dtype if self._dtype() is not None else None  # as for inputs
        for key, shape in shapes.items():
            value = state[key]
            if not isinstance(value, Tensor) or tuple(value.shape) != shape or not value.is_floating_point() or (
                    dtype is not None and value.dtype != dtype):
                got = (f"{tuple(value.shape)} {value.dtype}" if isinstance(value, Tensor) else type(value).__name__)
                raise GraphError(f"state '{key}': expected a tensor of shape {shape} and dtype "
                                 f"{dtype or 'floating point'} (batch {like.shape[0]}), got {got}")

    def _zero_state(self, node: Any, x: Tensor) -> tuple[Tensor, ...]:
        shape = (x.shape[0], *node.state_shape(tuple(x.shape[1:])))
        return tuple(x.new_zeros(shape) for _ in node.state_ports)

    def step(self, *args: Tensor, state: State | None = None, **kwargs: Tensor) -> tuple[dict[str, Tensor], State]:
        """One time step: inputs ``(B, *shape)`` and the state from ``init_state`` or the last step.

        Call as ``out_t, state = net.step(x_t, state)``.
        """
        args, state = self._split_state(args, kwargs, state)
        given = self._check_inputs(tuple(args), kwargs, time_dim=False)
        like = next(iter(given.values()))
        if state is None:
            state = self.init_state(like.shape[0], like=like)
        else:
            self._check_state(state, like)
        values = {Ref(k, "out"): v for k, v in given.items()}
        new_state = self._step_nodes(tuple(self._order), values, state)
        return {k: values[r] for k, r in self.graph.outputs.items()}, new_state

    def _split_state(self, args: tuple, kwargs: dict, state: Any) -> tuple[tuple, Any]:
        """Separate a positional state (``net.step(x, state)``) from the inputs.

        ``None`` in the state's place means a fresh state, as ``state=None`` does; a last positional
        argument beyond the inputs that is neither a dict nor ``None`` is not a state.
        """
        extra = len(args) + len(kwargs) - len(self.graph.inputs)
        if state is not None or not args or extra < 1 and not isinstance(args[-1], Mapping):
            return args, state
        if isinstance(args[-1], Mapping) or args[-1] is None:
            return args[:-1], args[-1]
        if extra == 1 and not isinstance(args[-1], Tensor):
            raise GraphError(f"step: the state (after the inputs {list(self.graph.inputs)}) must be a dict from "
                             f"net.init_state() or the last step, or None for a fresh state; got "
                             f"{type(args[-1]).__name__}")
        return args, state

    def _step_nodes(self, names: tuple[str, ...], values: dict[Ref, Tensor], state: State) -> State:
        """Evaluate ``names`` (in topological order) for one step; return their new state."""
        new_state = dict(state)
        order = [n for n in self._order if n in set(names)]
        for name in order:
            node = self.graph.nodes[name]
            if isinstance(node, S.Input):
                continue
            if isinstance(node, S.Delay):
                values[Ref(name, "out")] = state[f"{name}.buffer"][0]
                continue
            xs = [values[r] for r in node.inputs]
            params = self._params(name)
            if node.family == "synapse":
                if self.training and sequence_in_training(node):
                    raise node.error("normalises with the statistics of the whole sequence (stats=\"sequence\"), "
                                     "which one time step cannot compute in training mode: run the net on whole "
                                     "sequences, or call .eval() (running statistics) to step it")
                values[Ref(name, "out")] = self._ops[name](params, xs, self.training)
                continue
            from snngraph.runtimes.torch.kernels import kernel_for

            xs = [neuron_precision(x) for x in xs]
            if node.state_inputs:  # explicit state: from the inputs, nothing carried
                with without_autocast(xs[0]):
                    ports = explicit_state_step(node, xs, neuron_kwargs(node, params))
                values.update({Ref(name, port): v for port, v in ports.items()})
                continue
            prev = tuple(state[f"{name}.{p}"] for p in node.state_ports)
            with without_autocast(xs[0]):
                result = kernel_for(node.op).step(xs[0], *prev, **neuron_kwargs(node, params))
            for port, v in zip(node.ports, result[-len(node.ports):], strict=True):
                values[Ref(name, port)] = v
            for port in node.state_ports:
                new_state[f"{name}.{port}"] = values[Ref(name, port)]
        for name in order:
            node = self.graph.nodes[name]
            if isinstance(node, S.Delay):
                buf = state[f"{name}.buffer"]
                new_state[f"{name}.buffer"] = torch.cat([buf[1:], values[node.inputs[0]].unsqueeze(0)])
        return new_state

    # --- back to the IR ---------------------------------------------------------------------------
    def to_graph(self) -> Graph:
        """The source graph with the current parameter values (after training)."""
        changes = {}
        for name, node in self.source.nodes.items():
            params = self._params(name)
            if params is None:
                continue
            updates = {}
            for key, value in node.fields().items():
                if hasattr(value, "with_value"):
                    current = param_of(params, node.param_aliases.get(key, key)).detach().cpu()
                    updates[key] = value.with_value(current.to(torch.float64 if value.dtype == "float64"
                                                               else torch.float32).numpy())
            changes[name] = node.replace(**updates)
        return self.source.with_nodes(changes)

    def extra_repr(self) -> str:
        return f"graph='{self.graph.name}', inputs={list(self.graph.inputs)}, outputs={list(self.graph.outputs)}"
