"""Compile-and-run checks of the IR: a Linear + Leaky graph matches snnTorch's Leaky on the same
weights, and wrong inputs at run time raise ``GraphError`` naming the input, expected and actual shape."""

import numpy as np
import pytest
import snntorch as snn
import torch
from hypothesis import HealthCheck, given, settings

import snngraph as sg
from snngraph.testing import random_graphs, spike_inputs


def linear_leaky(reset="subtract", beta=0.9, threshold=1.0, reset_delay=True, graded=1.0):
    torch.manual_seed(0)
    fc = torch.nn.Linear(6, 5)
    g = sg.Graph("ll")
    x = g.input("x", (6,))
    h = g.linear(x, 5, weight=fc.weight, bias_value=fc.bias, name="fc")
    s = g.leaky(h, beta, threshold=threshold, reset_mechanism=reset, reset_delay=reset_delay,
                graded_spikes_factor=graded, learn_beta=True, name="lif")
    g.output("spk", s)
    g.output("mem", s.mem)
    lif = snn.Leaky(beta=torch.as_tensor(beta), threshold=threshold, reset_mechanism=reset, reset_delay=reset_delay,
                    graded_spikes_factor=graded, learn_beta=True)
    return g, fc, lif


def run_snntorch(fc, lif, xs):
    mem = lif.init_leaky()
    spks, mems = [], []
    for x in xs:
        spk, mem = lif(fc(x), mem)
        spks.append(spk)
        mems.append(mem)
    return torch.stack(spks), torch.stack(mems)


@pytest.mark.parametrize(("reset", "beta", "threshold", "reset_delay", "graded"), [
    ("subtract", 0.9, 1.0, True, 1.0),
    ("zero", 0.8, 0.5, True, 1.0),
    ("none", 0.95, 1.0, True, 1.0),
    ("subtract", 0.9, 0.7, False, 2.0),
    ("subtract", [0.5, 0.7, 0.9, 0.95, 1.0], 1.0, True, 1.0),
])
def test_linear_leaky_matches_snntorch(reset, beta, threshold, reset_delay, graded):
    beta = np.asarray(beta, np.float32)
    g, fc, lif = linear_leaky(reset, beta, threshold, reset_delay, graded)
    net = sg.compile(g)
    xs = torch.rand(20, 3, 6, generator=torch.Generator().manual_seed(1)) * 2
    out = net(xs)
    spk, mem = run_snntorch(fc, lif, xs)
    assert spk.sum() > 0
    torch.testing.assert_close(out["spk"], spk, atol=0, rtol=0)
    torch.testing.assert_close(out["mem"], mem, atol=1e-6, rtol=1e-6)
    # gradients (atan surrogate, BPTT) of the same loss agree as well
    w = torch.randn(mem.shape, generator=torch.Generator().manual_seed(2))
    ((out["mem"] + out["spk"]) * w).sum().backward()
    ((mem + spk) * w).sum().backward()
    torch.testing.assert_close(net.fc.weight.grad, fc.weight.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(net.lif.beta.grad.reshape(lif.beta.grad.shape), lif.beta.grad, atol=1e-4, rtol=1e-4)


def test_default_init_matches_torch_linear_under_the_same_seed():
    torch.manual_seed(3)
    g = sg.Graph("init")
    g.output("y", g.linear(g.input("x", (7,)), 4, name="fc"))
    torch.manual_seed(3)
    fc = torch.nn.Linear(7, 4)
    np.testing.assert_array_equal(g.nodes["fc"].weight.value, fc.weight.detach().numpy())
    np.testing.assert_array_equal(g.nodes["fc"].bias.value, fc.bias.detach().numpy())


def test_step_matches_forward_and_parameter_names():
    g, _, _ = linear_leaky()
    net = sg.compile(g)
    assert {"fc.weight", "fc.bias", "lif.beta"} <= set(net.state_dict())
    xs = torch.rand(8, 2, 6) * 2
    out = net(xs)
    state = net.init_state(2)
    for t in range(8):
        o, state = net.step(xs[t], state)
        torch.testing.assert_close(o["mem"], out["mem"][t])
    assert net.to_graph() == g


@pytest.mark.parametrize(("shape", "actual"), [
    ((8, 2, 5), "(8, 2, 5)"),        # wrong feature size
    ((8, 6), "(8, 6)"),              # missing batch (or time) dim
    ((8, 2, 6, 1), "(8, 2, 6, 1)"),  # extra dim
])
def test_wrong_input_shape_names_input_expected_and_actual(shape, actual):
    g, _, _ = linear_leaky()
    net = sg.compile(g)
    with pytest.raises(sg.GraphError) as info:
        net(torch.zeros(shape))
    message = str(info.value)
    assert "input 'x'" in message and "(T, B, 6)" in message and actual in message, message


def test_wrong_step_input_shape():
    net = sg.compile(linear_leaky()[0])
    with pytest.raises(sg.GraphError, match=r"input 'x': expected shape \(B, 6\), got \(2, 7\)"):
        net.step(torch.zeros(2, 7), net.init_state(2))


@pytest.mark.parametrize("dtype", [torch.float64, torch.int64, torch.bool])
def test_wrong_input_dtype_names_input(dtype):
    net = sg.compile(linear_leaky()[0])
    with pytest.raises(sg.GraphError, match=r"input 'x': expected dtype torch.float32"):
        net(torch.zeros(4, 2, 6, dtype=dtype))


def test_wrong_number_of_inputs_and_non_tensor():
    net = sg.compile(linear_leaky()[0])
    with pytest.raises(sg.GraphError, match="takes inputs \\['x'\\]"):
        net(torch.zeros(4, 2, 6), torch.zeros(4, 2, 6))
    with pytest.raises(sg.GraphError, match="takes inputs \\['x'\\]"):
        net(y=torch.zeros(4, 2, 6))
    with pytest.raises(sg.GraphError, match="input 'x': expected a tensor"):
        net(np.zeros((4, 2, 6), np.float32))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs(max_nodes=6))
def test_streaming_steps_match_the_sequence_run(g):
    net = sg.compile(g).eval()
    xs = spike_inputs(g, 5, 2)
    with torch.no_grad():
        out = net(**xs)
        state = net.init_state(2)
        for t in range(5):
            step_out, state = net.step(**{k: v[t] for k, v in xs.items()}, state=state)
            for key, value in step_out.items():
                torch.testing.assert_close(value, out[key][t], atol=1e-5, rtol=1e-4, msg=f"output {key}, step {t}")
