"""The compiled module (``sg.compile``) against snnTorch 1.0.0, float64: a Linear layer feeding
each neuron model, compared over T steps — spikes exactly, membranes and every gradient (inputs,
weights, learnable beta/threshold, recurrent weights) to 1e-9 — with the default pipeline
(fused scans) and without it (step kernels). Both sides use ``sg.surrogate.atan()``, snnTorch's
default, so snnTorch computes in float64 throughout. Plus the module's contract: step == sequence,
state_dict names, to_graph after training, no_grad / eval / double, input errors.

Combinations: leaky (subtract/zero/none x reset_delay, per-neuron beta/threshold, learn_beta,
learn_threshold, graded spikes), synaptic (subtract/zero, learn_alpha), alpha (zero/subtract),
lapicque (beta; R and C), rleaky and rsynaptic (all_to_all with bias; one-to-one V).
"""

import pytest
import snntorch as snn
import torch

import snngraph as sg
from snngraph.passes import insert_surrogates

T, B, N_IN, N = 12, 3, 5, 7


def _case(op, **kw):
    return pytest.param(op, kw, id=op + "-" + "-".join(f"{k}={v}" for k, v in kw.items() if k != "tensor"))


CASES = [
    _case("leaky", beta=0.8),
    _case("leaky", beta=0.8, reset_mechanism="zero"),
    _case("leaky", beta=0.8, reset_mechanism="none"),
    _case("leaky", beta=0.8, reset_delay=False),
    _case("leaky", beta=0.8, reset_mechanism="zero", reset_delay=False),
    _case("leaky", beta=0.8, learn_beta=True, learn_threshold=True, graded_spikes_factor=2.0),
    _case("leaky", beta="tensor", threshold="tensor", learn_beta=True),
    _case("synaptic", alpha=0.6, beta=0.8),
    _case("synaptic", alpha=0.6, beta=0.8, reset_mechanism="zero", learn_alpha=True),
    _case("alpha", alpha=0.9, beta=0.8),
    _case("alpha", alpha=0.9, beta=0.8, reset_mechanism="subtract"),
    _case("lapicque", beta=0.9, threshold=0.2),
    _case("lapicque", R=5.0, C=0.5),
    _case("rleaky", beta=0.8, linear_features=N),
    _case("rleaky", beta=0.8, all_to_all=False, V=0.5),
    _case("rsynaptic", alpha=0.6, beta=0.8, linear_features=N),
]
SNNTORCH = {"leaky": snn.Leaky, "synaptic": snn.Synaptic, "alpha": snn.Alpha, "lapicque": snn.Lapicque,
            "rleaky": snn.RLeaky, "rsynaptic": snn.RSynaptic}


def _resolve(kw):
    torch.manual_seed(3)
    return {k: (torch.rand(N, dtype=torch.float64) * 0.5 + 0.5 if v == "tensor" else v) for k, v in kw.items()}


def _reference(op, kw, fc, x):
    # sg.surrogate.atan() in snnTorch keeps its arithmetic in float64 (its own surrogates return
    # float32 spikes, which rounds gradients to float32; they are compared in test_surrogate.py)
    neuron = SNNTORCH[op](**kw, spike_grad=sg.surrogate.atan()).double()
    state = {"leaky": lambda: [neuron.init_leaky()], "lapicque": lambda: [neuron.init_lapicque()],
             "synaptic": lambda: list(neuron.init_synaptic()), "alpha": lambda: list(neuron.init_alpha()),
             "rleaky": lambda: list(neuron.init_rleaky()), "rsynaptic": lambda: list(neuron.init_rsynaptic())}[op]()
    spks, mems = [], []
    for t in range(x.shape[0]):
        out = neuron(fc(x[t]), *state)
        state = list(out[1:]) if op not in ("rleaky", "rsynaptic") else list(out)
        spks.append(out[0])
        mems.append(out[-1])
    return neuron, torch.stack(spks), torch.stack(mems)


def _graph(op, kw, fc, neuron):
    g = sg.Graph("one")
    x = g.input("x", (N_IN,))
    h = g.linear(x, N, weight=fc.weight, bias_value=fc.bias, name="fc")
    args = {k: v for k, v in kw.items() if k != "linear_features"}
    if op.startswith("r") and kw.get("all_to_all", True):
        args["recurrent_weight"], args["recurrent_bias"] = neuron.recurrent.weight, neuron.recurrent.bias
    if op == "lapicque" and "R" in kw:
        args["time_step"] = 1.0
    node = getattr(g, op)(h, name="neuron", spike_grad=sg.surrogate.atan(), **args)
    g.output("spk", node)
    g.output("mem", node.mem)
    return g


