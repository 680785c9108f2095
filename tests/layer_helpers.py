"""Shared checks of the layer-node tests: one-node graphs compared with the torch op applied per step,
text and file round trips, ONNX (sequence mode) vs torch, and sg.trace vs stepping the model."""

from __future__ import annotations

from collections.abc import Callable

import torch
from onnx_helpers import compare
from test_fx_helpers import check_equivalent, inputs, run_hidden

import snngraph as sg

T, B = 5, 3


def one_node(shapes: tuple[tuple[int, ...], ...], build: Callable[..., sg.Handle], name: str = "g") -> sg.Graph:
    """A graph of inputs ``x0, x1, ...`` of ``shapes`` whose output ``out`` is ``build(g, *inputs)``."""
    g = sg.Graph(name)
    xs = [g.input(f"x{i}", s) for i, s in enumerate(shapes)]
    g.output("out", build(g, *xs))
    return g


def assert_matches_per_step(g: sg.Graph, fn: Callable[..., torch.Tensor], atol: float = 1e-6,
                            seed: int = 0) -> None:
    """The compiled graph's ``out`` equals ``fn`` applied to each step's (B, ...) inputs."""
    gen = torch.Generator().manual_seed(seed)
    xs = {k: torch.randn((T, B, *n.shape), generator=gen) for k, n in g.inputs.items()}
    net = sg.compile(g).eval()
    with torch.no_grad():
        got = net(**xs)["out"]
        want = torch.stack([fn(*(xs[k][t] for k in g.inputs)) for t in range(T)])
    torch.testing.assert_close(got, want, atol=atol, rtol=1e-5)


def assert_round_trips(g: sg.Graph, tmp_path) -> None:
    sg.verify(g)
    assert sg.parse(g.to_text(with_params=True)) == g
    text = g.to_text()
    assert sg.parse(text).to_text() == text
    sg.save(g, tmp_path / "g.sg")
    assert sg.load(tmp_path / "g.sg") == g


def assert_onnx_matches(g: sg.Graph, tmp_path) -> None:
    compare(g, tmp_path, ((1, 1), (4, 3)))


def assert_trace_matches(model: torch.nn.Module, *shape: int, atol: float = 1e-5, grads: bool = True) -> sg.Graph:
    """sg.trace of ``model`` (init_hidden neurons), compiled, equals stepping it (outputs and weight gradients)."""
    xs = inputs(*shape)
    return check_equivalent(model, xs[0], xs, lambda: run_hidden(model, xs), atol=atol, grads=grads)
