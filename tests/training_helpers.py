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
