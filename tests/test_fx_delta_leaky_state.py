"""sg.trace of DeltaLeaky with explicit state: its ``mem`` argument is the pair ``(mem, mem_prev)``
(snnTorch 1.0.0 and sg.nn); the compiled net computes what stepping the model computes, in float64,
forward and weight gradients."""

from __future__ import annotations

import pytest
import snntorch as snn
import torch
from torch import nn

import snngraph as sg

T, B, N = 12, 3, 5


@pytest.fixture(autouse=True)
def _forget_snntorch_neurons():
    """snnTorch's class-level registry would keep the DeltaLeaky (``mem = None``) that snnTorch's own
    ``utils.reset`` then fails on in later tests."""
    yield
    snn.SpikingNeuron.instances.clear()


class Unpacked(nn.Module):
    def __init__(self, lib):
        super().__init__()
        self.fc = nn.Linear(4, N)
        # dyadic values (the IR keeps float32 parameters) and sg's atan spec on both sides (snnTorch's own
        # surrogate returns float32 spikes, so its gradients would be float32's)
        self.lif = lib.DeltaLeaky(0.25, beta=0.875, spike_grad=sg.surrogate.atan())

    def forward(self, x, mem, mem_prev):
        spk, (mem, mem_prev) = self.lif(self.fc(x), (mem, mem_prev))
        return spk, mem, mem_prev


class Nested(Unpacked):
    def forward(self, x, mem, mem_prev):  # returns (spk, (mem, mem_prev)) itself
        return self.lif(self.fc(x), [mem, mem_prev])


def _stepped(model: nn.Module, xs: torch.Tensor) -> list[torch.Tensor]:
    state = (torch.zeros(B, N, dtype=xs.dtype), torch.zeros(B, N, dtype=xs.dtype))
    steps = []
    for x in xs:
        spk, state = model.lif(model.fc(x), state)
        steps.append((spk.to(xs.dtype), *state))
    return [torch.stack(seq) for seq in zip(*steps, strict=True)]


@pytest.mark.parametrize("cls", [Unpacked, Nested])
@pytest.mark.parametrize("lib", [sg.nn, snn], ids=["sg.nn", "snntorch"])
def test_explicit_pair_state_is_traced(lib, cls):
    torch.manual_seed(0)
    model = cls(lib).double()
    zeros = torch.zeros(B, N, dtype=torch.float64)
    g = sg.trace(model, (torch.zeros(B, 4, dtype=torch.float64), zeros, zeros), keep_state_outputs=True)
    assert list(g.inputs) == ["x"] and list(g.outputs) == ["spk", "mem", "mem_prev"]
    net = sg.compile(g).double()
    net.load_state_dict(model.state_dict(), strict=False)
    xs = torch.randn(T, B, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = list(net(xs).values())
    ref = _stepped(model, xs)
    assert torch.equal(out[0], ref[0]) and 0 < ref[0].sum() < ref[0].numel()
    for a, b in zip(out[1:], ref[1:], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
    w = [torch.randn(r.shape, generator=torch.Generator().manual_seed(2 + i), dtype=torch.float64)
         for i, r in enumerate(ref)]
    grads = [torch.autograd.grad(sum((v * k).sum() for v, k in zip(vals, w, strict=True)), params)
             for vals, params in ((out, [net.fc.weight, net.fc.bias]), (ref, [model.fc.weight, model.fc.bias]))]
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


def test_the_pair_must_be_a_pair():
    class Single(Unpacked):
        def forward(self, x, mem, mem_prev):
            return self.lif(self.fc(x), (mem,))

    zeros = torch.zeros(B, N)
    with pytest.raises(sg.GraphError, match=r"mem.*\(mem, mem_prev\)"):
        sg.trace(Single(sg.nn), (torch.zeros(B, 4), zeros, zeros))
