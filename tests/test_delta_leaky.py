"""The ``delta_leaky`` model and ``sg.nn.DeltaLeaky`` against snnTorch 1.0.0's ``DeltaLeaky``
(float64, 20 steps, spikes exact, states 1e-9 and gradients 1e-8 relative), sg.trace of snnTorch
models using it, a compiled-graph training step and the ONNX export. The registry-driven tests
(test_models_registry.py) cover the model's text/file round trips and ONNX in every mode too."""

from __future__ import annotations

import pytest
import snntorch as snn
import torch
from neuron_helpers import assert_onnx_matches, assert_streams, assert_trains, neuron_graph
from torch import nn

import snngraph as sg
from snngraph import GraphError

T, B, N = 20, 3, 5
CASES = {
    "scalar": dict(delta_threshold=0.3, beta=0.8),
    "per_neuron": dict(delta_threshold=torch.linspace(0.1, 0.6, N, dtype=torch.float64),
                       beta=torch.linspace(0.5, 0.95, N, dtype=torch.float64)),
    "learn_beta": dict(delta_threshold=0.2, beta=0.9, learn_beta=True),
    "fast_sigmoid": dict(delta_threshold=0.25, beta=0.7, spike_grad=sg.surrogate.fast_sigmoid(slope=5)),
}


def _inputs() -> torch.Tensor:
    return torch.randn(T, B, N, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _run(neuron: nn.Module, x: torch.Tensor):
    state = neuron.reset_mem()
    spks, mems, prevs = [], [], []
    for t in range(T):
        spk, state = neuron(x[t], state)
        spks.append(spk)
        mems.append(state[0])
        prevs.append(state[1])
    return torch.stack(spks), torch.stack(mems), torch.stack(prevs)


@pytest.mark.parametrize("case", sorted(CASES))
def test_sequence_and_gradients_equal_snntorch(case: str) -> None:
    kw = dict(CASES[case])
    kw.setdefault("spike_grad", sg.surrogate.atan())  # the same float64 spec on both sides
    ours, theirs = sg.nn.DeltaLeaky(**kw).double(), snn.DeltaLeaky(**kw).double()
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    results = []
    for neuron in (ours, theirs):
        x = _inputs().requires_grad_(True)
        spk, mem, prev = _run(neuron, x)
        # dyadic weights: snnTorch's float32 spikes round the gradient they receive to float32
        w = torch.randint(-8, 9, spk.shape, generator=torch.Generator().manual_seed(4)).to(torch.float64) / 8
        loss = (spk * w).sum() + (mem.pow(2) * 0.1).sum()
        params = [p for p in neuron.parameters() if p.requires_grad]
        results.append((spk, mem, prev, torch.autograd.grad(loss, [x, *params])))
    (spk, mem, prev, grads), (r_spk, r_mem, r_prev, r_grads) = results
    assert 0 < spk.sum() < spk.numel()
    assert torch.equal(spk, r_spk.to(spk.dtype))
    torch.testing.assert_close(mem, r_mem, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(prev, r_prev, rtol=1e-9, atol=1e-12)
    for a, b in zip(grads, r_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


def test_init_hidden_keeps_the_state_and_fits_a_sequential() -> None:
    explicit = sg.nn.DeltaLeaky(0.3, beta=0.8).double()
    hidden = sg.nn.DeltaLeaky(0.3, beta=0.8, init_hidden=True).double()
    both = sg.nn.DeltaLeaky(0.3, beta=0.8, init_hidden=True, output=True).double()
    ref, _, _ = _run(explicit, _inputs())
    x = _inputs()
    assert torch.equal(torch.stack([hidden(x[t]) for t in range(T)]), ref)
    spk, (mem, prev) = both(x[0])
    assert torch.equal(spk, ref[0]) and torch.equal(prev, torch.zeros_like(mem))
    hidden.reset_hidden()
    assert hidden(torch.zeros(7, N, dtype=torch.float64)).shape == (7, N)  # a new batch size starts at zero
    spk, state = explicit(x[0])  # omitted state: zero
    assert torch.equal(spk, ref[0])
    with pytest.raises(TypeError, match="mem_prev") as info:
        explicit(x[0], state[0])
    assert isinstance(info.value, GraphError)


def test_trace_of_snntorch_models_computes_what_stepping_computes() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, N), sg.nn.DeltaLeaky(0.2, beta=0.85, init_hidden=True)).double()
    torch.manual_seed(0)
    theirs = nn.Sequential(nn.Linear(4, N), snn.DeltaLeaky(0.2, beta=0.85, init_hidden=True)).double()
    x = torch.randn(T, B, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    graphs = [sg.trace(m, x[0]) for m in (model, theirs)]
    model[1].reset_hidden()
    stepped = torch.stack([model(x[t]) for t in range(T)])
    theirs[1].reset_mem()
    theirs_out = torch.stack([theirs(x[t])[0] for t in range(T)])  # snnTorch returns (spk, (mem, mem_prev))
    assert torch.equal(stepped, theirs_out.double()) and 0 < stepped.sum() < stepped.numel()
    for g in graphs:
        assert [n.op for n in g.nodes.values()].count("delta_leaky") == 1  # not its parent class Leaky
        assert torch.equal(sg.compile(g).double()(x)["spk"], stepped)


def _graph() -> sg.Graph:
    return neuron_graph("delta", 4, N, lambda g, c: g.delta_leaky(c, beta=0.8, delta_threshold=0.3, learn_beta=True,
                                                                  name="n"))


def test_compiled_graph_training_step() -> None:
    torch.manual_seed(0)
    net = sg.compile(_graph())
    x = torch.rand(T, B, 4, generator=torch.Generator().manual_seed(2)) * 2
    assert_trains(net, x)
    assert_streams(net, x)


def test_onnx_export_equals_torch(tmp_path) -> None:
    net = sg.compile(_graph())
    x = torch.rand(T, B, 4, generator=torch.Generator().manual_seed(3)) * 2
    assert_onnx_matches(net, x, tmp_path / "delta.onnx", mixed=False)
