"""The linear layer as the custom op ``snngraph::linear`` (``runtimes/torch/linear_op.py``): what the
compiled net's ``Linear`` modules run under ``torch.compile`` / ``torch.export`` / ``torch.func``."""

import pytest
import torch
import torch.nn.functional as F
from torch._dynamo.utils import counters, guard_failures

import snngraph as sg
from snngraph.runtimes.torch.linear_op import linear_op


def _spikes(shape, graded):
    return (torch.rand(shape, dtype=torch.float64) > 0.6).to(torch.float64) * graded


def _grads(fn, x, w, b):
    leaves = [t.detach().clone().requires_grad_() for t in (x, w, b)]
    y = fn(*leaves)
    (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)).sum().backward()
    return y.detach(), [t.grad for t in leaves]


@pytest.mark.parametrize("graded", [None, 1.0, 0.5, "per-neuron"])
def test_linear_op_equals_f_linear(graded):
    torch.manual_seed(0)
    g = torch.rand(7, dtype=torch.float64) + 0.5 if graded == "per-neuron" else graded
    x = torch.randn(4, 3, 7, dtype=torch.float64) if graded is None else _spikes((4, 3, 7), g)
    w, b = torch.randn(5, 7, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    g_tensor = None if g is None else torch.as_tensor(g, dtype=torch.float64)
    y, grads = _grads(lambda x, w, b: linear_op(x, w, b, g_tensor), x, w, b)
    y_ref, grads_ref = _grads(F.linear, x, w, b)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    for got, want in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_spike_fed_linear_op_saves_bool_spikes():
    x = _spikes((6, 2, 9), 1.0).float().requires_grad_()
    w = torch.randn(4, 9, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        linear_op(x, w, None, torch.ones(()))
    assert any(t.dtype == torch.bool and t.numel() == x.numel() for t in saved)
    assert not any(t.is_floating_point() and t.numel() == x.numel() for t in saved)


def test_linear_op_without_bias_and_no_grad():
    x, w = torch.randn(3, 4), torch.randn(2, 4)
    torch.testing.assert_close(linear_op(x, w, None), F.linear(x, w), rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(linear_op(x, w, None, torch.ones(())), F.linear(x, w), rtol=0, atol=0)


def test_linear_op_autocast_follows_f_linear():
    torch.manual_seed(1)
    x, w, b = torch.randn(5, 6), torch.randn(3, 6), torch.randn(3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, grads = _grads(linear_op, x, w, b)
        y_ref, grads_ref = _grads(F.linear, x, w, b)
    assert y.dtype == y_ref.dtype == torch.bfloat16
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    for got, want in zip(grads, grads_ref, strict=True):
        assert got.dtype == want.dtype
        torch.testing.assert_close(got, want, rtol=1e-2, atol=1e-2)


def test_linear_op_under_func_grad():
    x, w, b = torch.randn(4, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64), torch.randn(3)
    b = b.double()
    got = torch.func.grad(lambda w: linear_op(x, w, b).pow(2).sum())(w)
    want = torch.func.grad(lambda w: F.linear(x, w, b).pow(2).sum())(w)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def _net() -> torch.nn.Module:
    g = sg.Graph("mlp")
    x = g.input("x", (3,))
    h = g.leaky(g.linear(x, 4, name="fc1"), 0.9, graded_spikes_factor=0.5, learn_graded_spikes_factor=True, name="lif1")
    o = g.leaky(g.linear(h, 2, name="fc2"), 0.8, name="lif2")
    g.output("spk", o)
    g.output("mem", o.mem)
    torch.manual_seed(0)
    return sg.compile(g)


def test_compiled_spike_fed_linear_with_learnt_graded_factor_equals_eager():
    net = _net()
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager", dynamic=True)
    x = torch.rand(6, 3, 3) * 3
    grads = []
    for fn in (net, compiled):
        net.zero_grad()
        out = fn(x)
        (out["mem"].pow(2).sum() + out["spk"].sum()).backward()
        grads.append({k: p.grad.clone() for k, p in net.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    assert grads[0]["lif1.graded_spikes_factor"].abs().sum() > 0
    for key in grads[0]:
        torch.testing.assert_close(grads[1][key], grads[0][key], rtol=0, atol=1e-6, msg=key)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # inside inductor
def test_inductor_does_not_recompile_when_rows_cross_4096():
    """The bias gradient sums over T*B rows inside the op: inductor no longer guards on T*B > 4096."""
    torch._dynamo.reset()
    counters.clear()
    guard_failures.clear()
    net = _net()
    compiled = torch.compile(net, fullgraph=True, dynamic=True)
    for steps, batch in ((40, 128), (20, 128), (20, 64), (3, 5)):
        out = compiled(torch.rand(steps, batch, 3))
        out["mem"].sum().backward()
    assert counters["stats"]["unique_graphs"] == 1
    assert not any(guard_failures.values())
