"""The fused scan of sj_if / sj_lif (``runtimes/torch/scan_sj.py``) against the model's derived step
loop (the unfused node), in float64 over T=9 steps: spikes and states bit-identical, input gradients
1e-10. Every reset, detach_reset and decay_input variant, several surrogates (atan's two-pass
gradient included), per-neuron parameters, a hard reset to a non-zero value, the state read or not
(the input then serves as the scan's buffer), and blocks of neurons smaller than a step."""

from __future__ import annotations

import contextlib
import itertools

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import snngraph as sg
from snngraph.passes import insert_surrogates
from snngraph.runtimes.torch import scan_sj

T, B, N = 9, 3, 7
SURROGATES = [sg.surrogate.atan(2.0), sg.surrogate.sigmoid(slope=4.0), sg.surrogate.fast_sigmoid(),
              sg.surrogate.straight_through_estimator(), sg.surrogate.piecewise_quadratic(1.0)]
VARIANTS = [v for v in itertools.product(["sj_if", "sj_lif"], ["hard", "soft"], [False, True], [True, False])
            if v[0] == "sj_lif" or v[3]]  # (decay_input is a LIF option)


def _graph(op: str, reset: str, detach: bool, decay: bool, surrogate, per_neuron: bool, read_v: bool) -> sg.Graph:
    rng = np.random.default_rng(0)
    g = sg.Graph("sj")
    x = g.input("x", (N,), dtype="float64")
    w = rng.normal(0, 0.8, (N, N))
    h = g.linear(x, N, weight=w, bias_value=rng.normal(0.2, 0.2, N), name="fc")
    kw = dict(reset=reset, detach_reset=detach, spike_grad=surrogate,
              v_threshold=rng.uniform(0.6, 1.2, N) if per_neuron else np.float64(0.9),
              v_reset=rng.uniform(-0.3, 0.1, N) if per_neuron else np.float64(-0.1))
    if op == "sj_lif":
        kw.update(decay_input=decay, tau=rng.uniform(1.5, 4.0, N) if per_neuron else np.float64(2.5))
    s = g.neuron(op, h, name="lif", **kw)
    g.output("spk", s)
    if read_v:
        g.output("v", s.v)
    return g


def _run(net, x, weights, backward_under=None):
    x = x.clone().requires_grad_(True)
    out = net(x)
    loss = (out["spk"] * weights).sum() + (out["v"].square().sum() if "v" in out else 0)
    with backward_under or contextlib.nullcontext():
        (gx,) = torch.autograd.grad(loss, x)
    return {k: v.detach() for k, v in out.items()}, gx


@pytest.mark.parametrize(("op", "reset", "detach", "decay", "block"),
                         [(*v, 4) for v in VARIANTS] + [(*VARIANTS[0], 2**17), (*VARIANTS[-1], 2**17)])
def test_scan_matches_the_derived_step(monkeypatch, op, reset, detach, decay, block):
    monkeypatch.setattr(scan_sj, "BLOCK_ELEMENTS", block)  # 4: B*N = 21 neurons in 6 blocks, the last short
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(T, B, N, generator=gen, dtype=torch.float64) * 2.2 - 0.5
    weights = torch.randn(T, B, N, generator=gen, dtype=torch.float64)
    for surrogate, per_neuron, read_v in itertools.product(SURROGATES, [False, True], [False, True]):
        g = _graph(op, reset, detach, decay, surrogate, per_neuron, read_v)
        fused = sg.compile(g)
        assert fused.graph.nodes["lif"].fused and (("lif" in fused._scratch) is not read_v)
        derived = sg.compile(g, passes=[insert_surrogates])
        assert not derived.graph.nodes["lif"].fused
        out_f, gx_f = _run(fused, x, weights)
        out_d, gx_d = _run(derived, x, weights)
        case = f"{surrogate.name} per_neuron={per_neuron} read_v={read_v}"
        assert 0 < out_d["spk"].sum() < out_d["spk"].numel(), case
        for key in out_f:
            assert torch.equal(out_f[key], out_d[key]), f"{case}: {key}"
        assert gx_d.abs().sum() > 0, case
        torch.testing.assert_close(gx_f, gx_d, rtol=1e-10, atol=1e-12, msg=case)


def test_scan_keeps_its_buffers_for_a_second_backward():
    """With the input as its buffer, a backward that keeps the graph must not overwrite the saved membranes."""
    g = _graph("sj_lif", "hard", True, True, sg.surrogate.atan(2.0), False, False)
    net = sg.compile(g)
    assert "lif" in net._scratch
    x = (torch.rand(T, B, N, dtype=torch.float64) * 2).requires_grad_(True)
    loss = net(x)["spk"].sum()
    (first,) = torch.autograd.grad(loss, x, retain_graph=True)
    (second,) = torch.autograd.grad(loss, x)
    assert first.abs().sum() > 0
    assert torch.equal(first, second)