@pytest.mark.parametrize("fused", [True, False], ids=["pipeline", "unfused"])
@pytest.mark.parametrize("op,kw", CASES)
def test_compiled_graph_equals_snntorch(op, kw, fused):
    kw = _resolve(kw)
    torch.manual_seed(0)
    fc = torch.nn.Linear(N_IN, N).double()
    x = (torch.rand(T, B, N_IN, dtype=torch.float64) * 2).requires_grad_()
    neuron, ref_spk, ref_mem = _reference(op, kw, fc, x)
    net = sg.compile(_graph(op, kw, fc, neuron), passes=None if fused else [insert_surrogates]).double()
    out = net(x)
    assert torch.equal(out["spk"], ref_spk)
    assert 0 < ref_spk.count_nonzero() < ref_spk.numel()
    torch.testing.assert_close(out["mem"], ref_mem, rtol=0, atol=1e-9)
    w = torch.rand_like(ref_mem)
    ref_params = {"fc.weight": fc.weight, "fc.bias": fc.bias}
    ref_params |= {f"neuron.{k}": v for k, v in neuron.named_parameters()}
    ours = dict(net.named_parameters())
    shared = [k for k in ref_params if k in ours]
    assert {"fc.weight", "fc.bias"} <= set(shared)
    if kw.get("learn_beta"):
        assert "neuron.beta" in shared
    got = torch.autograd.grad((out["mem"] * w).sum() + (out["spk"] * w).sum(), [x] + [ours[k] for k in shared])
    want = torch.autograd.grad((ref_mem * w).sum() + (ref_spk * w).sum(), [x] + [ref_params[k] for k in shared])
    for name, a, b in zip(["input"] + shared, got, want, strict=True):
        torch.testing.assert_close(a, b.reshape(a.shape), rtol=1e-9, atol=1e-9, msg=lambda m, n=name: f"{n}: {m}")


def _mlp():
    torch.manual_seed(0)
    g = sg.Graph("mlp")
    x = g.input("x", (6,))
    h = g.leaky(g.linear(x, 8, name="fc1"), beta=0.9, learn_beta=True, name="lif1")
    h = g.dropout(h, 0.3, name="drop")
    fb = g.feedback((4,), name="fb")
    o = g.leaky(g.add(g.linear(h, 4, name="fc2"), fb), beta=0.9, name="lif2")
    g.connect(fb, g.delay(g.scale(o, 0.5), steps=2))
    g.output("spk", o)
    g.output("mem", o.mem)
    return g


def test_step_by_step_equals_sequence_and_state_names():
    net = sg.compile(_mlp()).eval()
    x = torch.rand(9, 2, 6) * 2
    out = net(x)
    state = net.init_state(batch_size=2)
    assert set(state) == {"lif1.mem", "lif2.mem", "fb.buffer", "delay1.buffer"}
    assert state["delay1.buffer"].shape == (2, 2, 4)
    steps = []
    for t in range(9):
        o, state = net.step(x[t], state)
        steps.append(o["spk"])
    assert torch.equal(torch.stack(steps), out["spk"])


def test_state_dict_names_and_to_graph_after_training():
    g = _mlp()
    net = sg.compile(g)
    assert list(net.state_dict()) == [
        "fc1.weight", "fc1.bias", "lif1.beta", "lif1.threshold", "lif1.graded_spikes_factor", "fc2.weight",
        "fc2.bias", "lif2.beta", "lif2.threshold", "lif2.graded_spikes_factor", "scale1.factor"]
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    x = torch.rand(9, 2, 6) * 2
    for _ in range(3):
        loss = net(x)["mem"].pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    trained = net.to_graph()
    assert trained.nodes["fc1"].weight != g.nodes["fc1"].weight
    assert trained.nodes["lif1"].beta.item() == pytest.approx(net.lif1.beta.item())
    again = sg.compile(trained).eval()
    net.eval()
    assert torch.equal(again(x)["mem"], net(x)["mem"])


