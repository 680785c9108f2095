"""ONNX export (sequence mode) vs the eager torch runtime, for every node kind of the IR."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx_helpers import compare, quantise

import snngraph as sg


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Default initial weights come from torch's global RNG: seed it so every test is reproducible."""
    torch.manual_seed(0)


def f32(start: float, stop: float, num: int) -> np.ndarray:
    return np.linspace(start, stop, num, dtype=np.float32)


SHAPES = ((1, 1), (1, 3), (6, 1), (9, 4))


def mlp(seed_beta: float = 0.9) -> sg.Graph:
    g = sg.Graph("mlp")
    x = g.input("x", shape=(12,))
    s1 = g.leaky(g.linear(x, 16, name="fc1"), beta=seed_beta, name="lif1")
    o = g.leaky(g.linear(s1, 5, name="fc2"), beta=seed_beta, name="lif2")
    g.output("spk", o)
    g.output("mem", o.mem)
    g.output("hidden", s1)
    return g


def test_mlp_every_time_and_batch_size(tmp_path):
    out = compare(quantise(mlp()), tmp_path, SHAPES)
    assert out["hidden"].sum() > 0  # the comparison saw spikes


def test_mlp_default_init_weights(tmp_path):
    """Unquantised float32 weights: spikes still equal, membranes within 1e-5."""
    compare(mlp(), tmp_path, ((8, 3),), scale=3.0)


def test_conv2d_pooling_batch_norm(tmp_path):
    g = sg.Graph("cnn")
    x = g.input("img", shape=(2, 8, 8))
    h = g.conv2d(x, 4, 3, padding=1, name="c1")
    h = g.batch_norm(h, running_mean=f32(-0.2, 0.2, 4), running_var=f32(0.5, 2.0, 4), weight=f32(1.5, 1.5, 4),
                     bias_value=f32(0.25, 0.25, 4), name="bn")
    s = g.leaky(g.relu(h), beta=0.8, name="l1")
    p = g.max_pool2d(s, 2, name="mp")
    c = g.conv2d(p, 3, (2, 3), stride=(1, 2), padding=(1, 0), dilation=(1, 1), groups=1, name="c2")
    a = g.avg_pool2d(c, 2, stride=1, padding=1, name="ap")
    f = g.flatten(a, name="flat")
    o = g.leaky(g.linear(f, 6, name="fc"), beta=0.9, name="l2")
    g.output("spk", o)
    g.output("mem", o.mem)
    g.output("pooled", p)
    compare(quantise(g), tmp_path, ((1, 1), (5, 3)))


def test_conv1d_pooling_grouped_flatten_range(tmp_path):
    g = sg.Graph("conv1")
    x = g.input("x", shape=(4, 16))
    h = g.conv1d(x, 6, 3, stride=2, padding=1, dilation=2, groups=2, name="c1")
    s = g.synaptic(h, alpha=0.7, beta=0.85, name="syn")
    m = g.max_pool1d(s, 2, padding=1, name="mp")
    a = g.avg_pool1d(m, 2, stride=1, name="ap")
    bn = g.batch_norm(a, affine=False, running_var=f32(0.5, 0.5, 6), name="bn")
    f = g.flatten(bn, start_dim=0, end_dim=1)
    o = g.leaky_integrator(g.linear(f, 3, name="fc"), beta=0.9, name="li")
    g.output("out", o)
    g.output("syn", s.syn)
    compare(quantise(g), tmp_path, ((1, 2), (7, 3)))


def test_add_concat_scale_dropout_relu_and_nd_linear(tmp_path):
    g = sg.Graph("misc")
    x = g.input("x", shape=(3, 8))
    y = g.input("y", shape=(3, 8))
    a = g.linear(x, 8, name="la")  # linear over the last of two per-step dims: MatMul path
    b = g.linear(y, 8, bias=False, name="lb")
    s = g.add(a, b, g.scale(x, f32(0.5, 1.5, 8), name="sc"), name="sum")
    c = g.concat(g.dropout(s, 0.3, name="drop"), g.relu(y, name="r"), dim=-1, name="cat")
    n = g.leaky(c, beta=f32(0.5, 1.0, 16), threshold=f32(0.5, 1.5, 16), name="lif")
    g.output("spk", n)
    g.output("mem", n.mem)
    compare(quantise(g), tmp_path, ((1, 1), (6, 2)))


def test_feed_forward_delays(tmp_path):
    g = sg.Graph("delays")
    x = g.input("x", shape=(6,))
    s = g.leaky(g.linear(x, 6, name="fc"), beta=0.9, name="l")
    d1 = g.delay(s, steps=1, name="d1")
    d3 = g.delay(g.linear(s, 6, name="fc2"), steps=3, name="d3")
    o = g.leaky(g.add(d1, d3, x, name="sum"), beta=0.7, name="o")
    g.output("spk", o)
    g.output("d3", d3)
    compare(quantise(g), tmp_path, ((1, 1), (2, 2), (3, 1), (8, 3)))


@pytest.mark.parametrize("steps", [1, 3])
def test_feedback_loop(tmp_path, steps):
    g = sg.Graph("loop")
    x = g.input("x", shape=(5,))
    fb = g.feedback((5,), steps=steps, name="fb")
    s = g.leaky(g.add(g.linear(x, 5, name="a"), fb, name="sum"), beta=0.8, name="l")
    g.connect(fb, g.linear(s, 5, name="b"))
    o = g.synaptic(g.linear(s, 3, name="out"), alpha=0.5, beta=0.9, name="o")
    g.output("spk", s)
    g.output("o", o)
    g.output("fb", fb)
    out = compare(quantise(g), tmp_path, ((1, 1), (7, 2)), scale=3.0)
    assert out["spk"].sum() > 0


