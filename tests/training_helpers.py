"""Shared check of the neuron tests: a compiled net trains (every parameter gets a gradient and moves)."""

from __future__ import annotations

import torch


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