def test_no_grad_eval_double_and_dropout_modes():
    net = sg.compile(_mlp())
    x = torch.rand(5, 2, 6) * 2
    with torch.no_grad():
        out = net(x)
    assert not out["mem"].requires_grad
    net.eval()
    assert torch.equal(net(x)["mem"], net(x)["mem"])
    net.train()
    torch.manual_seed(1)
    a = net(x)["mem"]
    torch.manual_seed(2)
    assert not torch.equal(a, net(x)["mem"])
    net.double().eval()
    assert net(x.double())["mem"].dtype == torch.float64


def test_wrong_input_shape_or_dtype_names_the_input():
    net = sg.compile(_mlp())
    with pytest.raises(sg.GraphError, match=r"input 'x': expected shape \(T, B, 6\), got \(5, 2, 7\)"):
        net(torch.rand(5, 2, 7))
    with pytest.raises(sg.GraphError, match=r"input 'x': expected shape \(T, B, 6\), got \(2, 6\)"):
        net(torch.rand(2, 6))
    with pytest.raises(sg.GraphError, match="input 'x': expected dtype torch.float32, got torch.int64"):
        net(torch.ones(5, 2, 6, dtype=torch.long))
    with pytest.raises(sg.GraphError, match=r"input 'x': expected shape \(B, 6\)"):
        net.step(torch.rand(5, 2, 6), net.init_state(2))


def test_node_named_like_a_module_attribute_is_refused():
    g = sg.Graph("bad")
    x = g.input("x", (3,))
    g.output("o", g.linear(x, 2, name="forward"))
    with pytest.raises(sg.GraphError, match="node name 'forward' .*clashes"):
        sg.compile(g)


def test_mixed_parameter_dtypes_run_in_the_widest():
    import numpy as np

    g = sg.Graph("mixed")
    x = g.input("x", (3,))
    g.output("o", g.linear(g.linear(x, 4, name="a"), 2, weight=np.ones((2, 4)), name="b"))
    net = sg.compile(g)
    assert {t.dtype for t in net.state_dict().values()} == {torch.float64}
    with pytest.raises(sg.GraphError, match="input 'x': expected dtype torch.float64, got torch.float32"):
        net(torch.rand(2, 1, 3))
    assert net(torch.rand(2, 1, 3, dtype=torch.float64))["o"].dtype == torch.float64


def test_learnt_beta_outside_unit_interval_saves_exports_and_reloads(tmp_path):
    torch.manual_seed(0)
    g = sg.Graph("learnt")
    x = g.input("x", (4,))
    lif = g.leaky(g.linear(x, 3, name="fc"), beta=0.9, learn_beta=True, name="lif")
    g.output("mem", lif.mem)
    net = sg.compile(g)
    with torch.no_grad():
        net.lif.beta.fill_(1.2)  # what an optimiser step can do; the kernel clamps it to 1
    trained = net.to_graph()
    assert trained.nodes["lif"].beta.item() == pytest.approx(1.2)
    sg.save(trained, tmp_path / "g.sg")
    again = sg.compile(sg.load(tmp_path / "g.sg"))
    xs = torch.rand(5, 2, 4)
    assert torch.equal(again(xs)["mem"], net(xs)["mem"])
    with pytest.raises(sg.GraphError, match="beta must lie in"):
        g.leaky(x, beta=1.2, learn_beta=True)


def test_spatial_synapses_in_row_blocks_equal_one_call():
    from snngraph.runtimes.torch.module import ROW_BLOCK_ELEMENTS

    torch.manual_seed(0)
    g = sg.Graph("conv")
    x = g.input("x", (1, 30, 30))
    c = g.conv2d(x, 4, 3, name="conv")
    g.output("spk", g.leaky(g.avg_pool2d(c, 2), beta=0.9, name="lif"))
    g.output("cur", c)
    net = sg.compile(g)
    xs = (torch.rand(12, 120, 1, 30, 30) < 0.4).float()
    assert 2 * (ROW_BLOCK_ELEMENTS // (4 * 28 * 28)) < 12 * 120  # the blocked path runs
    out = net(xs)
    whole = torch.nn.functional.conv2d(xs.reshape(-1, 1, 30, 30), net.conv.weight, net.conv.bias)
    torch.testing.assert_close(out["cur"], whole.reshape(12, 120, 4, 28, 28), rtol=1e-6, atol=1e-6)
    out["cur"].sum().backward()
    weight = net.conv.weight.detach().clone().requires_grad_()
    torch.nn.functional.conv2d(xs.reshape(-1, 1, 30, 30), weight, net.conv.bias.detach()).sum().backward()
    torch.testing.assert_close(net.conv.weight.grad, weight.grad, rtol=1e-5, atol=1e-3)
