"""sg.nn.BatchNormTT1d / BatchNormTT2d / GradedSpikes against snnTorch 1.0.0's layers."""

from __future__ import annotations

import pytest
import snntorch as snn
import torch
from torch import nn

import snngraph as sg
from snngraph import GraphError


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("kw", [{}, {"eps": 1e-3, "momentum": 0.3}, {"affine": False}])
def test_bntt_equals_snntorch_over_a_training_sequence(dim: int, kw: dict) -> None:
    name = f"BatchNormTT{dim}d"
    ours, theirs = getattr(sg.nn, name)(6, 5, **kw).double(), getattr(snn, name)(6, 5, **kw).double()
    assert isinstance(ours, nn.ModuleList) and len(ours) == 5
    assert [type(m) for m in ours] == [type(m) for m in theirs]
    assert all(m.bias is None for m in ours)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    ours.load_state_dict(theirs.state_dict())
    shape = (4, 6) if dim == 1 else (4, 6, 3, 3)
    x = torch.randn(5, *shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 + 1
    for model in (ours, theirs):
        model.train()
    for t in range(5):
        xa, xb = x[t].clone().requires_grad_(True), x[t].clone().requires_grad_(True)
        ya, yb = ours[t](xa), theirs[t](xb)
        assert torch.equal(ya, yb)
        (ya.pow(3).sum()).backward()
        (yb.pow(3).sum()).backward()
        torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-12, atol=0)
    for a, b in zip(ours.state_dict().values(), theirs.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # running statistics per step
    if kw.get("affine", True):
        for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=0)
    ours.eval(), theirs.eval()
    assert torch.equal(ours[2](x[0]), theirs[2](x[0]))


def test_bntt_errors() -> None:
    for bad in ((0, 3), (3, 0), (3.0, 3), (True, 3)):
        with pytest.raises(GraphError, match="BatchNormTT1d"):
            sg.nn.BatchNormTT1d(*bad)


@pytest.mark.parametrize("factor", [2.5, None, 0])
def test_graded_spikes_matches_snntorch_on_the_neuron_axis(factor) -> None:
    torch.manual_seed(3)
    theirs = snn.GradedSpikes(4, factor)
    torch.manual_seed(3)
    ours = sg.nn.GradedSpikes(4, factor)
    assert torch.equal(ours.weights, theirs.weights) and ours.weights.shape == (4, 1)
    ours.load_state_dict(theirs.state_dict())
    x = (torch.rand(7, 4, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    # snnTorch scales axis -2: on the transposed input it scales the neurons, which we scale on axis 1
    assert torch.equal(ours(x), theirs(x.mT).mT)
    with pytest.raises(RuntimeError):
        theirs(x)  # snnTorch 1.0.0 cannot take a (batch, size) input
    assert torch.equal(ours(x[0]), theirs(x[0].unsqueeze(-1)).squeeze(-1))
    conv = torch.rand(2, 4, 3, 3)
    assert torch.equal(ours(conv), conv * ours.weights.view(1, 4, 1, 1))


def test_graded_spikes_learns_and_refuses_wrong_shapes() -> None:
    layer = sg.nn.GradedSpikes(3, 1.0)
    x = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    layer(x).sum().backward()
    assert layer.weights.grad.flatten().tolist() == [2.0, 1.0, 1.0]
    for bad in (torch.ones(2, 4), torch.ones(()), torch.ones(5)):
        with pytest.raises(GraphError, match="GradedSpikes"):
            layer(bad)
    with pytest.raises(GraphError, match="size"):
        sg.nn.GradedSpikes(0, 1.0)
    assert "size=3" in repr(layer)
