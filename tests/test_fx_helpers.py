"""Shared checks of the fx front-end tests: trace, compile, and compare with the model run step by step."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

import snngraph as sg

T, B = 6, 3


def compiled_name(model_param: str, compiled: dict[str, Tensor]) -> str:
    """The compiled parameter that a model parameter maps to: the same key (a traced model keeps its module
    paths), or, for a graph built from a trace without them, ``net.0.weight`` -> ``net_0.weight``."""
    if model_param in compiled:
        return model_param
    parts = model_param.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        node = "_".join(parts[:cut])
        node = f"_{node}" if node[:1].isdigit() else node
        candidate = ".".join([node, *parts[cut:]])
        if candidate in compiled:
            return candidate
    suffix = [name for name in compiled if name.endswith(f".{model_param}")]  # a lone neuron traced by itself
    if len(suffix) == 1:
        return suffix[0]
    raise AssertionError(f"model parameter {model_param} has no compiled counterpart in {sorted(compiled)}")


def run_hidden(model: nn.Module, xs: Tensor) -> list[Tensor]:
    """Run an init_hidden-style model step by step from reset state; one (T, B, ...) tensor per output."""
    sg.utils.reset(model)
    steps = []
    for t in range(xs.shape[0]):
        out = model(xs[t])
        steps.append(out if isinstance(out, tuple) else (out,))
    return [torch.stack(seq) for seq in zip(*steps, strict=True)]


def run_explicit(model: nn.Module, xs: Tensor, state: Sequence[Tensor], outputs: Sequence[int],
                 carry: Sequence[tuple[int, int]]) -> list[Tensor]:
    """Run an explicit-state model ``forward(x, *state) -> tuple``; ``carry`` maps (state index,
    returned index); returns the returned values at ``outputs`` stacked over time."""
    state = list(state)
    steps = []
    for t in range(xs.shape[0]):
        ret = model(xs[t], *state)
        for s_index, r_index in carry:
            state[s_index] = ret[r_index]
        steps.append([ret[i] for i in outputs])
    return [torch.stack(seq) for seq in zip(*steps, strict=True)]


def check_equivalent(model: nn.Module, example, xs: Tensor, reference: Callable[[], list[Tensor]],
                     atol: float = 1e-6, grads: bool = True, **trace_kwargs) -> sg.Graph:
    """Trace ``model``, compile it, and check outputs and weight gradients against ``reference()``."""
    graph = sg.trace(model, example, **trace_kwargs)
    net = sg.compile(graph)
    net.train(model.training)
    out = net(xs)
    ref = reference()
    assert len(ref) == len(out), (list(out), len(ref))
    for (name, got), want in zip(out.items(), ref, strict=True):
        assert got.shape == want.shape, (name, got.shape, want.shape)
        torch.testing.assert_close(got, want.to(got.dtype), atol=atol, rtol=1e-5, msg=f"output {name}")
    if grads:
        _check_grads(model, net, list(out.values()), ref, atol)
    return graph


def _check_grads(model: nn.Module, net: nn.Module, out: list[Tensor], ref: list[Tensor], atol: float) -> None:
    if not any(r.requires_grad for r in ref):
        assert not any(p.requires_grad for p in model.parameters())
        return
    gen = torch.Generator().manual_seed(1)
    weights = [torch.randn(r.shape, generator=gen) for r in ref]
    model.zero_grad()
    sum((r * w).sum() for r, w in zip(ref, weights, strict=True)).backward()
    sum((o * w).sum() for o, w in zip(out, weights, strict=True)).backward()
    compiled = dict(net.named_parameters())
    checked = 0
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        mine = compiled[compiled_name(name, compiled)]
        want = p.grad if p.grad is not None else torch.zeros_like(p)
        got = mine.grad if mine.grad is not None else torch.zeros_like(mine)
        torch.testing.assert_close(got, want.to(got.dtype).reshape(got.shape), atol=atol * 10, rtol=1e-4,
                                   msg=f"gradient of {name}")
        checked += 1
    assert checked > 0 or not any(p.requires_grad for p in model.parameters())


def inputs(*shape: int, scale: float = 2.0, seed: int = 0) -> Tensor:
    """A (T, B, *shape) input sequence."""
    return torch.rand((T, B, *shape), generator=torch.Generator().manual_seed(seed)) * scale
