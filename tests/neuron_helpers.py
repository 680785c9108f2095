"""Shared checks of the neuron tests on a one-neuron graph: the compiled net trains (every parameter gets a
gradient and moves), streams step by step as the sequence runs, and exports to ONNX with equal outputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import snngraph as sg


def neuron_graph(name: str, n_in: int, n_out: int, neuron: Callable[[sg.Graph, sg.Handle], sg.Handle]) -> sg.Graph:
    """``x (n_in) -> linear "fc" (n_out) -> neuron(g, current)``, outputs its ``spk`` and ``mem``."""
    g = sg.Graph(name)
    x = g.input("x", shape=(n_in,))
    h = neuron(g, g.linear(x, n_out, name="fc"))
    g.output("spk", h)
    g.output("mem", h.mem)
    return g


def assert_trains(net: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """One SGD step (lr 0.1) on ``(mean spike - 0.5)^2 + mean mem^2``: every parameter gets a non-zero
    gradient and changes. Returns the forward's outputs."""
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    before = {k: v.detach().clone() for k, v in net.named_parameters()}
    out = net(x)
    loss = (out["spk"].mean() - 0.5) ** 2 + out["mem"].pow(2).mean()
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    opt.step()
    assert all(not torch.equal(before[k], v) for k, v in net.named_parameters())
    return out


def assert_streams(net: torch.nn.Module, x: torch.Tensor) -> None:
    """``net.step`` over ``x`` (T, B, ...) from ``init_state`` gives the sequence run's spikes exactly and its
    membranes (float32 tolerance) at every step."""
    with torch.no_grad():
        full, state = net(x), net.init_state(x.shape[1])
        for t in range(x.shape[0]):
            step, state = net.step(x[t], state=state)
            assert torch.equal(step["spk"], full["spk"][t])
            torch.testing.assert_close(step["mem"], full["mem"][t])


def assert_onnx_matches(net: torch.nn.Module, x: torch.Tensor, path: Path, mixed: bool = True) -> None:
    """``net`` exported to ``path`` and run by onnxruntime: spikes equal to the compiled net's (some fire;
    ``mixed``: not all), membranes within 1e-5."""
    with torch.no_grad():
        out = net(x)
    sg.export_onnx(net, path)
    spk, mem = ort.InferenceSession(str(path)).run(["spk", "mem"], {"x": x.numpy()})
    assert out["spk"].sum() > 0 and (not mixed or out["spk"].sum() < out["spk"].numel())
    assert np.array_equal(spk, out["spk"].numpy())
    np.testing.assert_allclose(mem, out["mem"].numpy(), rtol=1e-5, atol=1e-6)