def test_loop_without_outside_input(tmp_path):
    """A loop driven only by a bias: the Scan takes its number of steps from the graph input."""
    g = sg.Graph("self_driven")
    x = g.input("x", shape=(3,))
    fb = g.feedback((4,), name="fb")
    s = g.leaky(g.linear(fb, 4, bias_value=f32(0.4, 0.4, 4), name="fc"), beta=0.9, name="l")
    g.connect(fb, s)
    g.output("spk", s)
    g.output("echo", g.relu(x, name="r"))
    out = compare(quantise(g), tmp_path, ((1, 1), (7, 2)))
    assert out["spk"].sum() > 0


def _no_delay(kw: dict) -> dict:
    """Alpha and Lapicque have no reset_delay option (as in snnTorch): the reset is always delayed."""
    return {k: v for k, v in kw.items() if k != "reset_delay"}


NEURONS = {
    "leaky": lambda g, h, kw: g.leaky(h, beta=f32(0.6, 1.0, 8), **kw),
    "synaptic": lambda g, h, kw: g.synaptic(h, alpha=0.6, beta=f32(0.7, 0.95, 8), **kw),
    "alpha": lambda g, h, kw: g.alpha(h, alpha=0.9, beta=0.6, **_no_delay(kw)),
    "lapicque": lambda g, h, kw: g.lapicque(h, beta=0.85, **_no_delay(kw)),
    "lapicque_rc": lambda g, h, kw: g.lapicque(h, R=f32(2.0, 4.0, 8), C=0.5, time_step=0.5, **_no_delay(kw)),
    "rleaky": lambda g, h, kw: g.rleaky(h, beta=0.85, **kw),
    "rleaky_v": lambda g, h, kw: g.rleaky(h, beta=0.85, all_to_all=False, V=f32(-0.5, 0.5, 8), **kw),
    "rsynaptic": lambda g, h, kw: g.rsynaptic(h, alpha=0.5, beta=0.8, **kw),
    "rsynaptic_v": lambda g, h, kw: g.rsynaptic(h, alpha=0.5, beta=0.8, all_to_all=False, V=0.5, **kw),
    "integrate_fire": lambda g, h, kw: g.integrate_fire(h, **kw),
    "adaptive_leaky": lambda g, h, kw: g.adaptive_leaky(h, beta=0.9, rho=f32(0.5, 0.95, 8),
                                                        adaptation=0.5, **kw),
}


def neuron_graph(kind: str, reset: str, reset_delay: bool, graded, threshold) -> sg.Graph:
    g = sg.Graph(f"n_{kind}")
    x = g.input("x", shape=(8,))
    kw = dict(reset_mechanism=reset, reset_delay=reset_delay, graded_spikes_factor=graded, threshold=threshold,
              learn_threshold=True)
    n = NEURONS[kind](g, g.linear(x, 8, name="fc"), kw)
    for port in n.node.ports:
        g.output(port, getattr(n, port))
    if "spk" in n.node.ports:
        g.output("next", g.leaky(g.linear(n, 4, name="fc2"), beta=0.9, name="post"))
    return g


VARIANTS = [(kind, reset, delay) for kind in sorted(NEURONS) for reset in ("subtract", "zero", "none")
            for delay in (True, False) if delay or not kind.startswith(("alpha", "lapicque"))]


@pytest.mark.parametrize(("kind", "reset", "reset_delay"), VARIANTS)
def test_every_neuron_reset_variant(tmp_path, kind, reset, reset_delay):
    graded = 1.0 if reset_delay else f32(0.5, 2.0, 8)
    threshold = 1.0 if reset == "subtract" else f32(0.75, 1.25, 8)
    g = quantise(neuron_graph(kind, reset, reset_delay, graded, threshold))
    compare(g, tmp_path, ((1, 1), (9, 3)), scale=3.0)


def test_leaky_integrator_readout_and_graded_scalar(tmp_path):
    g = sg.Graph("li")
    x = g.input("x", shape=(7,))
    s = g.leaky(g.linear(x, 7, name="fc"), beta=0.95, graded_spikes_factor=0.5, learn_beta=True, name="lif")
    o = g.leaky_integrator(g.linear(s, 2, name="ro"), beta=np.array([0.5, 0.9], np.float32), name="li")
    g.output("spk", s)
    g.output("out", o)
    compare(quantise(g), tmp_path, ((1, 1), (5, 2)), scale=3.0)


def test_fixed_num_steps_model(tmp_path):
    import onnx
    from onnx_helpers import eager, inputs_for

    from snngraph.runtimes.onnx import Session

    g = quantise(mlp())
    path = tmp_path / "fixed.onnx"
    model = sg.export_onnx(g, path, num_steps=4)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_value == 4 and dims[1].dim_param == "B"
    onnx.checker.check_model(model, full_check=True)
    xs = inputs_for(g, 4, 2)
    got, want = Session(path).run(xs), eager(g, xs)
    assert np.array_equal(got["spk"], want["spk"]) and np.allclose(got["mem"], want["mem"], rtol=1e-5, atol=1e-6)
