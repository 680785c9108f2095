"""sg.trace's interface rules: inputs, carried state, output order and names."""

from __future__ import annotations

import pytest
import snntorch as snn
import torch
from test_fx_helpers import B, check_equivalent, inputs, run_explicit, run_hidden
from torch import nn

import snngraph as sg


class DocstringStyle(nn.Module):
    """snnTorch's Leaky docstring example: forward(x, mem1, spk1, mem2) -> (mem1, spk1, mem2, spk2)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 6)
        self.lif1 = snn.Leaky(beta=0.9)
        self.fc2 = nn.Linear(6, 3)
        self.lif2 = snn.Leaky(beta=0.8)

    def forward(self, x, mem1, spk1, mem2):
        cur1 = self.fc1(x)
        spk1, mem1 = self.lif1(cur1, mem1)
        cur2 = self.fc2(spk1)
        spk2, mem2 = self.lif2(cur2, mem2)
        return mem1, spk1, mem2, spk2


def test_unused_argument_dropped_state_inputs_removed_every_return_kept_in_order():
    torch.manual_seed(0)
    model = DocstringStyle()
    xs = inputs(4)
    state = [torch.zeros(B, 6), torch.zeros(B, 6), torch.zeros(B, 3)]
    g = check_equivalent(model, (xs[0], None, None, None), xs,
                         lambda: run_explicit(model, xs, state, outputs=[0, 1, 2, 3], carry=[(0, 0), (2, 2)]))
    assert list(g.inputs) == ["x"] and list(g.outputs) == ["out0", "out1", "out2", "out3"]
    assert [(r.node, r.port) for r in g.outputs.values()] == [("lif1", "mem"), ("lif1", "spk"), ("lif2", "mem"),
                                                              ("lif2", "spk")]


def test_keep_state_outputs_false_drops_returned_carried_state():
    torch.manual_seed(0)
    model = DocstringStyle()
    xs = inputs(4)
    state = [torch.zeros(B, 6), torch.zeros(B, 6), torch.zeros(B, 3)]
    g = check_equivalent(model, (xs[0], None, None, None), xs,
                         lambda: run_explicit(model, xs, state, outputs=[1, 3], carry=[(0, 0), (2, 2)]),
                         keep_state_outputs=False)
    assert list(g.inputs) == ["x"] and list(g.outputs) == ["out0", "out1"]
    assert g.outputs["out0"].node == "lif1" and g.outputs["out1"].node == "lif2"


def test_snntorch_neuron_without_state_keeps_it_internally():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 5)
            self.lif = snn.Synaptic(alpha=0.8, beta=0.9)

        def forward(self, x):
            spk, syn, mem = self.lif(self.fc(x))
            return spk, mem

    torch.manual_seed(0)
    model = Net()
    xs = inputs(4)
    g = check_equivalent(model, xs[0], xs, lambda: run_hidden(model, xs))
    assert list(g.outputs) == ["spk", "mem"]


def test_dict_return_names_outputs_and_output_names_override():
    class DictNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 5)
            self.lif = snn.Leaky(beta=0.9, init_hidden=True, output=True)

        def forward(self, x):
            spk, mem = self.lif(self.fc(x))
            return {"spikes": spk, "membrane": mem}

    assert list(sg.trace(DictNet(), torch.zeros(B, 4)).outputs) == ["spikes", "membrane"]
    g = sg.trace(DictNet(), torch.zeros(B, 4), output_names=["s", "m"])
    assert list(g.outputs) == ["s", "m"]


def test_shape_arithmetic_is_evaluated():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(12, 5)
            self.lif = snn.Leaky(beta=0.9, init_hidden=True)

        def forward(self, x):
            h = x.view(x.shape[0], -1) + x.reshape(x.size()[0], x.size(1) * x.size(2))
            return self.lif(self.fc(h))

    torch.manual_seed(0)
    model = Net()
    xs = inputs(3, 4)
    g = check_equivalent(model, xs[0], xs, lambda: run_hidden(model, xs))
    assert [n.op for n in g.nodes.values()].count("flatten") == 2


def test_state_dict_keys_follow_module_paths():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.lif = snn.Leaky(beta=0.9, init_hidden=True, learn_beta=True)

        def forward(self, x):
            return self.lif(self.fc(x))

    model = nn.Sequential(Block(), nn.Sequential(Block()))
    net = sg.compile(sg.trace(model, torch.zeros(B, 4)))
    assert {"0.fc.weight", "0.lif.beta", "1.0.fc.bias", "1.0.lif.beta"} <= set(net.state_dict())
    assert set(net.state_dict()) == set(model.state_dict())  # the model's own keys, snnTorch buffers included
    assert list(net.graph.nodes)[1:3] == ["_0_fc", "_0_lif"]  # the IR keeps identifier node names


def test_lone_neuron_traced_by_itself():
    torch.manual_seed(0)
    xs = inputs(5)
    lif = snn.Synaptic(alpha=0.8, beta=0.9, init_hidden=True, output=True)
    g = check_equivalent(lif, xs[0], xs, lambda: run_hidden(lif, xs))
    assert g.name == "Synaptic" and list(g.outputs) == ["spk", "syn", "mem"] and list(g.nodes) == ["x", "synaptic"]
    rlif = snn.RLeaky(beta=0.9, linear_features=5)
    zeros = [torch.zeros(B, 5), torch.zeros(B, 5)]
    g = check_equivalent(rlif, (xs[0], *zeros), xs,
                         lambda: run_explicit(rlif, xs, zeros, outputs=[0, 1], carry=[(0, 0), (1, 1)]))
    assert list(g.outputs) == ["spk", "mem"] and "rleaky.recurrent.weight" in dict(sg.compile(g).named_parameters())


def test_neuron_tuple_used_as_tensor_is_explained():
    model = nn.Sequential(nn.Linear(3, 3), snn.Leaky(beta=0.9, init_hidden=True, output=True), nn.Linear(3, 3))
    with pytest.raises(sg.GraphError, match=r"the \(spk, mem\) tuple of neuron '_1'"):
        sg.trace(model, torch.zeros(B, 3))


def test_tracing_sg_nn_models_does_not_import_snntorch():
    import subprocess
    import sys

    code = ("import sys, torch, snngraph as sg\n"
            "m = torch.nn.Sequential(torch.nn.Linear(3, 4), sg.nn.Leaky(beta=0.9, init_hidden=True))\n"
            "g = sg.trace(m, torch.zeros(2, 3))\n"
            "assert list(g.outputs) == ['spk'], g\n"
            "assert 'snntorch' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
