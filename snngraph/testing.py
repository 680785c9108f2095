"""Testing helpers for people who write compiler passes (SPEC §9).

* :func:`assert_graphs_equivalent` compiles two graphs, runs them on the same seeded spike input
  and compares every output and the gradient of every shared parameter, naming the first
  difference (output, time step, index, both values).
* :func:`random_graphs` is a hypothesis strategy of valid graphs over every node kind, built through
  the builder so that shrinking gives small counter-examples (see ``snngraph.testing_graphs``).
* :func:`node_kind_graphs` gives one small hand-built graph per node kind.

Example::

    from hypothesis import given
    import snngraph as sg

    @given(sg.testing.random_graphs())
    def test_my_pass_keeps_semantics(g):
        sg.testing.assert_graphs_equivalent(g, g, passes_b=[*sg.passes.default_pipeline(), my_pass])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from snngraph.ir.errors import GraphError
from snngraph.ir.graph import Graph
from snngraph.testing_graphs import OPS, node_kind_graphs, random_graphs

__all__ = ["OPS", "assert_graphs_equivalent", "node_kind_graphs", "random_graphs", "spike_inputs"]

_TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
                 "bfloat16": torch.bfloat16}


def assert_graphs_equivalent(a: Any, b: Any, num_steps: int = 16, batch_size: int = 2, seed: int = 0,
                             atol: float = 1e-6, rtol: float = 0.0, passes_a: Sequence[Any] | None = None,
                             passes_b: Sequence[Any] | None = None, training: bool = False,
                             dtype: torch.dtype | None = None) -> None:
    """Assert that two graphs compute the same outputs and parameter gradients.

    Both are compiled (``sg.compile(g, passes=passes_a/b)``, the default pipeline when ``None``; an
    already compiled net is used as is), run on the same seeded Bernoulli spike input of shape
    ``(num_steps, batch_size, *shape)`` per graph input, and compared: every output (the same names
    are required), then the gradient of every learnable parameter the two share (same
    ``state_dict`` key) of the scalar loss ``sum_k sum(out_k * w_k)`` with fixed random ``w_k``.

    Args:
        a, b: the graphs (or ``CompiledNet``s) to compare.
        num_steps, batch_size: the input's time and batch sizes.
        seed: seeds the input, the loss weights and torch's RNG (forked) for each run, so dropout
            masks and stochastic surrogates draw the same numbers for both graphs.
        atol, rtol: tolerance of ``torch.isclose`` (``rtol=0``: absolute only).
        passes_a, passes_b: the pass pipelines to compile with.
        training: run in ``train()`` mode (dropout active with the same RNG seed on both sides,
            batch statistics); ``eval()`` by default.
        dtype: run both in this dtype (e.g. ``torch.float64`` to compare two implementations
            without float32 rounding noise); the nets' own dtype when ``None``. An already
            compiled net passed in is converted in place.

    Raises:
        AssertionError: naming the first differing output (time step and index) or parameter
            gradient (index), with both values.
        GraphError: when a graph does not compile or does not run.
    """
    net_a, net_b = _compiled(a, passes_a), _compiled(b, passes_b)
    if dtype is not None:
        net_a, net_b = net_a.to(dtype), net_b.to(dtype)
    _same_inputs(net_a.graph, net_b.graph)
    dtype = dtype or _dtype(net_a)
    inputs = spike_inputs(net_a.graph, num_steps, batch_size, seed, dtype)
    out_a, grads_a = _run(net_a, inputs, seed, training)
    out_b, grads_b = _run(net_b, inputs, seed, training)
    if list(out_a) != list(out_b):
        raise AssertionError(f"the graphs have different outputs: a has {list(out_a)}, b has {list(out_b)}")
    for key in out_a:
        _compare(out_a[key], out_b[key], f"output '{key}'", atol, rtol, time_major=True)
    for key in sorted(set(grads_a) & set(grads_b)):
        _compare(grads_a[key], grads_b[key], f"gradient of parameter '{key}'", atol, rtol, time_major=False)


def spike_inputs(graph: Graph, num_steps: int, batch_size: int, seed: int = 0,
                 dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """Seeded Bernoulli(0.5) spike trains ``(num_steps, batch_size, *shape)`` for each graph input."""
    gen = torch.Generator().manual_seed(seed)
    return {name: torch.bernoulli(torch.full((num_steps, batch_size, *node.shape), 0.5), generator=gen).to(dtype)
            for name, node in graph.inputs.items()}


def _compiled(g: Any, passes: Sequence[Any] | None) -> nn.Module:
    from snngraph.runtimes.torch.module import CompiledNet, compile

    if isinstance(g, CompiledNet):
        return g
    if not isinstance(g, Graph):
        raise GraphError(f"assert_graphs_equivalent expects graphs or compiled nets, got {type(g).__name__}")
    return compile(g, passes=passes)


def _same_inputs(ga: Graph, gb: Graph) -> None:
    shapes_a = {k: (n.shape, n.dtype) for k, n in ga.inputs.items()}
    shapes_b = {k: (n.shape, n.dtype) for k, n in gb.inputs.items()}
    if shapes_a != shapes_b:
        raise AssertionError(f"the graphs have different inputs: a has {shapes_a}, b has {shapes_b}")


def _dtype(net: nn.Module) -> torch.dtype:
    tensor = next(iter(net.parameters()), None)
    if tensor is None:
        tensor = next((b for b in net.buffers() if b.is_floating_point()), None)
    if tensor is not None:
        return tensor.dtype
    first = next(iter(net.graph.inputs.values()), None)
    return _TORCH_DTYPES[first.dtype] if first is not None else torch.float32


def _run(net: nn.Module, inputs: dict[str, Tensor], seed: int, training: bool) -> tuple[dict, dict]:
    """Forward and backward with torch's RNG seeded (dropout masks, stochastic surrogates) inside a
    forked RNG state, so both graphs see the same random draws and the caller's RNG is untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _forward_backward(net, inputs, seed, training)


