"""A compiled net under ``torch.compile(fullgraph=True)``, ``torch.export`` and ``torch.func`` (SPEC §11):
the fused scans are custom ops (``runtimes/torch/scan_ops.py``), so the whole forward and backward
trace as one graph with dynamic T and B and give eager's values.

The fast cases compile with the ``aot_eager`` backend (dynamo capture plus AOT autograd, the parts
that break graphs or recompile); one slow case runs inductor itself.
"""

import pytest
import torch
from torch._dynamo.utils import counters, guard_failures

import snngraph as sg


def _graph(name: str, hidden, readout=None, mem: str = "mem") -> sg.Graph:
    """``x (6) -> fc1 (5) -> hidden(g, current)``, then ``fc2 (3) -> readout`` if given; outputs the last
    neuron's spikes and its state ``mem``."""
    g = sg.Graph(name)
    x = g.input("x", (6,))
    o = h = hidden(g, g.linear(x, 5, name="fc1"))
    if readout is not None:
        o = readout(g, g.linear(h, 3, name="fc2"))
    g.output("spk", o)
    g.output("mem", getattr(o, mem))
    return g


def _mlp() -> sg.Graph:
    return _graph("mlp", lambda g, c: g.leaky(c, 0.9, learn_beta=True, learn_threshold=True, name="lif1"),
                  lambda g, c: g.leaky(c, 0.8, name="lif2"))


def _recurrent() -> sg.Graph:
    return _graph("rec", lambda g, c: g.rleaky(c, 0.9, learn_beta=True, name="rlif"),
                  lambda g, c: g.leaky(c, 0.8, name="out"))


def _synaptic() -> sg.Graph:
    return _graph("syn", lambda g, c: g.synaptic(c, 0.7, 0.9, learn_alpha=True, learn_beta=True, name="syn"))


def _alpha() -> sg.Graph:
    return _graph("alpha", lambda g, c: g.alpha(c, 0.9, 0.8, name="a"))


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """Every test compiles new nets of the one CompiledNet.forward: start each under dynamo's recompile limit."""
    torch._dynamo.reset()


def _unfused_recurrent() -> sg.Graph:
    """rleaky with the immediate reset (no scan) and one-to-one rleaky, plus a lapicque readout."""
    def hidden(g, c):
        h = g.rleaky(c, 0.9, reset_delay=False, learn_beta=True, name="now")
        return g.rleaky(h, 0.8, all_to_all=False, V=0.5, learn_recurrent=True, name="diag")

    return _graph("unfused_rec", hidden, lambda g, c: g.lapicque(c, beta=0.8, learn_threshold=True, name="out"))


def _user() -> sg.Graph:
    sg.neuron_model("compile_adaptive_if", params={"beta": 0.9, "threshold": 1.0, "rho": 0.8, "b": 0.2},
                    state=("mem", "a"), replace=True)(_adaptive_if)
    return _graph("user", lambda g, c: g.neuron("compile_adaptive_if", c, beta=0.85, learn=("beta", "b"), name="n1"))


def _spikingjelly() -> sg.Graph:
    """SpikingJelly's LIF (its fused scan is the custom op snngraph::sj_scan) and PLIF (the derived op)."""
    return _graph("sj", lambda g, c: g.sj_lif(c, tau=2.0, reset="soft", name="lif"),
                  lambda g, c: g.sj_plif(c, w=0.3, learn_w=True, name="out"), mem="v")


def _adaptive_if(ops, x, state, p):
    theta = p["threshold"] + p["b"] * state["a"]
    mem = p["beta"] * state["mem"] + x
    spk = ops.spike(mem - theta)
    mem = mem - ops.detach(spk) * theta
    return spk, {"mem": mem, "a": p["rho"] * state["a"] + ops.detach(spk)}


GRAPHS = {"mlp": _mlp, "rec": _recurrent, "syn": _synaptic, "alpha": _alpha, "unfused_rec": _unfused_recurrent,
          "user": _user, "sj": _spikingjelly}
FUSED = ["mlp", "rec", "syn"]
UNFUSED = ["alpha", "unfused_rec", "user", "sj"]


def _net(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return sg.compile(GRAPHS[kind]())


def _x(steps: int, batch: int) -> torch.Tensor:
    return torch.rand(steps, batch, 6) * 2


def _loss(out: dict[str, torch.Tensor]) -> torch.Tensor:
    return out["mem"].pow(2).sum() + out["spk"].sum()


def _grads(net: torch.nn.Module, fn, x: torch.Tensor) -> dict[str, torch.Tensor]:
    net.zero_grad()
    _loss(fn(x)).backward()
    return {k: p.grad.clone() for k, p in net.named_parameters()}


def _same(out, ref, tol=1e-6):
    assert out.keys() == ref.keys()
    assert torch.equal(out["spk"], ref["spk"])
    torch.testing.assert_close(out["mem"], ref["mem"], rtol=0, atol=tol)


@pytest.mark.parametrize("kind", list(GRAPHS))
def test_compile_fullgraph_forward_and_training_step_equal_eager(kind):
    net = _net(kind)
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager", dynamic=True)
    x = _x(6, 3)
    _same(compiled(x), net(x))
    got, want = _grads(net, compiled, x), _grads(net, net, x)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=1e-5, msg=key)


