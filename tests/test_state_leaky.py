"""The ``state_leaky`` model and ``sg.nn.StateLeaky`` / ``sg.nn.LinearLeaky`` against snnTorch 1.0.0
(float64, 12-step sequences, spikes exact, states 1e-9, gradients 1e-8 relative) for every option,
sg.trace of snnTorch and sg.nn models using them, a compiled-graph training step, streaming and the
ONNX export. The registry-driven tests (test_models_registry.py) cover text, files and ONNX modes."""

from __future__ import annotations

import types
import warnings

import numpy as np
import pytest
import snntorch as snn
import torch
from neuron_helpers import assert_onnx_matches, assert_streams, assert_trains, neuron_graph
from torch import nn

import snngraph as sg
from snngraph import GraphError

T, B, C, F = 12, 3, 4, 5
CASES = {
    "scalar": dict(beta=0.9),
    "default_spike_grad": dict(beta=0.8, spike_grad=None),
    "per_channel": dict(beta=torch.tensor([0.5, 0.7, 0.9, 0.95], dtype=torch.float64)),
    "learn_beta": dict(beta=torch.tensor([0.6, 0.8, 0.85, 0.9], dtype=torch.float64), learn_beta=True),
    "learn_threshold_graded": dict(beta=0.85, threshold=0.8, learn_threshold=True, graded_spikes_factor=1.5,
                                   learn_graded_spikes_factor=True),
    "truncated": dict(beta=0.9, kernel_truncation_steps=3, learn_beta=True),
    "truncated_per_channel": dict(beta=torch.tensor([0.5, 0.7, 0.9, 0.95], dtype=torch.float64),
                                  kernel_truncation_steps=5),
    "truncated_longer_than_sequence": dict(beta=0.9, kernel_truncation_steps=50),
    "fast_sigmoid": dict(beta=0.9, spike_grad=sg.surrogate.fast_sigmoid(slope=5)),
    "surrogate_disable": dict(beta=0.9, surrogate_disable=True),
    "no_output": dict(beta=0.9, output=False, learn_beta=True),
    "growing": dict(beta=1.05, learn_beta=True),  # tau < 0: the derived kernel instead of the scan
}


