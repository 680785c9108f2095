"""``sg.trace`` of Norse 1.1.0 models: cells in per-step modules and ``SequentialState``, compared with
the model stepped in Norse (float64: spikes exactly, real values 1e-9), a training step, ONNX export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import snngraph as sg
from snngraph.runtimes.onnx import Session
from tests.onnx_helpers import assert_close, export_and_check, quantise

norse = pytest.importorskip("norse.torch")

D = torch.float64
T, B = 16, 3


def f64(v):
    return torch.as_tensor(v, dtype=D).clone()


def lif_p(**kw):
    base = dict(tau_syn_inv=f64(200.0), tau_mem_inv=f64(100.0), v_leak=f64(0.0), v_th=f64(1.0), v_reset=f64(0.0))
    return norse.LIFParameters(**{**base, **kw})


def sequential():
    torch.manual_seed(0)
    box = norse.LIFBoxParameters(tau_mem_inv=f64(300.0), v_leak=f64(0.0), v_th=f64(1.0), v_reset=f64(0.0))
    return norse.SequentialState(
        nn.Linear(4, 8), norse.LIFCell(lif_p(tau_mem_inv=f64(torch.linspace(80, 200, 8)))),
        nn.Linear(8, 6), norse.LIFBoxCell(box),
        nn.Linear(6, 5), norse.LIFRecurrentCell(5, 5, lif_p(v_th=f64(0.7))),
        nn.Linear(5, 3), norse.LICell(norse.LIParameters(f64(200.0), f64(100.0), f64(0.0))),
    ).double()


def step_norse(model, xs):
    """Run ``model`` step by step; each step's returned values flattened in order (states' fields)."""
    s, steps = None, []
    for t in range(xs.shape[0]):
        out = model(xs[t], s) if s is not None else model(xs[t])
        *values, s = out if isinstance(out, tuple) and len(out) == 2 else (*out, None)
        steps.append([*values, *_leaves(s)] if s is not None else values)
        if not isinstance(out, tuple) or len(out) != 2:
            s = None
    return [torch.stack([step[k].expand_as(steps[-1][k]) for step in steps]) for k in range(len(steps[0]))]


def _leaves(state):
    if isinstance(state, (list, tuple)) and not hasattr(state, "_fields"):
        return [leaf for s in state if s is not None for leaf in _leaves(s)]
    return list(state)


def test_sequential_state_matches_norse():
    model = sequential()
    xs = torch.rand(T, B, 4, dtype=D) * 20
    want = step_norse(model, xs)
    g = sg.trace(model, xs[0])
    got = list(sg.compile(g)(xs).values())
    assert len(got) == len(want) == 1 + 2 + 1 + 3 + 2  # out, then LIF (v, i), box (v), recurrent (z, v, i), LI (v, i)
    for k, (a, b) in enumerate(zip(got, want, strict=True)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9, msg=f"output {k}")
    spikes = got[1 + 2 + 1]  # the recurrent cell's z
    assert 0 < int(spikes.sum()) < spikes.numel()
    assert [n.op for n in g.nodes.values()].count("norse_lif_recurrent") == 1


class PerStep(nn.Module):
    """Norse's per-step convention in a user module: states as forward arguments, None at first."""

    def __init__(self):
        super().__init__()
        self.fc1, self.lif, self.fc2, self.li = nn.Linear(4, 6), norse.LIFCell(lif_p()), nn.Linear(6, 2), \
            norse.LICell(norse.LIParameters(f64(200.0), f64(100.0), f64(0.0)))

    def forward(self, x, s1=None, s2=None):
        z, s1 = self.lif(self.fc1(x), s1)
        y, s2 = self.li(self.fc2(z), s2)
        return y, z, s1, s2


def test_explicit_state_module_matches_norse():
    torch.manual_seed(1)
    model = PerStep().double()
    xs = torch.rand(T, B, 4, dtype=D) * 20
    s1 = s2 = None
    want = []
    for t in range(T):
        y, z, s1, s2 = model(xs[t], s1, s2)
        want.append((y, z, s1.v, s1.i, s2.v, s2.i))
    g = sg.trace(model, (xs[0], None, None))
    assert list(g.inputs) == ["x"]
    got = list(sg.compile(g)(xs).values())
    for k, a in enumerate(got):
        torch.testing.assert_close(a, torch.stack([w[k] for w in want]), rtol=0, atol=1e-9)
    short = sg.trace(model, (xs[0], None, None), keep_state_outputs=False)
    assert len(short.outputs) == 2  # the readout and the spikes; carried state dropped


