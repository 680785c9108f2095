"""``sg.compile(g, kernels=...)`` (SPEC §12): the values it takes, and what happens where Triton cannot run.
None of this needs triton installed: the choice never imports it on CPU."""

import pytest
import torch

import snngraph as sg
from snngraph.runtimes.torch import triton as kernels


def _graph() -> sg.Graph:
    g = sg.Graph("net")
    x = g.input("x", (4,))
    g.output("spk", g.leaky(g.linear(x, 3, name="fc"), 0.9, name="lif"))
    return g


@pytest.mark.parametrize("value", ["cuda", "Triton", "", None, 1])
def test_unknown_kernels_value_is_refused(value):
    with pytest.raises(sg.GraphError, match="kernels must be one of 'auto', 'torch', 'triton'"):
        sg.compile(_graph(), kernels=value)


def test_triton_without_the_package_is_refused(monkeypatch):
    monkeypatch.setattr(kernels, "available", lambda: False)
    with pytest.raises(sg.GraphError, match="needs the triton package"):
        sg.compile(_graph(), kernels="triton")


def test_triton_on_cpu_tensors_outside_the_interpreter_is_refused(monkeypatch):
    monkeypatch.setattr(kernels, "available", lambda: True)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    net = sg.compile(_graph(), kernels="triton")
    with pytest.raises(sg.GraphError, match="TRITON_INTERPRET=1"):
        net(torch.rand(5, 2, 4))


@pytest.mark.parametrize("value", ["auto", "torch"])
def test_auto_and_torch_on_cpu_run_the_torch_scans(monkeypatch, value):
    """On CPU tensors neither asks whether triton imports, and both give the torch scans' values."""
    monkeypatch.setattr(kernels, "available", lambda: pytest.fail("auto on CPU must not look for triton"))
    torch.manual_seed(0)
    net = sg.compile(_graph(), kernels=value)
    torch.manual_seed(0)
    ref = sg.compile(_graph(), kernels="torch")
    x = torch.rand(6, 2, 4)
    assert torch.equal(net(x)["spk"], ref(x)["spk"])
    assert not kernels.use_triton(value, x)


def test_custom_surrogates_keep_the_torch_scan():
    """A custom surrogate is Python code the kernels cannot run: its scan stays torch, even when forced."""
    custom = sg.surrogate.custom_surrogate(lambda x, grad, spk: grad)
    assert not kernels.use_triton("triton", torch.zeros(1), custom)
    assert not kernels.use_triton("auto", torch.zeros(1), custom)


def test_float64_state_keeps_the_torch_scan():
    """The kernels compute in float32; a float64 net stays exact on the torch scans, even when forced."""
    assert not kernels.use_triton("triton", torch.zeros(1, dtype=torch.float64))