def _inputs(features: int = C, seed: int = 0) -> torch.Tensor:
    return torch.randn(T, B, features, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 0.7


def _dyadic(shape: torch.Size, seed: int) -> torch.Tensor:
    # snnTorch's default surrogate returns float32 spikes: dyadic loss weights keep their gradient exact
    return torch.randint(-8, 9, shape, generator=torch.Generator().manual_seed(seed)).to(torch.float64) / 8


def _kwargs(case: str) -> dict:
    kw = dict(CASES[case])
    if "spike_grad" not in kw and not kw.get("surrogate_disable") and kw.get("output", True):
        kw["spike_grad"] = sg.surrogate.atan()  # the same float64 spec on both sides
    kw.pop("spike_grad", None) if kw.get("spike_grad", 0) is None else None
    return kw


def _compare(ours: nn.Module, theirs: nn.Module, x: torch.Tensor, output: bool) -> None:
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    for key, value in theirs.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, rtol=0, atol=0)
    results = []
    for neuron in (ours, theirs):
        xi = x.clone().requires_grad_(True)
        out = neuron(xi)
        spk, mem = out if output else (None, out)
        loss = (mem.pow(2) * 0.1).sum() + (mem * _dyadic(mem.shape, 5)).sum()
        if spk is not None:
            loss = loss + (spk * _dyadic(spk.shape, 4)).sum()
        params = [p for n, p in neuron.named_parameters() if p.requires_grad and n != "beta"]
        results.append((spk, mem, torch.autograd.grad(loss, [xi, *params])))
    (spk, mem, grads), (r_spk, r_mem, r_grads) = results
    if output:
        assert 0 < spk.count_nonzero() < spk.numel()
        assert spk.dtype == torch.float64 and torch.equal(spk, r_spk.to(spk.dtype))
    torch.testing.assert_close(mem, r_mem, rtol=1e-9, atol=1e-12)
    for a, b in zip(grads, r_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


def _graded_once(theirs: nn.Module) -> nn.Module:
    """snnTorch's StateLeaky/LinearLeaky scale spikes by graded_spikes_factor twice (its ``fire`` and its
    ``forward``); the reference keeps the one in ``forward`` (see test_graded_spikes_are_scaled_once)."""
    theirs.fire = types.MethodType(lambda self, mem: self.spike_grad(mem - self.threshold), theirs)
    return theirs


def test_graded_spikes_are_scaled_once() -> None:
    ours = sg.nn.StateLeaky(0.9, C, graded_spikes_factor=1.5).double()
    theirs = snn.StateLeaky(0.9, C, graded_spikes_factor=1.5, spike_grad=sg.surrogate.atan()).double()
    x = _inputs() * 3
    spk, r_spk = ours(x)[0], theirs(x)[0]
    assert spk.max() == 1.5 and r_spk.max() == 2.25 and torch.equal(spk * 1.5, r_spk)


@pytest.mark.parametrize("case", sorted(CASES))
def test_state_leaky_equals_snntorch(case: str) -> None:
    kw = _kwargs(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = sg.nn.StateLeaky(channels=C, **kw).double()
        theirs = _graded_once(snn.StateLeaky(channels=C, **kw).double())
    _compare(ours, theirs, _inputs(), kw.get("output", True))
    torch.testing.assert_close(ours.beta, theirs.beta)


@pytest.mark.parametrize("case", ["scalar", "learn_beta", "truncated", "no_output", "learn_threshold_graded"])
def test_linear_leaky_equals_snntorch(case: str) -> None:
    kw = _kwargs(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(3)
        ours = sg.nn.LinearLeaky(in_features=F, out_features=C, **kw).double()
        torch.manual_seed(3)
        theirs = _graded_once(snn.LinearLeaky(in_features=F, out_features=C, **kw).double())
    x = _inputs(F, seed=1)
    _compare(ours, theirs, x, kw.get("output", True))
    ours(x)
    theirs(x)
    torch.testing.assert_close(ours.mem, theirs.mem, rtol=1e-9, atol=1e-12)


def test_linear_leaky_without_bias_and_long_sequence() -> None:
    torch.manual_seed(0)
    ours = sg.nn.LinearLeaky(0.95, F, C, bias=False, spike_grad=sg.surrogate.atan()).double()
    torch.manual_seed(0)
    theirs = snn.LinearLeaky(0.95, F, C, bias=False, spike_grad=sg.surrogate.atan()).double()
    x = torch.randn(64, 2, F, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    (spk, mem), (r_spk, r_mem) = ours(x), theirs(x)
    assert torch.equal(spk, r_spk) and spk.sum() > 0
    torch.testing.assert_close(mem, r_mem, rtol=1e-9, atol=1e-11)


def test_options_and_errors_follow_snntorch() -> None:
    with pytest.warns(UserWarning, match="unused when output=False"):
        sg.nn.StateLeaky(0.9, C, output=False, learn_threshold=True)
    with pytest.raises(GraphError, match="must be either"):
        sg.nn.StateLeaky(torch.tensor([0.9, 0.8]), C)
    with pytest.raises(GraphError, match="state_quant"):
        sg.nn.StateLeaky(0.9, C, state_quant=lambda v: v)
    with pytest.raises(GraphError, match="kernel_truncation_steps"):
        sg.nn.StateLeaky(0.9, C, kernel_truncation_steps=0)
    with pytest.raises(GraphError, match=r"\(T, B, C\)"):
        sg.nn.StateLeaky(0.9, C)(torch.zeros(B, C))
    neuron = sg.nn.StateLeaky(0.9, C)
    with pytest.raises(NotImplementedError):
        neuron.mem_reset(torch.zeros(B, C))
    with pytest.raises(NotImplementedError):
        neuron.fire_inhibition(B, torch.zeros(B, C))


def _traced_models(lib) -> list[nn.Module]:
    class Explicit(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(F, C)
            self.lif = lib.StateLeaky(beta=torch.linspace(0.6, 0.9, C), channels=C, learn_beta=True,
                                      spike_grad=sg.surrogate.atan())

        def forward(self, x):
            spk, mem = self.lif(self.fc(x))
            return spk, mem

    torch.manual_seed(0)
    return [
        nn.Sequential(nn.Linear(F, C), lib.StateLeaky(0.9, channels=C, spike_grad=sg.surrogate.atan())),
        nn.Sequential(nn.Linear(F, C), lib.StateLeaky(0.8, channels=C, output=False),
                      lib.LinearLeaky(0.85, C, 3, learn_beta=True, spike_grad=sg.surrogate.atan())),
        Explicit(),
    ]


@pytest.mark.parametrize("lib", [snn, sg.nn], ids=["snntorch", "sg.nn"])
def test_trace_computes_what_running_the_model_computes(lib) -> None:
    x = _inputs(F, seed=3) * 2
    for model in _traced_models(lib):
        model = model.double()
        ref = model(x)
        g = sg.trace(model, x)
        assert any(n.op == "state_leaky" for n in g.nodes.values())
        net = sg.compile(g).double()
        out = net(x)
        spk, mem = (out["spk"], out["mem"])
        assert 0 < spk.count_nonzero() < spk.numel() and torch.equal(spk, ref[0])
        torch.testing.assert_close(mem, ref[1], rtol=1e-9, atol=1e-12)
        torch.autograd.grad((mem.pow(2)).sum(), [p for p in net.parameters() if p.requires_grad])


@pytest.mark.parametrize("lib", [snn, sg.nn], ids=["snntorch", "sg.nn"])
def test_trace_of_a_truncated_kernel(lib) -> None:
    """kernel_truncation_steps becomes state_leaky - exp(-K/tau) * delay(state_leaky, K), thresholded."""
    torch.manual_seed(1)
    beta = torch.tensor([0.5, 0.7, 0.9, 0.95])
    model = nn.Sequential(nn.Linear(F, C), lib.StateLeaky(beta, channels=C, kernel_truncation_steps=3,
                                                          threshold=0.8, learn_threshold=True,
                                                          spike_grad=sg.surrogate.atan())).double()
    if lib is snn:
        _graded_once(model[1])
    x = _inputs(F, seed=4) * 2
    ref = model(x)
    g = sg.trace(model, x)
    assert sorted(n.op for n in g.nodes.values()) == ["delay", "input", "leaky", "linear", "scale", "state_leaky",
                                                      "sub"]
    net = sg.compile(g).double()
    out = net(x)
    assert 0 < out["spk"].count_nonzero() < out["spk"].numel() and torch.equal(out["spk"], ref[0])
    torch.testing.assert_close(out["mem"], ref[1], rtol=1e-9, atol=1e-12)
    w = _dyadic(ref[0].shape, 2)
    grads = torch.autograd.grad((out["spk"] * w).sum() + out["mem"].pow(2).sum(), list(net.parameters()))
    r_grads = torch.autograd.grad((ref[0] * w).sum() + ref[1].pow(2).sum(),
                                  [p for p in model.parameters() if p.requires_grad])
    for a, b in zip(grads, r_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


def test_trace_refuses_what_the_graph_cannot_hold() -> None:
    model = nn.Sequential(nn.Linear(F, C), snn.StateLeaky(0.9, channels=C, kernel_truncation_steps=3,
                                                          learn_beta=True))
    with pytest.raises(GraphError, match="kernel_truncation_steps"):
        sg.trace(model, _inputs(F).float())
    model = nn.Sequential(nn.Linear(F, C), snn.StateLeaky(0.9, channels=C, state_quant=lambda v: v))
    with pytest.raises(GraphError, match="state_quant"):
        sg.trace(model, _inputs(F).float())


def _graph() -> sg.Graph:
    return neuron_graph("state_leaky", F, C, lambda g, c: g.state_leaky(
        c, tau=np.array([2.0, 4.0, 8.0, 16.0], np.float32), learn_tau=True, threshold=0.7, name="n"))


def test_compiled_graph_training_step_and_streaming() -> None:
    torch.manual_seed(0)
    net = sg.compile(_graph())
    x = torch.rand(T, B, F, generator=torch.Generator().manual_seed(2))
    assert_trains(net, x)
    assert_streams(net, x)


def test_onnx_export_equals_torch(tmp_path) -> None:
    net = sg.compile(_graph())
    x = torch.rand(T, B, F, generator=torch.Generator().manual_seed(3)) * 2
    assert_onnx_matches(net, x, tmp_path / "state_leaky.onnx")


def test_fused_scan_equals_the_derived_kernel() -> None:
    """sg.compile runs state_leaky as Leaky's scan (decay exp(-1/tau), no reset); it equals the loop of
    the model's derived step kernel, forward and backward."""
    from snngraph.passes import default_pipeline

    g = _graph()
    unfused_passes = [p for p in default_pipeline() if getattr(p, "name", "") != "fuse_state_updates"]
    assert len(unfused_passes) == len(default_pipeline()) - 1
    fused, unfused = sg.compile(g).double(), sg.compile(g, passes=unfused_passes).double()
    assert fused.graph.nodes["n"].fused and not unfused.graph.nodes["n"].fused
    x = _inputs(F, seed=6).abs()
    results = []
    for net in (fused, unfused):
        out = net(x)
        loss = (out["spk"] * _dyadic(out["spk"].shape, 1)).sum() + out["mem"].pow(2).sum()
        results.append((out, torch.autograd.grad(loss, list(net.parameters()))))
    (out, grads), (r_out, r_grads) = results
    assert 0 < out["spk"].sum() < out["spk"].numel() and torch.equal(out["spk"], r_out["spk"])
    torch.testing.assert_close(out["mem"], r_out["mem"], rtol=1e-12, atol=1e-14)
    for a, b in zip(grads, r_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)
    negative = g.with_nodes({"n": g.nodes["n"].replace(tau=g.nodes["n"].tau.with_value(np.float32(-3.0)))})
    assert not sg.compile(negative).graph.nodes["n"].fused  # a growing state: the derived kernel
