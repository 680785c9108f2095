"""functional.probe monitors against snnTorch 1.0.0's: the same records on twin sg.nn / snnTorch
networks, snnTorch's crashes fixed, and what a compiled net lets them observe."""

from __future__ import annotations

import pytest
import snntorch as snn
import torch
from snntorch.functional import probe as snn_probe
from torch import nn

import snngraph as sg
from snngraph.functional import probe

T, B = 4, 3


def _twins(init_hidden: bool = True) -> tuple[nn.Module, nn.Module]:
    """The same two-layer network, with snnTorch neurons and with sg.nn ones (float32: snnTorch's
    spikes are float32 whatever the input, so a float64 snnTorch network cannot run)."""
    torch.manual_seed(0)
    nets = []
    for lib in (snn, sg.nn):
        torch.manual_seed(0)
        nets.append(nn.Sequential(nn.Linear(5, 4), lib.Leaky(beta=0.8, init_hidden=init_hidden),
                                  nn.Linear(4, 2), lib.Leaky(beta=0.7, init_hidden=init_hidden)))
    return nets[0], nets[1]


def _inputs(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.rand(T, B, 5, generator=torch.Generator().manual_seed(1), dtype=dtype) * 3


def _run(net: nn.Module, backward: bool = False) -> None:
    x = _inputs().requires_grad_(backward)
    outs = [net(x[t]) for t in range(T)]
    if backward:
        torch.stack(outs).pow(2).sum().backward()


def _equal(a, b) -> None:
    if isinstance(a, tuple | list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _equal(x, y)
    elif a is None:
        assert b is None
    else:
        assert torch.equal(a, b)


@pytest.mark.parametrize("kind", ["OutputMonitor", "InputMonitor", "GradInputMonitor", "GradOutputMonitor"])
def test_records_equal_snntorchs(kind: str) -> None:
    theirs, ours = _twins()
    ref = getattr(snn_probe, kind)(theirs, instance=snn.Leaky)
    mon = getattr(probe, kind)(ours, instance=sg.nn.Leaky)
    backward = kind.startswith("Grad")
    _run(theirs, backward)
    _run(ours, backward)
    assert mon.monitored_layers == ref.monitored_layers == ["1", "3"]
    assert len(mon.records) == len(ref.records) == 2 * T
    _equal(mon.records, ref.records)
    _equal(mon["1"], ref["1"])
    assert mon.name_records_index == ref.name_records_index


def test_attribute_monitor_post_forward_equals_snntorch() -> None:
    theirs, ours = _twins()
    ref = snn_probe.AttributeMonitor("mem", False, theirs, instance=snn.Leaky)
    mon = probe.AttributeMonitor("mem", False, ours, instance=sg.nn.Leaky, function_on_attribute=torch.clone)
    _run(theirs)
    _run(ours)
    _equal(mon.records, ref.records)
    assert len(mon["3"]) == T


def test_attribute_monitor_pre_forward_and_instances_work_unlike_snntorch() -> None:
    theirs, ours = _twins()
    with pytest.raises(TypeError):  # snnTorch's docstring form: an instance, not a class
        snn_probe.OutputMonitor(theirs, instance=snn.Leaky(beta=0.5))
    ref = snn_probe.AttributeMonitor("mem", True, theirs, instance=snn.Leaky)
    with pytest.raises(TypeError):  # its pre-forward hook takes three arguments
        _run(theirs)
    ref.remove_hooks()
    pre = probe.AttributeMonitor("mem", True, ours, instance=sg.nn.Leaky(beta=0.5))
    post = probe.AttributeMonitor("mem", False, ours, instance=(sg.nn.Leaky, nn.ReLU))
    _run(ours)
    assert len(pre.records) == len(post.records) == 2 * T
    for layer in ("1", "3"):
        assert pre[layer][0].numel() == 0  # the state is created on the first call
        _equal(pre[layer][1:], post[layer][:-1])  # what the step leaves is what the next one starts from
    plain = probe.AttributeMonitor("reset_mechanism", False, ours, instance=sg.nn.Leaky)  # a property, not a buffer
    _run(ours)
    assert plain["1"] == ["subtract"] * T
    none = probe.AttributeMonitor("training", False, ours)  # instance=None: the net itself
    _run(ours)
    assert none.monitored_layers == [""] and none.records == [True] * T


def test_enable_disable_clear_and_remove() -> None:
    _, ours = _twins()
    mon = probe.OutputMonitor(ours, instance=sg.nn.Leaky, function_on_output=lambda y: y.sum())
    mon.disable()
    _run(ours)
    assert mon.records == [] and not mon.is_enable()
    mon.enable()
    _run(ours)
    assert len(mon.records) == 2 * T and all(r.dim() == 0 for r in mon.records)
    mon.clear_recorded_data()
    assert mon.records == [] and mon["1"] == []
    mon.remove_hooks()
    _run(ours)
    assert mon.records == []
    with pytest.raises(ValueError):
        mon[1.5]


def test_explicit_state_neurons_record_tuples() -> None:
    theirs, ours = _twins(init_hidden=False)

    def run(net, lif_cls):
        x = _inputs().requires_grad_(True)
        lif1, lif2 = net[1], net[3]
        m1 = m2 = None
        total = 0
        for t in range(T):
            s1, m1 = lif1(net[0](x[t]), m1)
            s2, m2 = lif2(net[2](s1), m2)
            total = total + s2.sum() + m2.pow(2).sum()
        total.backward()

    ref = snn_probe.OutputMonitor(theirs, instance=snn.Leaky)
    gref = snn_probe.GradOutputMonitor(theirs, instance=snn.Leaky)
    mon = probe.OutputMonitor(ours, instance=sg.nn.Leaky)
    gmon = probe.GradOutputMonitor(ours, instance=sg.nn.Leaky)
    run(theirs, snn.Leaky)
    run(ours, sg.nn.Leaky)
    assert isinstance(mon[0], tuple) and len(mon[0]) == 2
    _equal(mon.records, ref.records)
    _equal(gmon.records, gref.records)


def _compiled() -> sg.runtimes.torch.module.CompiledNet:
    g = sg.Graph("probe")
    x = g.input("x", shape=(5,))
    lif = g.leaky(g.linear(x, 3, name="fc1"), beta=0.9, name="lif1")
    g.output("spk", lif)
    g.output("mem", lif.mem)
    torch.manual_seed(0)
    return sg.compile(g).double()


def test_compiled_net_forward_and_gradients_are_observable() -> None:
    net = _compiled()
    outs = probe.OutputMonitor(net)
    ins = probe.InputMonitor(net)
    gout = probe.GradOutputMonitor(net)
    gin = probe.GradInputMonitor(net)
    inside = probe.OutputMonitor(net, instance=nn.Module)  # synapses run as their modules; neurons do not
    x = _inputs(torch.float64).requires_grad_(True)
    result = net(x)
    assert outs.monitored_layers == [""] and set(outs[0]) == {"spk", "mem"}
    _equal(outs[0]["mem"], result["mem"])
    _equal(ins[0], x)
    assert inside.monitored_layers == ["", "fc1", "lif1"] and inside["lif1"] == [] and len(inside[""]) == 1
    (rows,) = inside["fc1"]  # the Linear ran once over all T*B rows
    _equal(rows, torch.nn.functional.linear(x.reshape(-1, 5), net.fc1.weight, net.fc1.bias))
    (result["mem"].pow(2).sum() * 0.5).backward()
    assert set(gout[0]) == {"spk", "mem"}
    _equal(gout[0]["mem"], result["mem"].detach())  # d(mem^2 / 2)/dmem = mem
    _equal(gout[0]["spk"], torch.zeros_like(result["spk"]))
    _equal(gin[0], x.grad)
    with torch.no_grad():
        net(x)
    assert len(gout.records) == len(gin.records) == 1 and len(outs.records) == 2