def test_unused_outputs_need_no_gradient():
    g = _graph("sj_lif", "soft", False, True, sg.surrogate.atan(2.0), True, True)
    net = sg.compile(g)
    x = (torch.rand(T, B, N, dtype=torch.float64) * 2).requires_grad_(True)
    out = net(x)
    (only_v,) = torch.autograd.grad(out["v"].sum(), x)  # the spikes' gradient is None in the scan
    derived = sg.compile(g, passes=[insert_surrogates])
    x_d = x.detach().clone().requires_grad_(True)
    (want,) = torch.autograd.grad(derived(x_d)["v"].sum(), x_d)
    torch.testing.assert_close(only_v, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("op", ["sj_lif", "leaky"])
def test_hooks_on_the_input_s_module_keep_it_from_being_scratch(op):
    """A full backward hook wraps the module's result in a view a scan must not write into, and a forward hook
    may keep it: with either, the scan allocates its own buffers (same values)."""
    g = sg.Graph("hooked")
    h = g.linear(g.input("x", (N,), dtype="float64"), N, name="fc")
    g.output("spk", g.sj_lif(h, name="lif") if op == "sj_lif" else g.leaky(h, 0.8, name="lif"))
    net = sg.compile(g).double()
    assert "lif" in net._scratch
    x = (torch.rand(T, B, N, dtype=torch.float64) * 2).requires_grad_(True)
    (want,) = torch.autograd.grad(net(x)["spk"].sum(), x)
    seen = []
    for register in (net.fc.register_full_backward_hook, net.fc.register_forward_hook):
        handle = register(lambda *args: seen.append(args[-1]) and None)
        (got,) = torch.autograd.grad(net(x)["spk"].sum(), x)
        handle.remove()
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert len(seen) == 2 and torch.equal(seen[1], net.fc(x.detach().reshape(-1, N)))  # the kept result is intact


class _SnngraphOps(TorchDispatchMode):
    """Records the names of the ``snngraph::`` ops run under it."""

    def __init__(self):
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "snngraph":
            self.names.append(func._opname)  # noqa: SLF001 (torch's own field)
        return func(*args, **(kwargs or {}))


def _recorded_compile(net):
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    return torch.compile(net, fullgraph=True, dynamic=True, backend=backend), graphs


@pytest.mark.parametrize(("op", "reset", "detach", "decay"), [VARIANTS[0], VARIANTS[-1]])
@pytest.mark.parametrize("read_v", [False, True])
def test_compile_export_and_func_run_the_custom_op(op, reset, detach, decay, read_v):
    """Under ``torch.compile`` / ``torch.export`` / ``torch.func`` the scan is the op ``snngraph::sj_scan``
    (with scratch where the state is not read: the backward then writes over the membranes), with the
    eager values."""
    torch._dynamo.reset()
    net = sg.compile(_graph(op, reset, detach, decay, SURROGATES[0], True, read_v))
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(T, B, N, generator=gen, dtype=torch.float64) * 2.2 - 0.5
    weights = torch.randn(T, B, N, generator=gen, dtype=torch.float64)
    want, gx_want = _run(net, x, weights)
    compiled, graphs = _recorded_compile(net)
    seen = _SnngraphOps()  # (over the backward only: dynamo refuses a dispatch mode)
    got, gx = _run(compiled, x, weights, backward_under=seen)
    backward_ops = [name for name in seen.names if name.startswith("sj_scan_backward")]
    calls = [n for g in graphs for n in g.graph.nodes if n.target is torch.ops.snngraph.sj_scan.default]
    assert [n.args[-1] for n in calls] == [not read_v]  # scratch: the state is not read
    assert backward_ops == ["sj_scan_backward" if read_v else "sj_scan_backward_over_charged"]
    for key in want:
        assert torch.equal(got[key], want[key]), key
    torch.testing.assert_close(gx, gx_want, rtol=1e-12, atol=1e-14)
    program = torch.export.export(net, (x,), dynamic_shapes={"args": ({0: torch.export.Dim("T", min=2)},)})
    assert torch.equal(program.module()(x[:5])["spk"], net(x[:5])["spk"])
    params = {k: p.detach() for k, p in net.named_parameters()}
    grads = torch.func.grad(lambda p: (torch.func.functional_call(net, p, (x,))["spk"] * weights).sum())(params)
    net.zero_grad()
    (net(x)["spk"] * weights).sum().backward()
    for key, p in net.named_parameters():
        torch.testing.assert_close(grads[key], p.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # inside inductor
def test_inductor_training_step_equals_eager():
    torch._dynamo.reset()
    op, reset, detach, decay = VARIANTS[-1]
    net = sg.compile(_graph(op, reset, detach, decay, SURROGATES[0], True, False))
    compiled = torch.compile(net, fullgraph=True, dynamic=True)
    gen = torch.Generator().manual_seed(3)
    for steps in (T, 5):
        x = torch.rand(steps, B, N, generator=gen, dtype=torch.float64) * 2.2 - 0.5
        weights = torch.randn(steps, B, N, generator=gen, dtype=torch.float64)
        (got, gx), (want, gx_want) = _run(compiled, x, weights), _run(net, x, weights)
        assert torch.equal(got["spk"], want["spk"])
        torch.testing.assert_close(gx, gx_want, rtol=1e-12, atol=1e-14)
