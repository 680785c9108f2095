"""A traced model's compiled net keeps the model's own parameter paths (issue 16 item 4): ``0.weight``
for ``nn.Sequential``, ``block.conv1.weight`` for nested modules, snnTorch's neuron buffers included,
so ``load_state_dict`` works in both directions; the paths survive the passes and sg.save/sg.load."""

from __future__ import annotations

import pytest
import snntorch as snn
import torch
from torch import nn

import snngraph as sg


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.lif = snn.Leaky(beta=0.9, init_hidden=True)

    def forward(self, x):
        return self.lif(self.conv1(x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.flat = nn.Flatten()
        self.head = nn.Sequential(nn.Linear(4 * 6 * 6, 3), snn.Synaptic(alpha=0.8, beta=0.8, init_hidden=True,
                                                                          output=True))

    def forward(self, x):
        return self.head(self.flat(self.block(x)))


def _models():
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Linear(4, 3), snn.Leaky(beta=0.9, init_hidden=True), nn.Linear(3, 2),
                        sg.nn.Leaky(beta=0.8, init_hidden=True, output=True))
    return [(seq, torch.rand(1, 4)), (Net(), torch.rand(1, 1, 6, 6))]


@pytest.mark.parametrize("index", [0, 1])
def test_state_dict_keys_are_the_models_and_load_both_ways(index):
    model, example = _models()[index]
    net = sg.compile(sg.trace(model, example))
    assert set(net.state_dict()) == set(model.state_dict())
    torch.manual_seed(1)
    other = type(model)() if index else _models()[0][0]
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.25)
    net.load_state_dict(other.state_dict())  # strict: every key matches
    for key, value in other.state_dict().items():
        assert torch.equal(net.state_dict()[key], value), key
    model.load_state_dict(net.state_dict())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in net.state_dict().items())
    x = torch.rand(5, 2, *example.shape[1:])
    assert set(net(x)) and net.to_graph().module_paths == net.source.module_paths


def test_nested_modules_are_mirrored():
    model, example = _models()[1]
    net = sg.compile(sg.trace(model, example))
    assert isinstance(net.block.conv1, nn.Conv2d) and isinstance(net.head._modules["0"], nn.Linear)
    assert "block.conv1.weight" in net.state_dict() and "block.lif.reset_mechanism_val" in net.state_dict()


def test_a_different_reset_mechanism_is_refused_on_load():
    model, example = _models()[0]
    net = sg.compile(sg.trace(model, example))
    state = dict(net.state_dict())
    state["1.reset_mechanism_val"] = torch.tensor(1)
    with pytest.raises(sg.GraphError, match="1.reset_mechanism_val"):
        net.load_state_dict(state)


def test_paths_survive_save_load_and_builder_graphs_keep_node_names(tmp_path):
    model, example = _models()[0]
    g = sg.trace(model, example)
    sg.save(g, tmp_path / "t.sg")
    back = sg.load(tmp_path / "t.sg")
    assert back.module_paths == g.module_paths and set(sg.compile(back).state_dict()) == set(model.state_dict())
    b = sg.Graph("b")
    b.output("o", b.leaky(b.linear(b.input("x", (3,)), 2, name="fc"), beta=0.9, name="lif"))
    assert b.module_paths == {} and set(sg.compile(b).state_dict()) == {
        "fc.weight", "fc.bias", "lif.beta", "lif.threshold", "lif.graded_spikes_factor"}


def test_malformed_module_paths_are_refused():
    g = sg.Graph("g")
    g.output("o", g.linear(g.input("x", (3,)), 2, name="fc"))
    for paths in ({"fc": "a..b"}, {"fc": "a b"}, {"fc": ""}, {"fc": 3}):
        with pytest.raises(sg.GraphError, match="module path"):
            g.with_module_paths(paths)
