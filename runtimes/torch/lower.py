"""Lowering of IR nodes to torch: per-node parameter modules and the op of each synapse.

Synapse ops work on rows ``(N, *shape)``; the module applies them to one step ``(B, ...)`` or
to a whole sequence flattened to ``(T*B, ...)``. Neurons lower to the step kernels of
``kernels.kernel_for``, derived from their declarations, the same maths the ``snngraph.nn`` modules run.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snngraph.ir import synapses as S
from snngraph.ir import synapses_math as M
from snngraph.ir import synapses_shape as H
from snngraph.ir import synapses_spatial as U
from snngraph.ir.errors import GraphError, LoweringError
from snngraph.ir.node import Node
from snngraph.ir.surrogate import surrogate_of
from snngraph.ir.types import Param, Ref
from snngraph.runtimes.torch.layers import MODULE_SYNAPSES


class NodeParams(nn.Module):
    """The parameters of one node: learnable ones as ``nn.Parameter``, fixed ones as buffers.
    Dotted names (``recurrent.weight``) live in a child module (``recurrent``)."""

    def __init__(self, node: Node, snntorch_buffers: bool = False, fixed_outside: bool = False):
        """``fixed_outside``: fixed parameters are non-persistent buffers (a traced model's constant, such as
        the factor of ``x * 0.125`` in its ``forward``, is no entry of the model's ``state_dict``)."""
        super().__init__()
        self._reset_index: int | None = None
        if snntorch_buffers and "reset_mechanism" in getattr(getattr(node, "model", None), "options", {}):
            # snnTorch's (and sg.nn's) neurons keep their reset mechanism as a buffer: a traced model's
            # state_dict has it, so the compiled net does too (loading another value is refused)
            self._reset_index = ("subtract", "zero", "none").index(node.reset_mechanism)
            self.register_buffer("reset_mechanism_val", torch.as_tensor(self._reset_index))
        for key, value in (getattr(getattr(node, "model", None), "snntorch_buffers", {}) if snntorch_buffers
                           else {}).items():  # kept for the model's state_dict, never read
            self.register_buffer(key, torch.as_tensor(value(node)))
        model = getattr(node, "model", None)
        for key, param in node.params().items():
            spec = model.params.get(key) if model is not None else None
            # a constant is handed to the step as a number; fixed parameters of models that keep them outside
            # the state_dict (Norse's) are non-persistent buffers
            persistent = spec is None or not (spec.constant or (not model.fixed_in_state_dict and not param.learnable))
            persistent = persistent and not (fixed_outside and not param.learnable)
            owner = self
            *path, leaf = key.split(".")
            for part in path:
                if not hasattr(owner, part):
                    owner.add_module(part, nn.Module())
                owner = getattr(owner, part)
            value = torch.from_numpy(param.value.copy())
            if param.learnable:
                owner.register_parameter(leaf, nn.Parameter(value))
            else:
                owner.register_buffer(leaf, value, persistent=persistent)

    def get(self, key: str) -> Tensor:
        return param_of(self, key)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        key = prefix + "reset_mechanism_val"
        if self._reset_index is not None and key in state_dict and int(state_dict[key]) != self._reset_index:
            raise GraphError(f"{key}: the state dict has reset mechanism {int(state_dict[key])}, the compiled "
                             f"graph {self._reset_index} (0 subtract, 1 zero, 2 none); rebuild or retrace instead")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={list(v.shape)}" for k, v in self.state_dict().items())


def param_of(module: nn.Module, key: str) -> Tensor:
    """The tensor ``key`` (dotted: ``recurrent.weight``) of a node's module (``NodeParams`` or a torch layer)."""
    owner = module
    for part in key.split("."):
        owner = getattr(owner, part)
    return owner  # type: ignore[return-value]


def param_tensors(node: Node, mod: nn.Module) -> dict[str, Tensor]:
    """Field name -> current tensor for every set parameter of ``node``."""
    aliases = node.param_aliases
    return {k: param_of(mod, aliases.get(k, k)) for k, v in node.fields().items() if isinstance(v, Param)}


def _dim(d: int) -> int:
    """A per-step dim as a dim of the (rows, *shape) tensor."""
    return d + 1 if d >= 0 else d


def _call_module(p: nn.Module, xs: list[Tensor], training: bool) -> Tensor:
    return p(xs[0])


def synapse_op(node: Node) -> Callable[[nn.Module, list[Tensor], bool], Tensor]:
    """``op(module, inputs, training) -> output`` for a synapse node, over rows: the node's torch module
    called on its input (``layers.torch_module``), or the op of a synapse torch has no module for."""
    n = node
    if isinstance(n, S.Add):
        return lambda p, xs, tr: functools.reduce(torch.add, xs)
    if isinstance(n, S.Concat):
        return lambda p, xs, tr: torch.cat(xs, dim=_dim(n.dim))
    if isinstance(n, S.Scale):
        return lambda p, xs, tr: xs[0] * p.factor
    if isinstance(n, M.Mul):
        return lambda p, xs, tr: xs[0] * xs[1]
    if isinstance(n, M.Sub):
        return lambda p, xs, tr: xs[0] - xs[1]
    if isinstance(n, M.MatMul):
        return lambda p, xs, tr: torch.matmul(xs[0], xs[1])
    if isinstance(n, H.Transpose):
        return lambda p, xs, tr: xs[0].transpose(_dim(n.dim0), _dim(n.dim1))
    if isinstance(n, H.Permute):
        return lambda p, xs, tr: xs[0].permute(0, *(d + 1 for d in n.dims))
    if isinstance(n, H.Reshape):
        return lambda p, xs, tr: xs[0].reshape(xs[0].shape[0], *n.shape)
    if isinstance(n, H.Slice):
        return lambda p, xs, tr: xs[0].narrow(_dim(n.dim), n.start, n.stop - n.start)
    if isinstance(n, MODULE_SYNAPSES):
        return _call_module
    raise LoweringError(f"{node.op} '{node.name}': no torch lowering")


# ops whose result is a new tensor each run (never an alias of an input) that their backward does not save
FRESH_RESULT = (S.Linear, S.Conv1d, S.Conv2d, S.MaxPool1d, S.MaxPool2d, S.AvgPool1d, S.AvgPool2d, S.Add, S.Concat,
                S.Scale, S.BatchNorm, U.ConvTranspose2d, U.Upsample)

# scans with ``scratch_input``
SCRATCH_NEURONS = ("leaky", "integrate_fire", "rleaky", "synaptic", "sj_if", "sj_lif", "norse_lif",
                   "norse_lif_recurrent")


def scratch_inputs(graph: Any) -> frozenset[str]:
    """Fused Leaky/IF/RLeaky/Synaptic/SpikingJelly IF and LIF nodes whose input current may serve as the
    scan's state buffer.

    The current must be the fresh result of a synapse (``FRESH_RESULT``) read by nothing else (nor a
    graph output), and only the spikes may be read: then no one can observe the buffers being
    overwritten, and the scan saves one (T, B, N) allocation in the forward and another in the
    backward (see ``ScanConfig.scratch_input``).
    """
    reads: dict[Any, int] = {}
    for node in graph.nodes.values():
        for ref in node.inputs:
            reads[ref] = reads.get(ref, 0) + 1
    for ref in graph.outputs.values():
        reads[ref] = reads.get(ref, 0) + 1
    chosen = set()
    for name, node in graph.nodes.items():
        if not getattr(node, "fused", False) or node.op not in SCRATCH_NEURONS or len(node.inputs) != 1:
            continue
        (current,) = node.inputs
        state_read = any(type(current)(name, port) in reads for port in node.ports if port != "spk")
        if isinstance(graph.nodes[current.node], FRESH_RESULT) and reads[current] == 1 and not state_read:
            chosen.add(name)
    return frozenset(chosen)


SPATIAL = (S.Conv1d, S.Conv2d, S.MaxPool1d, S.MaxPool2d, S.AvgPool1d, S.AvgPool2d, U.ConvTranspose2d, U.Upsample)


def spatial_chains(graph: Any) -> dict[str, tuple[str, ...]]:
    """Runs of convolutions (transposed too), pooling and up-sampling where each result is read only by
    the next: ``{head: run}``.

    The runtime takes a block of rows through the whole run before the next block, so only the
    last node's result is concatenated: a convolution's large output never exists for all T*B
    rows at once outside autograd's saved blocks."""
    reads: dict[Any, list[str]] = {}
    for name, node in graph.nodes.items():
        for ref in node.inputs:
            reads.setdefault(ref, []).append(name)
    for ref in graph.outputs.values():
        reads.setdefault(ref, []).append("")
    chains, seen = {}, set()
    for name, node in graph.nodes.items():
        if name in seen or not isinstance(node, SPATIAL):
            continue
        run = [name]
        while True:
            readers = reads.get(Ref(run[-1], "out"), [])
            nxt = graph.nodes.get(readers[0]) if len(readers) == 1 else None
            if not isinstance(nxt, SPATIAL) or len(nxt.inputs) != 1:
                break
            run.append(nxt.name)
        if len(run) > 1:
            chains[name] = tuple(run)
            seen.update(run)
    return chains


def spike_fed_linears(graph: Any) -> dict[str, str]:
    """Linear nodes that read a neuron's spikes: ``{linear: neuron}``. While that neuron's graded
    factor is 1 its spikes are exactly 0/1 and the linear may run as ``spike_linear`` (not so with
    a plain callable as spike function: it may return any values)."""
    return _spike_fed(graph, (S.Linear,))


def spike_fed_convs(graph: Any) -> dict[str, str]:
    """Convolutions that read a neuron's spikes: ``{conv: neuron}``, which may run as ``spike_conv`` while
    the neuron's spikes are 0/1 (as :func:`spike_fed_linears`)."""
    return _spike_fed(graph, (S.Conv1d, S.Conv2d))


def _spike_fed(graph: Any, kinds: tuple[type, ...]) -> dict[str, str]:
    found = {}
    for name, node in graph.nodes.items():
        if isinstance(node, kinds) and node.inputs[0].port == "spk":
            source = graph.nodes[node.inputs[0].node]
            surrogate = getattr(source, "surrogate", None)
            if (source.family == "neuron" and getattr(source, "graded_spikes_factor", None) is not None
                    and source.emits_spikes
                    and (surrogate is None or surrogate.name != "callable")):
                found[name] = source.name
    return found


def per_step_in_training(node: Node) -> bool:
    """Ops whose training-mode result depends on the rows of each time step seen together (a batch norm's
    per-step statistics); a ``stats="sequence"`` batch norm takes all ``T * B`` rows at once."""
    return isinstance(node, S.BatchNorm) and node.stats == "step"


def sequence_in_training(node: Node) -> bool:
    """Ops whose training-mode result needs the whole sequence (a batch norm's ``stats="sequence"``): they
    cannot run one step at a time (streaming ``step``, loops through delays) in training mode."""
    return isinstance(node, S.BatchNorm) and node.stats == "sequence"


def neuron_precision(x: Tensor) -> Tensor:
    """A neuron's input in the precision its state accumulates in: float32 under autocast (the state
    sums T steps, like the reductions autocast keeps in float32), else the input's own dtype."""
    if x.dtype in (torch.float16, torch.bfloat16) and torch.is_autocast_enabled(x.device.type):
        return x.float()
    return x


def without_autocast(x: Tensor) -> Any:
    """Neurons run with autocast off (a recurrent matmul in float32 too), so eager runs and the custom
    ops of ``torch.compile`` (which autocast does not enter) compute the same values."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.autocast(x.device.type, enabled=False)
    return contextlib.nullcontext()
_QUANTISERS: dict[tuple[float, ...], Any] = {}


def _quantiser(levels: tuple[float, ...]) -> Any:
    """The state quantiser of a node's levels (``sg.functional.state_quant``'s nearest level, straight through);
    built once per levels (a plain dict, not ``functools.cache``, which dynamo warns about)."""
    from snngraph.functional.quant import _StateQuantizer

    quantiser = _QUANTISERS.get(levels)
    if quantiser is None:
        grid = torch.tensor(levels, dtype=torch.float64)
        single = grid.float()  # float32 levels (snnTorch's) stay float32: float32 nets compare in float32, as ONNX
        quantiser = _QUANTISERS[levels] = _StateQuantizer(single if torch.equal(single.double(), grid) else grid)
    return quantiser


def neuron_kwargs(node: Node, mod: nn.Module | None) -> dict[str, Any]:
    """Keyword arguments of the node's step kernel: its parameters (current tensors), options,
    spike function (the node's surrogate, default ``atan``) and, for recurrent models, the recurrence."""
    model = node.model
    tensors = param_tensors(node, mod) if mod is not None else {}
    kw: dict[str, Any] = {k: getattr(node, k).item() if s.constant else tensors[k] for k, s in model.params.items()}
    kw.update({k: getattr(node, k) for k in model.options})
    if model.spiking:
        surrogate = surrogate_of(node)
        # a plain callable given as spike_grad (snnTorch surrogate functions, user code) runs as is
        kw["spike_grad"] = surrogate.fn if surrogate.name == "callable" else surrogate
    if getattr(node, "state_quant", None) is not None:
        kw["state_quant"] = _quantiser(node.state_quant)
    if model.spike_pool and node.pool != "none":
        kw["pool"], kw["pool_size"] = node.pool, node.pool_size
    if model.recurrent:
        if node.all_to_all:
            w, b = tensors["recurrent_weight"], tensors.get("recurrent_bias")
            kw["recurrent"] = lambda s: F.linear(s, w, b)
        else:
            v = tensors["V"]
            kw["recurrent"] = lambda s: v * s
    if model.cell is not None:
        from snngraph.runtimes.torch.cell import model_maps

        kw.update(model_maps(model, tensors))
        kw.update(node.dims())
    return kw