def _forward_backward(net: nn.Module, inputs: dict[str, Tensor], seed: int, training: bool) -> tuple[dict, dict]:
    """Forward, then the gradients of the fixed random loss w.r.t. every learnable parameter."""
    was_training = net.training
    net.train(training)
    try:
        outputs = net(**inputs)
    finally:
        net.train(was_training)
    gen = torch.Generator().manual_seed(seed + 1)
    loss = None
    for key in sorted(outputs):
        weight = torch.randn(outputs[key].shape, generator=gen).to(outputs[key].dtype)
        term = (outputs[key] * weight).sum()
        loss = term if loss is None else loss + term
    named = [(k, p) for k, p in net.named_parameters() if p.requires_grad]
    grads: dict[str, Tensor] = {k: torch.zeros_like(p) for k, p in named}
    if loss is not None and loss.requires_grad and named:
        found = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
        grads.update({k: g for (k, _), g in zip(named, found, strict=True) if g is not None})
    return {k: v.detach() for k, v in outputs.items()}, grads


def _compare(x: Tensor, y: Tensor, what: str, atol: float, rtol: float, time_major: bool) -> None:
    if x.shape != y.shape:
        raise AssertionError(f"{what} has shape {tuple(x.shape)} in a but {tuple(y.shape)} in b")
    x64, y64 = x.detach().double().cpu(), y.detach().double().cpu()
    close = torch.isclose(x64, y64, rtol=rtol, atol=atol, equal_nan=True)
    if bool(close.all()):
        return
    bad = (~close).nonzero()
    idx = tuple(int(i) for i in bad[0])
    va, vb = x64[idx].item(), y64[idx].item()
    where = f"at time step {idx[0]}, index {idx[1:]}" if time_major else f"at index {idx}"
    raise AssertionError(f"{what} differs {where}: a={va!r}, b={vb!r} (|a-b|={abs(va - vb):.3g}, atol={atol}, "
                         f"rtol={rtol}); {len(bad)} of {close.numel()} elements differ")