@pytest.mark.parametrize("kind", FUSED)
def test_compile_does_not_recompile_for_new_batch_or_length(kind):
    torch._dynamo.reset()
    counters.clear()
    guard_failures.clear()
    net = _net(kind)
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager", dynamic=True)
    for steps, batch in ((5, 3), (9, 4), (3, 7)):
        x = _x(steps, batch)
        _same(compiled(x), net(x))
        _loss(compiled(x)).backward()
    assert counters["stats"]["unique_graphs"] == 1
    assert not counters["graph_break"]
    assert not any(guard_failures.values())  # torch 2.13 leaves counters["recompiles"] empty; guards tell


@pytest.mark.parametrize("kind", FUSED + UNFUSED)
def test_export_with_dynamic_length_and_batch(kind):
    net = _net(kind)
    dims = ({0: torch.export.Dim("T", min=2, max=128), 1: torch.export.Dim("B", min=2, max=128)},)
    program = torch.export.export(net, (_x(5, 3),), dynamic_shapes={"args": dims})
    for steps, batch in ((4, 2), (11, 5)):
        x = _x(steps, batch)
        _same(program.module()(x), net(x))


@pytest.mark.parametrize("kind", list(GRAPHS))
def test_func_functional_call_and_grad_equal_autograd(kind):
    net = _net(kind)
    x = _x(6, 3)
    params = {k: p.detach().clone() for k, p in net.named_parameters()}

    def loss(p):
        return _loss(torch.func.functional_call(net, p, (x,)))

    torch.testing.assert_close(loss(params), _loss(net(x)), rtol=0, atol=0)
    got, want = torch.func.grad(loss)(params), _grads(net, net, x)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=1e-5, msg=key)


def test_eager_still_runs_the_autograd_functions():
    """Outside tracing the scans keep their eager autograd.Function (scratch buffers, in-place backward)."""
    net = _net("mlp")
    out = net(_x(4, 2).requires_grad_())
    assert type(out["spk"].grad_fn).__name__ == "_LeakyScanBackward"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # inside inductor
@pytest.mark.parametrize("kind", FUSED)
def test_inductor_training_step_equals_eager(kind):
    torch._dynamo.reset()
    counters.clear()
    guard_failures.clear()
    net = _net(kind)
    compiled = torch.compile(net, fullgraph=True, dynamic=True)
    for steps, batch in ((5, 3), (8, 4)):
        x = _x(steps, batch)
        _same(compiled(x), net(x))
        got, want = _grads(net, compiled, x), _grads(net, net, x)
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-5)  # inductor reorders sums
    assert counters["stats"]["unique_graphs"] == 1


@pytest.mark.parametrize("kind", UNFUSED)
def test_unfused_neurons_run_as_one_op(kind):
    """Models without a scan run their derived step as ``snngraph::derived_scan`` under compilation:
    one graph for every T and B, eager's values and gradients (the backward recomputes the loop)."""
    torch._dynamo.reset()
    counters.clear()
    guard_failures.clear()
    net = _net(kind)
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager", dynamic=True)
    for steps, batch in ((5, 3), (9, 4), (3, 7)):
        x = _x(steps, batch)
        _same(compiled(x), net(x))
        got, want = _grads(net, compiled, x), _grads(net, net, x)
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=1e-6, atol=1e-6, msg=key)
    assert counters["stats"]["unique_graphs"] == 1
    assert not counters["graph_break"]
    assert not any(guard_failures.values())


def test_callable_surrogate_keeps_the_unrolled_loop():
    """A plain-callable ``spike_grad`` cannot be described to the op: the loop unrolls, values agree."""
    net = sg.compile(_graph("callable", lambda g, c: g.alpha(c, 0.9, 0.8, spike_grad=lambda v: (v > 0).to(v.dtype),
                                                           name="a")))
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager", dynamic=True)
    x = _x(4, 3)
    _same(compiled(x), net(x))


@pytest.mark.parametrize("kind", list(GRAPHS))
def test_autocast_compiled_equals_eager(kind):
    """Under CPU bfloat16 autocast the synapses run in bfloat16 and the neurons in float32 with autocast
    off, in eager runs and inside the compiled graph's custom ops alike: identical values and gradients."""
    net = _net(kind)
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager", dynamic=True)
    x = _x(5, 3)
    runs = []
    for fn in (net, compiled):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = fn(x)
            loss = out["mem"].pow(2).mean() + out["spk"].mean()
        net.zero_grad()
        loss.backward()
        runs.append((out, {k: p.grad.clone() for k, p in net.named_parameters()}))
    (out, grads), (ref, ref_grads) = runs
    assert out["mem"].dtype == torch.float32
    _same(out, ref, tol=0)
    for key in ref_grads:
        torch.testing.assert_close(grads[key], ref_grads[key], rtol=0, atol=0, msg=key)
