"""sg.trace of models whose forward loops over time (snnTorch tutorial style), re-rolled per step."""

from __future__ import annotations

import pytest
import snntorch as snn
import torch
from test_fx_helpers import B, T, check_equivalent, inputs
from torch import nn

import snngraph as sg


class Tutorial5(nn.Module):
    """snnTorch tutorial 5's network, verbatim: the same (static) input at every step."""

    def __init__(self, num_inputs=20, num_hidden=30, num_outputs=4, beta=0.95):
        super().__init__()
        self.fc1 = nn.Linear(num_inputs, num_hidden)
        self.lif1 = snn.Leaky(beta=beta)
        self.fc2 = nn.Linear(num_hidden, num_outputs)
        self.lif2 = snn.Leaky(beta=beta)

    def forward(self, x):
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        spk2_rec = []
        mem2_rec = []
        for _step in range(T):
            cur1 = self.fc1(x)
            spk1, mem1 = self.lif1(cur1, mem1)
            cur2 = self.fc2(spk1)
            spk2, mem2 = self.lif2(cur2, mem2)
            spk2_rec.append(spk2)
            mem2_rec.append(mem2)
        return torch.stack(spk2_rec, dim=0), torch.stack(mem2_rec, dim=0)


class TimeIndexed(nn.Module):
    """Time-varying input x[step]; Synaptic and RLeaky state initialised with init_*()."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.lif1 = snn.Synaptic(alpha=0.8, beta=0.9)
        self.fc2 = nn.Linear(8, 8)
        self.lif2 = snn.RLeaky(beta=0.9, linear_features=8)

    def forward(self, x):
        syn1, mem1 = self.lif1.init_synaptic()
        spk2, mem2 = self.lif2.init_rleaky()
        rec = []
        for step in range(T):
            spk1, syn1, mem1 = self.lif1(self.fc1(x[step]), syn1, mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), spk2, mem2)
            rec.append(spk2)
        return torch.stack(rec)


class HiddenLoop(nn.Module):
    """init_hidden neurons in nn.Sequential, looped over time inside forward."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 8), snn.Leaky(beta=0.9, init_hidden=True), nn.Linear(8, 3),
                                 snn.Leaky(beta=0.8, init_hidden=True, output=True))

    def forward(self, x):
        spk_rec, mem_rec = [], []
        for step in range(T):
            spk, mem = self.net(x[step])
            spk_rec.append(spk)
            mem_rec.append(mem)
        return torch.stack(spk_rec), torch.stack(mem_rec)


def test_tutorial5_verbatim_static_input():
    torch.manual_seed(0)
    model = Tutorial5()
    x = torch.rand(B, 20) * 2
    g = sg.trace(model, x)
    assert list(g.inputs) == ["x"] and list(g.outputs) == ["spk", "mem"]
    net = sg.compile(g)
    out = net(x.expand(T, *x.shape))
    spk, mem = model(x)
    torch.testing.assert_close(out["spk"], spk)
    torch.testing.assert_close(out["mem"], mem)
    out["mem"].sum().backward()
    mem.sum().backward()
    torch.testing.assert_close(net.fc1.weight.grad, model.fc1.weight.grad, atol=1e-5, rtol=1e-4)


def test_time_indexed_input_with_two_state_neurons():
    torch.manual_seed(0)
    model = TimeIndexed()
    xs = inputs(6)
    g = check_equivalent(model, xs, xs, lambda: [model(xs)])
    assert list(g.outputs) == ["spk"] and list(g.inputs) == ["x"]


def test_init_hidden_sequential_looped_in_forward():
    torch.manual_seed(0)
    model = HiddenLoop()
    xs = inputs(6)

    def reference():
        sg.utils.reset(model)
        return list(model(xs))

    check_equivalent(model, xs, xs, reference)


def test_last_step_only_is_rejected():
    class LastStep(Tutorial5):
        def forward(self, x):
            mem1 = self.lif1.init_leaky()
            for _step in range(T):
                spk1, mem1 = self.lif1(self.fc1(x), mem1)
            return spk1

    with pytest.raises(sg.GraphError, match="value of one step only"):
        sg.trace(LastStep(), torch.zeros(B, 20))


class Feedback(Tutorial5):
    """A feedback connection through a Linear, carried across steps outside the neurons."""

    def __init__(self, start="new_zeros"):
        super().__init__()
        self.fc_fb = nn.Linear(30, 30)
        self.start = start

    def forward(self, x):
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        fb = x.new_zeros((x.size(1), 30)) if self.start == "new_zeros" else torch.ones(B, 30)
        skip = torch.zeros(B, 30)
        rec = []
        for step in range(T):
            spk1, mem1 = self.lif1(self.fc1(x[step]) + fb + skip, mem1)
            fb = self.fc_fb(spk1)
            skip = spk1
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            rec.append(spk2)
        return torch.stack(rec)


def test_feedback_carried_across_steps_becomes_a_delay():
    torch.manual_seed(0)
    model = Feedback()
    xs = inputs(20)
    g = check_equivalent(model, xs, xs, lambda: [model(xs)])
    delays = [n for n in g.nodes.values() if n.op == "delay"]
    assert sorted(n.inputs[0].node for n in delays) == ["fc_fb", "lif1"] and all(n.steps == 1 for n in delays)


def test_carried_value_must_start_from_zeros():
    with pytest.raises(sg.GraphError, match="must start from zeros"):
        sg.trace(Feedback(start="ones"), inputs(20))


@pytest.mark.parametrize("init", ["zeros", "zeros_like", "new_zeros", "constant"])
def test_initial_state_from_zeros(init):
    class Net(Tutorial5):
        def forward(self, x):
            shape = (x.size(1), 30)
            mem1 = {"zeros": lambda: torch.zeros(shape), "zeros_like": lambda: torch.zeros_like(self.fc1(x[0])),
                    "new_zeros": lambda: x.new_zeros(shape), "constant": lambda: ZEROS}[init]()
            mem2 = self.lif2.init_leaky()
            rec = []
            for step in range(T):
                spk1, mem1 = self.lif1(self.fc1(x[step]), mem1)
                spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
                rec.append(mem2)
            return torch.stack(rec)

    torch.manual_seed(0)
    model = Net()
    xs = inputs(20)
    if init == "zeros_like":
        with pytest.raises(sg.GraphError, match="does not repeat step 0"):  # fc1 also runs before the loop
            sg.trace(model, xs)
        return
    g = check_equivalent(model, xs, xs, lambda: [model(xs)])
    assert list(g.outputs) == ["mem"]


ZEROS = torch.zeros(B, 30)
