"""The fused Norse ``LIFCell`` / ``LICell`` / ``LIFRecurrentCell`` / ``LIFBoxCell`` scan
(``runtimes/torch/scan_norse.py``) in a network, against the derived step (the unfused pipeline, itself
tested against Norse in ``test_fx_norse.py``): a hidden population whose current is private
(``lower.scratch_inputs``: the currents go over it, the input gradient over them), fixed or learnt
parameters, per-neuron values, ``retain_graph``; and the custom op ``snngraph::norse_lif_scan`` under
``torch.compile``, ``torch.export`` and ``torch.func``."""

import numpy as np
import pytest
import torch

import snngraph as sg
from snngraph.passes import default_pipeline

UNFUSED = [p for p in default_pipeline() if p.name != "fuse_state_updates"]
PARAMS = ("tau_syn_inv", "tau_mem_inv", "v_leak", "v_th", "v_reset")


def _graph(learn: tuple[str, ...], readout: str = "norse_lif", hidden: str = "norse_lif") -> sg.Graph:
    """``x (6) -> fc1 (5) -> hid (hidden) -> fc2 (3) -> out (readout)``; outputs: the readout's ports."""
    torch.manual_seed(0)
    g = sg.Graph("norse")
    values = {"tau_mem_inv": np.linspace(80, 120, 5), "tau_syn_inv": np.linspace(150, 250, 5),
              "v_leak": np.linspace(-0.1, 0.1, 5), "v_th": np.linspace(0.3, 0.5, 5), "v_reset": np.linspace(-0.2, 0, 5)}
    model, _, reset = hidden.partition(":")  # "norse_lif_box:subtract": the box cell with that reset_method
    params = sg.neuron_models()[model].params
    hid = g.neuron(model, g.linear(g.input("x", (6,)), 5, name="fc1"), name="hid", dt=0.005,
                   learn=tuple(k for k in learn if k in params), **{k: v for k, v in values.items() if k in params},
                   **({"reset_method": reset} if reset else {}))
    if readout == "norse_lif":
        out = g.neuron("norse_lif", g.linear(hid, 3, name="fc2"), name="out", learn=learn, v_th=0.2)
    else:
        out = g.neuron("norse_li", g.linear(hid, 3, name="fc2"), name="out", tau_mem_inv=np.array([50.0, 90, 130]),
                       learn=tuple(k for k in learn if k in ("tau_syn_inv", "tau_mem_inv", "v_leak")))
        g.output("spk", hid)
    for port in ("spk", "v", "i"):
        if port != "spk" or readout == "norse_lif":
            g.output(port, getattr(out, port))
    return g


def _run(net: torch.nn.Module, fn, x: torch.Tensor, retain: bool = False):
    net.zero_grad()
    out = fn(x)
    weights = {k: torch.linspace(0.5, 1.5, v.numel(), dtype=v.dtype).reshape(v.shape) for k, v in out.items()}
    loss = sum((v * weights[k]).sum() for k, v in out.items())
    loss.backward(retain_graph=retain)
    if retain:
        loss.backward()
    return {k: v.detach() for k, v in out.items()}, {k: None if p.grad is None else p.grad.clone()
                                                     for k, p in net.named_parameters()}


def _assert_same(got, want, tol=1e-10):
    (out, grads), (ref, ref_grads) = got, want
    assert ref["spk"].sum() > 0
    for key in ref:
        assert torch.equal(out[key], ref[key]), key
    assert grads.keys() == ref_grads.keys()
    for key, g in ref_grads.items():
        assert (grads[key] is None) == (g is None), key  # (the box cell's v_reset is not read by "subtract")
        if g is None:
            continue
        scale = max(1.0, float(g.abs().max()))
        torch.testing.assert_close(grads[key], g, rtol=tol, atol=tol * scale, msg=lambda m, k=key: f"{k}: {m}")


