"""snngraph -> NIR -> file -> snngraph round trips: exact outputs for every mapped node kind."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import snngraph as sg

nir = pytest.importorskip("nir")


def roundtrip(g: sg.Graph, tmp_path, dt: float = 1.0, method: str = "euler") -> tuple[sg.Graph, object]:
    path = tmp_path / f"{g.name}.nir"
    exported = sg.to_nir(g, dt=dt, method=method, path=path)
    return sg.from_nir(path), exported


def assert_same_outputs(a: sg.Graph, b: sg.Graph, steps: int = 16, batch: int = 3, gain: float = 2.0,
                        seed: int = 0) -> dict[str, torch.Tensor]:
    """Run both graphs on one random input: spikes equal, membranes within 1e-6; some spikes happen."""
    (inp,) = a.inputs.values()
    torch.manual_seed(seed)
    xs = torch.rand(steps, batch, *inp.shape) * gain
    with torch.no_grad():
        out_a, out_b = sg.compile(a).eval()(xs), sg.compile(b).eval()(xs)
    assert list(out_a) == list(out_b)
    for key, ref in a.outputs.items():
        if a.type_of(ref).spike:
            assert torch.equal(out_a[key], out_b[key]), key
            assert out_a[key].sum() > 0, f"{key}: no spikes, the test would prove little"
        else:
            torch.testing.assert_close(out_b[key], out_a[key], atol=1e-6, rtol=0)
    return out_a


def param_shapes(g: sg.Graph) -> dict[str, tuple[int, ...]]:
    return {k: p.shape for k, p in g.params().items()}


def test_affine_lif_subtract_delayed_reset_per_neuron_params(tmp_path):
    g = sg.Graph("lif")
    x = g.input("x", (12,))
    beta = np.linspace(0.5, 0.95, 16).astype(np.float32)
    thr = np.linspace(0.5, 1.5, 16).astype(np.float32)
    s = g.leaky(g.linear(x, 16, name="fc"), beta=beta, threshold=thr, name="lif")
    g.output("spk", s)
    g.output("mem", s.mem)
    g2, exported = roundtrip(g, tmp_path)
    lif = exported.nodes["lif"]
    assert isinstance(lif, nir.LIF) and isinstance(exported.nodes["fc"], nir.Affine)
    assert lif.metadata["reset_mechanism"] == "subtract" and lif.metadata["reset_delay"]
    np.testing.assert_allclose(lif.tau, 1.0 / (1 - beta.astype(np.float64)))
    assert param_shapes(g2) == param_shapes(g)
    np.testing.assert_array_equal(g2.nodes["lif"].beta.value, beta)
    assert_same_outputs(g, g2)


@pytest.mark.parametrize("method", ["euler", "exp"])
def test_linear_lif_zero_reset_now_exp_and_euler(tmp_path, method):
    g = sg.Graph("lif0")
    x = g.input("x", (10,))
    s = g.leaky(g.linear(x, 8, bias=False, name="fc"), beta=0.8, reset_mechanism="zero", reset_delay=False,
                name="lif")
    g.output("spk", s)
    g.output("mem", s.mem)
    g2, exported = roundtrip(g, tmp_path, dt=0.25, method=method)
    assert isinstance(exported.nodes["fc"], nir.Linear)
    expected_tau = 0.25 / 0.2 if method == "euler" else -0.25 / np.log(np.float64(np.float32(0.8)))
    np.testing.assert_allclose(exported.nodes["lif"].tau, expected_tau, rtol=1e-6)
    assert exported.nodes["lif"].metadata["discretization"] == method
    node = g2.nodes["lif"]
    assert (node.reset_mechanism, node.reset_delay, node.beta.shape) == ("zero", False, ())
    assert_same_outputs(g, g2)


def test_conv2d_avgpool_flatten_integrate_fire(tmp_path):
    g = sg.Graph("conv")
    x = g.input("x", (2, 8, 8))
    c = g.conv2d(x, 4, 3, padding=1, stride=1, name="conv")
    p = g.avg_pool2d(c, 2, name="pool")
    s = g.integrate_fire(g.linear(g.flatten(p, name="flat"), 6, name="fc"), threshold=2.0, name="if1")
    g.output("spk", s)
    g.output("mem", s.mem)
    g2, exported = roundtrip(g, tmp_path, dt=0.5)
    assert isinstance(exported.nodes["if1"], nir.IF)
    assert isinstance(exported.nodes["pool"], nir.AvgPool2d)
    assert_same_outputs(g, g2)


def test_grouped_non_square_conv_survives_the_file(tmp_path):
    """nir 1.0 mis-types grouped and non-square convolutions; export and import type them themselves."""
    g = sg.Graph("grouped")
    x = g.input("x", (4, 6, 5))
    c = g.conv2d(x, 4, (3, 2), groups=2, padding=(1, 0), name="conv")
    s = g.leaky(g.flatten(c, name="flat"), beta=0.7, name="lif")
    g.output("spk", s)
    g2, exported = roundtrip(g, tmp_path)
    assert list(exported.nodes["conv"].output_type["output"]) == [4, 6, 4]
    assert_same_outputs(g, g2)


def test_conv1d_synaptic_leaky_integrator(tmp_path):
    g = sg.Graph("c1")
    x = g.input("x", (3, 10))
    c = g.conv1d(x, 2, 3, stride=2, bias=False, name="conv")
    alpha = np.full(8, 0.6, np.float32)
    s = g.synaptic(g.flatten(c, name="flat"), alpha=alpha, beta=0.85, name="syn")
    li = g.leaky_integrator(g.linear(s, 4, name="fc"), beta=0.9, name="li")
    g.output("spk", s)
    g.output("syn_current", s.syn)
    g.output("out", li)
    g2, exported = roundtrip(g, tmp_path, dt=1e-3, method="exp")
    assert isinstance(exported.nodes["syn"], nir.CubaLIF) and isinstance(exported.nodes["li"], nir.LI)
    assert isinstance(exported.nodes["conv"], nir.Conv1d)
    assert param_shapes(g2)["syn.alpha"] == (8,)
    assert_same_outputs(g, g2)


def test_scale_delay_threshold_and_reset_none(tmp_path):
    g = sg.Graph("misc")
    x = g.input("x", (6,))
    h = g.scale(g.linear(x, 6, name="fc"), np.arange(1, 7, dtype=np.float32) / 3, name="sc")
    d = g.delay(h, steps=2, name="dl")
    thr = g.leaky(d, beta=0.0, reset_mechanism="none", threshold=0.3, name="thr")
    s = g.leaky(g.linear(thr, 5, name="fc2"), beta=0.9, reset_mechanism="none", name="lif")
    g.output("spk", s)
    g.output("gate", thr)
    g2, exported = roundtrip(g, tmp_path, dt=0.1)
    assert isinstance(exported.nodes["thr"], nir.Threshold)
    np.testing.assert_allclose(exported.nodes["dl"].delay, 0.2)
    assert g2.nodes["dl"].steps == 2 and g2.nodes["sc"].factor.shape == (6,)
    assert_same_outputs(g, g2)


def test_unleaky_nodes_become_if_and_integrator(tmp_path):
    g = sg.Graph("unleaky")
    x = g.input("x", (5,))
    s = g.leaky(g.linear(x, 4, name="fc"), beta=1.0, threshold=1.5, name="lif")
    m = g.leaky_integrator(g.linear(s, 3, name="fc2"), beta=1.0, name="acc")
    g.output("spk", s)
    g.output("acc", m)
    g2, exported = roundtrip(g, tmp_path, dt=0.2)
    assert isinstance(exported.nodes["lif"], nir.IF) and isinstance(exported.nodes["acc"], nir.I)
    assert_same_outputs(g, g2)


@pytest.mark.parametrize("kind", ["rleaky", "rleaky_v", "rsynaptic"])
def test_recurrent_neurons_export_as_snntorch_subgraphs(tmp_path, kind):
    torch.manual_seed(1)
    g = sg.Graph("rnn")
    x = g.input("x", (7,))
    h = g.linear(x, 6, name="fc")
    if kind == "rleaky":
        s = g.rleaky(h, beta=0.8, name="rec")
    elif kind == "rleaky_v":
        s = g.rleaky(h, beta=0.8, all_to_all=False, V=np.linspace(-0.5, 0.5, 6).astype(np.float32), name="rec")
    else:
        s = g.rsynaptic(h, alpha=0.7, beta=0.8, reset_delay=False, name="rec")
    g.output("spk", s)
    g.output("mem", s.mem)
    g2, exported = roundtrip(g, tmp_path)
    sub = exported.nodes["rec"]
    assert isinstance(sub, nir.NIRGraph) and set(sub.nodes) == {"input", "lif", "w_rec", "output"}
    assert g2.nodes["rec"].op == g.nodes["rec"].op and param_shapes(g2) == param_shapes(g)
    assert_same_outputs(g, g2)


def test_feedback_loop_exports_as_delay_in_a_cycle(tmp_path):
    g = sg.Graph("loop")
    x = g.input("x", (4,))
    fb = g.feedback((4,), name="fb")
    h = g.add(g.linear(x, 4, name="a"), fb, name="sum")
    s = g.leaky(h, beta=0.8, name="lif")
    g.connect(fb, g.linear(s, 4, name="b"))
    g.output("spk", s)
    g2, exported = roundtrip(g, tmp_path)
    assert isinstance(exported.nodes["fb"], nir.Delay) and "sum" not in exported.nodes
    assert {("a", "lif"), ("fb", "lif"), ("lif", "b"), ("b", "fb")} <= set(exported.edges)
    assert_same_outputs(g, g2)


def test_fan_in_and_dropout_become_summed_edges(tmp_path):
    g = sg.Graph("fanin")
    x = g.input("x", (5,))
    h = g.add(g.linear(x, 4, name="a"), g.linear(x, 4, name="b"), name="sum")
    s = g.leaky(g.dropout(h, 0.2, name="drop"), beta=0.9, name="lif")
    g.output("spk", s)
    g2, exported = roundtrip(g, tmp_path)
    assert {("a", "lif"), ("b", "lif")} <= set(exported.edges)
    assert g2.nodes["lif_sum"].op == "add"
    assert_same_outputs(g, g2)


def test_graded_spikes_export_as_a_scale_after_the_neuron(tmp_path):
    torch.manual_seed(0)  # the weights (this graph's output spikes only for some draws)
    g = sg.Graph("graded")
    x = g.input("x", (5,))
    s = g.leaky(g.linear(x, 4, name="fc"), beta=0.9, graded_spikes_factor=np.float32(0.5), reset_delay=False,
                name="lif")
    o = g.synaptic(g.linear(s, 3, name="fc2"), alpha=0.5, beta=0.9, graded_spikes_factor=3.0, name="syn")
    g.output("spk", o)
    g.output("hidden", s)
    g.output("mem", s.mem)
    g2, exported = roundtrip(g, tmp_path)
    assert isinstance(exported.nodes["lif_graded"], nir.Scale)
    assert {("lif", "lif_graded"), ("lif_graded", "fc2"), ("lif", "mem"), ("syn_graded", "spk")} <= set(exported.edges)
    assert g2.name == "graded"
    out = assert_same_outputs(g, g2, gain=3.0)
    assert set(out["hidden"].unique().tolist()) == {0.0, 0.5}


def test_dt_and_method_are_stored_and_can_be_overridden(tmp_path):
    g = sg.Graph("dt")
    x = g.input("x", (3,))
    g.output("spk", g.leaky(g.linear(x, 3, name="fc"), beta=0.9, name="lif"))
    path = tmp_path / "dt.nir"
    sg.to_nir(g, dt=0.01, method="exp", path=path)
    assert nir.read(path).metadata["dt"] == 0.01
    assert sg.from_nir(path).nodes["lif"].beta.item() == np.float32(0.9)
    beta_euler = sg.from_nir(path, method="euler").nodes["lif"].beta.item()
    assert beta_euler == pytest.approx(1 - 0.01 / (-0.01 / np.log(0.9)), rel=1e-6)
    beta_half = sg.from_nir(path, dt=0.005).nodes["lif"].beta.item()
    assert beta_half == pytest.approx(np.sqrt(0.9), rel=1e-6)


@pytest.mark.parametrize("build, match", [
    (lambda g, x: g.max_pool2d(g.conv2d(x, 2, 3, name="c"), 2, name="mp"), "max_pool2d 'mp'"),
    (lambda g, x: g.relu(g.conv2d(x, 2, 3, name="c"), name="act"), "relu 'act'"),
    (lambda g, x: g.rleaky(g.flatten(x), beta=0.9, graded_spikes_factor=2.0, name="g1"), "rleaky 'g1'"),
    (lambda g, x: g.leaky(g.leaky(x, beta=0.9, name="l1").mem, beta=0.9, name="l2"), "l1.mem"),
    (lambda g, x: g.leaky(x, beta=np.array([[[0.5]], [[1.0]]], np.float32), name="half"), "half"),
])
def test_export_errors_name_the_node(build, match):
    g = sg.Graph("bad")
    x = g.input("x", (2, 6, 6))
    g.output("y", build(g, x))
    with pytest.raises(sg.GraphError, match=match.replace(".", r"\.")):
        sg.to_nir(g, dt=1.0)


def test_compiled_net_exports_its_trained_parameters():
    g = sg.Graph("net")
    x = g.input("x", (3,))
    g.output("spk", g.leaky(g.linear(x, 2, name="fc"), beta=0.9, name="lif"))
    net = sg.compile(g)
    with torch.no_grad():
        net.fc.weight.fill_(0.25)
    exported = sg.to_nir(net, dt=1.0)
    np.testing.assert_array_equal(exported.nodes["fc"].weight, 0.25)
    with pytest.raises(sg.GraphError, match="got str"):
        sg.to_nir("net", dt=1.0)


def test_bad_dt_and_method():
    g = sg.Graph("g")
    x = g.input("x", (2,))
    g.output("y", g.leaky(x, beta=0.5))
    with pytest.raises(sg.GraphError, match="dt"):
        sg.to_nir(g, dt=0.0)
    with pytest.raises(sg.GraphError, match="method"):
        sg.to_nir(g, dt=1.0, method="rk4")


NIR_OPS = ("leaky", "linear", "scale", "add", "delay", "flatten", "dropout", "conv1d", "conv2d", "avg_pool2d",
           "feedback", "synaptic", "rleaky", "rsynaptic", "integrate_fire", "leaky_integrator")


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(sg.testing.random_graphs(max_nodes=6, ops=NIR_OPS), st.sampled_from(["euler", "exp"]))
def test_random_graphs_round_trip_exactly_or_name_the_node(g, method):
    try:
        exported = sg.to_nir(g, dt=0.5, method=method)
    except sg.GraphError as err:
        assert any(f"'{name}" in str(err) for name in g.nodes), str(err)
        assume(False)
    with tempfile.TemporaryDirectory() as tmp:
        nir.write(Path(tmp) / "g.nir", exported)
        g2 = sg.from_nir(Path(tmp) / "g.nir")
    sg.testing.assert_graphs_equivalent(g, g2, atol=1e-6, rtol=1e-6)
