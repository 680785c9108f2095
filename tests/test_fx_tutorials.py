"""sg.trace of snnTorch's tutorial networks: compiled == step by step (outputs and gradients), and ONNX."""

from __future__ import annotations

import numpy as np
import pytest
import snntorch as snn
import torch
from snntorch import surrogate
from test_fx_helpers import B, check_equivalent, inputs, run_explicit, run_hidden
from torch import nn

import snngraph as sg


class Tutorial5(nn.Module):
    """Tutorial 5's MLP, written per step with explicit state."""

    def __init__(self, num_inputs=20, num_hidden=30, num_outputs=4, beta=0.95):
        super().__init__()
        self.fc1 = nn.Linear(num_inputs, num_hidden)
        self.lif1 = snn.Leaky(beta=beta)
        self.fc2 = nn.Linear(num_hidden, num_outputs)
        self.lif2 = snn.Leaky(beta=beta)

    def forward(self, x, mem1, mem2):
        cur1 = self.fc1(x)
        spk1, mem1 = self.lif1(cur1, mem1)
        cur2 = self.fc2(spk1)
        spk2, mem2 = self.lif2(cur2, mem2)
        return spk2, mem2, mem1


def tutorial7(beta=0.5):
    """Tutorial 7's CSNN: init_hidden neurons inside nn.Sequential (28x28 inputs)."""
    spike_grad = surrogate.fast_sigmoid(slope=25)
    return nn.Sequential(nn.Conv2d(1, 12, 5), nn.MaxPool2d(2),
                         snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True),
                         nn.Conv2d(12, 64, 5), nn.MaxPool2d(2),
                         snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True),
                         nn.Flatten(), nn.Linear(64 * 4 * 4, 10),
                         snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True, output=True))


class Recurrent(nn.Module):
    """A recurrent net: dense RLeaky then one-to-one RLeaky, explicit state."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.lif1 = snn.RLeaky(beta=0.9, linear_features=16)
        self.fc2 = nn.Linear(16, 4)
        self.lif2 = snn.RLeaky(beta=0.8, all_to_all=False, V=torch.full((4,), 0.3), learn_recurrent=True)

    def forward(self, x, spk1, mem1, spk2, mem2):
        spk1, mem1 = self.lif1(self.fc1(x), spk1, mem1)
        spk2, mem2 = self.lif2(self.fc2(spk1), spk2, mem2)
        return spk2, mem2, spk1, mem1


class RecurrentHidden(nn.Module):
    """RSynaptic with init_hidden in a custom per-step forward, with a residual fan-in."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.lif1 = snn.RSynaptic(alpha=0.8, beta=0.9, linear_features=16, init_hidden=True)
        self.fc2 = nn.Linear(16, 16)
        self.lif2 = snn.Leaky(beta=0.9, init_hidden=True, output=True)

    def forward(self, x):
        spk1 = self.lif1(self.fc1(x))
        return self.lif2(self.fc2(spk1) + spk1)


def test_tutorial5_mlp_explicit_state_keeps_every_returned_value():
    torch.manual_seed(0)
    model = Tutorial5()
    xs = inputs(20)
    zeros = (torch.zeros(B, 30), torch.zeros(B, 4))
    g = check_equivalent(model, (xs[0], *zeros), xs,
                         lambda: run_explicit(model, xs, zeros, outputs=[0, 1, 2], carry=[(0, 2), (1, 1)]))
    assert list(g.inputs) == ["x"] and list(g.outputs) == ["out0", "out1", "out2"]  # spk2, mem2, mem1
    assert [(r.node, r.port) for r in g.outputs.values()] == [("lif2", "spk"), ("lif2", "mem"), ("lif1", "mem")]
    assert {"fc1", "lif1", "fc2", "lif2"} <= set(g.nodes)


def test_tutorial5_drops_carried_membranes_on_request():
    torch.manual_seed(0)
    model = Tutorial5()
    xs = inputs(20)
    zeros = (torch.zeros(B, 30), torch.zeros(B, 4))
    g = check_equivalent(model, (xs[0], None, None), xs,
                         lambda: run_explicit(model, xs, zeros, outputs=[0], carry=[(0, 2), (1, 1)]),
                         keep_state_outputs=False)
    assert list(g.inputs) == ["x"] and list(g.outputs) == ["spk"]


def test_tutorial5_output_names():
    torch.manual_seed(0)
    g = sg.trace(Tutorial5(), (inputs(20)[0], None, None), output_names=["spk", "mem", "mem1"])
    assert list(g.outputs) == ["spk", "mem", "mem1"]


def test_tutorial7_csnn_sequential():
    torch.manual_seed(0)
    model = tutorial7()
    xs = inputs(1, 28, 28)
    g = check_equivalent(model, xs[0], xs, lambda: run_hidden(model, xs), atol=1e-5)
    assert list(g.outputs) == ["spk", "mem"]
    assert g.nodes["_2"].surrogate == sg.surrogate.fast_sigmoid(25)
    net = sg.compile(g)
    assert {"0.weight", "3.weight", "7.weight", "7.bias"} <= set(net.state_dict())


def test_recurrent_rleaky_explicit_state():
    torch.manual_seed(0)
    model = Recurrent()
    xs = inputs(8)
    zeros = (torch.zeros(B, 16), torch.zeros(B, 16), torch.zeros(B, 4), torch.zeros(B, 4))
    g = check_equivalent(model, (xs[0], *zeros), xs,
                         lambda: run_explicit(model, xs, zeros, outputs=[0, 1, 2, 3],
                                              carry=[(0, 2), (1, 3), (2, 0), (3, 1)]))
    assert list(g.outputs) == ["out0", "out1", "out2", "out3"]  # spk2, mem2, spk1, mem1
    dropped = sg.trace(model, (xs[0], *zeros), keep_state_outputs=False)
    assert [r.node for r in dropped.outputs.values()] == ["lif2", "lif1"]  # the spikes of both layers
    assert g.nodes["lif1"].all_to_all and not g.nodes["lif2"].all_to_all


def test_recurrent_rsynaptic_init_hidden_residual():
    torch.manual_seed(0)
    model = RecurrentHidden()
    xs = inputs(8)
    g = check_equivalent(model, xs[0], xs, lambda: run_hidden(model, xs))
    assert g.nodes["add"].op == "add"


def test_traced_trained_model_exports_to_onnx(tmp_path):
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = tutorial7()
    xs = inputs(1, 28, 28, scale=1.0)
    net = sg.compile(sg.trace(model, xs[0]))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    targets = torch.randint(0, 10, (B,))
    for _ in range(2):
        loss = nn.functional.cross_entropy(net(xs)["mem"].sum(0), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    path = tmp_path / "csnn.onnx"
    sg.export_onnx(net, path)
    got = sg.runtimes.onnx.Session(path).run(xs.numpy())
    with torch.no_grad():
        want = net(xs)
    np.testing.assert_array_equal(got["spk"], want["spk"].numpy())
    np.testing.assert_allclose(got["mem"], want["mem"].numpy(), rtol=1e-5, atol=1e-5)


def test_traced_graph_verifies_prints_and_saves(tmp_path):
    torch.manual_seed(0)
    g = sg.trace(tutorial7(), torch.zeros(B, 1, 28, 28))
    sg.verify(g)
    assert sg.parse(g.to_text(with_params=True)) == g
    sg.save(g, tmp_path / "csnn.sg")
    assert sg.load(tmp_path / "csnn.sg") == g