def _x() -> torch.Tensor:
    return torch.rand(40, 3, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 6


@pytest.mark.parametrize("hidden", ["norse_lif", "norse_lif_recurrent", "norse_lif_box:value",
                                    "norse_lif_box:subtract"])
@pytest.mark.parametrize("learn", [(), PARAMS, ("v_th", "v_reset")], ids=["fixed", "all", "firing"])
def test_hidden_scan_equals_the_derived_step(learn, hidden):
    """(``norse_lif_recurrent``: its dense recurrent weight is learnt too; the box cell takes no scratch.)"""
    fused = sg.compile(_graph(learn, hidden=hidden)).double()
    unfused = sg.compile(_graph(learn, hidden=hidden), passes=UNFUSED).double()
    assert fused.graph.nodes["hid"].fused and not unfused.graph.nodes["hid"].fused
    # a private current that only the spikes are read from: the scan's buffer
    assert ("hid" in fused._scratch) == (not hidden.startswith("norse_lif_box"))
    x = _x()
    _assert_same(_run(fused, fused, x), _run(unfused, unfused, x))


@pytest.mark.parametrize("learn", [(), PARAMS], ids=["fixed", "all"])
def test_leaky_integrator_readout_equals_the_derived_step(learn):
    """Norse's usual read-out, ``LICell``: the same scan without spikes."""
    fused = sg.compile(_graph(learn, "norse_li")).double()
    unfused = sg.compile(_graph(learn, "norse_li"), passes=UNFUSED).double()
    assert fused.graph.nodes["out"].fused and not unfused.graph.nodes["out"].fused
    x = _x()
    _assert_same(_run(fused, fused, x), _run(unfused, unfused, x))


def test_retain_graph_keeps_the_saved_currents():
    fused = sg.compile(_graph(())).double()
    unfused = sg.compile(_graph(()), passes=UNFUSED).double()
    x = _x()
    _assert_same(_run(fused, fused, x, retain=True), _run(unfused, unfused, x, retain=True))


@pytest.mark.parametrize("hidden", ["norse_lif", "norse_lif_recurrent", "norse_lif_box:subtract"])
def test_compiled_runs_the_custom_op_with_the_same_values(hidden):
    net = sg.compile(_graph(PARAMS, hidden=hidden)).double()
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    compiled = torch.compile(net, fullgraph=True, dynamic=True, backend=backend)
    x = _x()
    _assert_same(_run(net, compiled, x), _run(net, net, x), tol=1e-12)
    ops = [str(n.target) for g in graphs for n in g.graph.nodes if n.op == "call_function"]
    assert ops.count("snngraph.norse_lif_scan.default") == 2  # both populations, one op each


def test_export_and_func_grad_run_the_custom_op():
    net = sg.compile(_graph(PARAMS, "norse_li")).double()
    x = _x()
    dims = ({0: torch.export.Dim("T", min=2, max=128), 1: torch.export.Dim("B", min=2, max=64)},)
    program = torch.export.export(net, (x[:5],), dynamic_shapes={"args": dims})
    assert "snngraph.norse_lif_scan.default" in {str(n.target) for n in program.graph.nodes}
    got, want = program.module()(x), net(x)
    for key in want:
        assert torch.equal(got[key], want[key]), key
    params = {k: p.detach() for k, p in net.named_parameters()}

    def loss(p):
        out = torch.func.functional_call(net, p, (x,))
        return sum((v * torch.linspace(0.5, 1.5, v.numel(), dtype=v.dtype).reshape(v.shape)).sum()
                   for v in out.values())

    grads = torch.func.grad(loss)(params)
    _, ref = _run(net, net, x)
    for key, g in ref.items():
        torch.testing.assert_close(grads[key], g, rtol=1e-12, atol=1e-12 * max(1.0, float(g.abs().max())))


def test_streaming_steps_equal_the_sequence():
    """The fused scan and the per-step module (explicit state) agree step by step."""
    net = sg.compile(_graph(())).double().eval()
    x = _x()
    with torch.no_grad():
        whole = net(x)
        state = net.init_state(x.shape[1], like=x)
        steps = []
        for t in range(x.shape[0]):
            out, state = net.step(x[t], state)
            steps.append(out["v"])
    assert torch.equal(torch.stack(steps), whole["v"])


@pytest.mark.parametrize("hidden", ["norse_lif", "norse_lif_recurrent"])
@pytest.mark.parametrize("learn", [(), PARAMS], ids=["fixed", "all"])
def test_aot_compiled_scratch_scan_writes_its_input_gradient_over_the_currents(monkeypatch, learn, hidden):
    """Under AOTAutograd a scratch population's backward runs as ``*_backward_over_currents`` (the gradient
    written over its saved currents where the taus' gradients do not read them, else copied there)."""
    from snngraph.runtimes.torch import scan_norse_ops

    into, original = [], scan_norse_ops._into
    monkeypatch.setattr(scan_norse_ops, "_into", lambda c, g: into.append(c.data_ptr() == g.data_ptr()) or
                        original(c, g))
    net = sg.compile(_graph(learn, hidden=hidden)).double()
    assert "hid" in net._scratch
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")
    _assert_same(_run(net, compiled, _x()), _run(net, net, _x()), tol=1e-12)
    assert into == [not learn]  # the hidden population's; in place unless the taus learn


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # inside inductor
def test_inductor_training_step_equals_eager():
    net = sg.compile(_graph(PARAMS, hidden="norse_lif_recurrent")).double()
    compiled = torch.compile(net, fullgraph=True, dynamic=True)
    for steps in (40, 25):
        x = _x()[:steps]
        _assert_same(_run(net, compiled, x), _run(net, net, x), tol=1e-9)