class Nested(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = norse.SequentialState(nn.Linear(4, 6), norse.LIFCell(lif_p()), nn.Linear(6, 2))

    def forward(self, x, state=None):
        out, state = self.net(x, state)
        return out


def test_nested_sequential_state_keeps_its_parameter_paths():
    torch.manual_seed(2)
    model = Nested().double()
    xs = torch.rand(T, B, 4, dtype=D) * 20
    s, want = None, []
    for t in range(T):
        out, s = model.net(xs[t], s)
        want.append(out)
    g = sg.trace(model, xs[0])
    net = sg.compile(g)
    torch.testing.assert_close(net(xs)["out"], torch.stack(want), rtol=0, atol=1e-9)
    assert set(net.state_dict()) == set(model.state_dict())  # Norse's parameters are not state_dict entries
    net.load_state_dict(model.state_dict())
    model.load_state_dict(net.state_dict())


def test_training_step_matches_norse():
    model = Nested().double()
    g = sg.trace(model, torch.zeros(B, 4, dtype=D))
    net = sg.compile(g)
    torch.manual_seed(3)
    xs, target = torch.rand(T, B, 4, dtype=D) * 20, torch.randn(T, B, 2, dtype=D)
    opt_a, opt_b = torch.optim.SGD(model.parameters(), lr=0.01), torch.optim.SGD(net.parameters(), lr=0.01)
    for _ in range(3):
        s, outs = None, []
        for t in range(T):
            out, s = model.net(xs[t], s)
            outs.append(out)
        loss_a = ((torch.stack(outs) - target) ** 2).mean()
        loss_b = ((net(xs)["out"] - target) ** 2).mean()
        torch.testing.assert_close(loss_b, loss_a, rtol=1e-12, atol=0)
        for opt, loss in ((opt_a, loss_a), (opt_b, loss_b)):
            opt.zero_grad()
            loss.backward()
            opt.step()
    ours = net.state_dict()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(ours[key], value, rtol=1e-8, atol=1e-12, msg=key)


def test_onnx_export_matches_the_compiled_module(tmp_path):
    torch.manual_seed(4)
    model = norse.SequentialState(nn.Linear(4, 8), norse.LIFCell(), nn.Linear(8, 6),
                                  norse.LIFRecurrentCell(6, 6), nn.Linear(6, 3), norse.LICell())
    g = quantise(sg.trace(model, torch.zeros(B, 4)))
    net = sg.compile(g).eval()
    rng = np.random.default_rng(0)
    xs = (np.round(rng.uniform(0, 1, (T, B, 4)) * 8 * 16) / 8).astype(np.float32)
    with torch.no_grad():
        want = {k: v.numpy() for k, v in net(torch.from_numpy(xs)).items()}
    export_and_check(net, tmp_path / "norse.onnx")
    got = Session(str(tmp_path / "norse.onnx")).run(xs)
    spikes = {name for name, ref in g.outputs.items() if ref.port == "spk"}
    assert spikes and want[next(iter(spikes))].sum() > 0
    for name in want:
        assert_close(name, got[name], want[name], spike=name in spikes)
    export_and_check(net, tmp_path / "step.onnx", mode="step")


def test_unsupported_norse_options_raise_graph_errors():
    x = torch.zeros(B, 3)
    with pytest.raises(sg.GraphError, match="method='tanh'"):
        sg.trace(norse.SequentialState(norse.LIFCell(norse.LIFParameters(method="tanh"))), x)

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = norse.LIFCell(), norse.LIFCell()

        def forward(self, x):
            z, s = self.a(x)
            return self.b(z, s)[0]  # another cell's state

    with pytest.raises(sg.GraphError, match="at test_fx_norse.py.*Norse cell.s state must be None"):
        sg.trace(Shared(), x)


def test_torch_compile_runs_the_norse_models_as_one_op():
    """Norse's models have no fused scan: under ``torch.compile`` their declared step runs as
    ``snngraph::derived_scan`` (``dt`` travels as the number it is), eager's values and gradients."""
    torch.manual_seed(6)
    model = norse.SequentialState(nn.Linear(4, 6), norse.LIFCell(), nn.Linear(6, 5), norse.LIFRecurrentCell(5, 5),
                                  nn.Linear(5, 2), norse.LICell())
    net = sg.compile(sg.trace(model, torch.zeros(B, 4)))
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager", dynamic=True)
    for steps in (5, 9):
        x = torch.rand(steps, B, 4) * 20
        want, got = net(x), compiled(x)
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=1e-6, atol=1e-6, msg=key)
        w = torch.randn_like(want["out0"])
        g_want = torch.autograd.grad((want["out0"] * w).sum(), list(net.parameters()))
        g_got = torch.autograd.grad((got["out0"] * w).sum(), list(net.parameters()))
        for a, b in zip(g_got, g_want, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
