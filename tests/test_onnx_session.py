"""ONNX step models, the onnxruntime Session, trained-weight export, metadata and errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from onnx_helpers import assert_close, compare, eager, export_and_check, inputs_for, quantise

import snngraph as sg
from snngraph.runtimes.onnx import Session


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Default initial weights come from torch's global RNG: seed it so every test is reproducible."""
    torch.manual_seed(0)


def stateful_graph() -> sg.Graph:
    """Every kind of state: neurons with 1-3 state tensors, recurrent spikes, a feedback buffer."""
    g = sg.Graph("stateful")
    x = g.input("x", shape=(6,))
    fb = g.feedback((6,), steps=2, name="fb")
    r = g.rsynaptic(g.add(g.linear(x, 6, name="fc1"), fb, name="sum"), alpha=0.6, beta=0.9, name="rsyn")
    g.connect(fb, g.linear(r, 6, name="back"))
    a = g.alpha(g.linear(r, 4, name="fc2"), alpha=0.9, beta=0.5, name="alp")
    ad = g.adaptive_leaky(g.linear(a, 4, name="fc3"), beta=0.9, rho=0.8, adaptation=0.3, name="alif")
    d = g.delay(ad, steps=1, name="d")
    g.output("spk", ad)
    g.output("mem", ad.mem)
    g.output("late", d)
    g.output("syn", r.syn)
    return quantise(g)


def test_step_model_io_names_and_metadata(tmp_path):
    g = stateful_graph()
    net = sg.compile(g)
    model = export_and_check(g, tmp_path / "step.onnx", mode="step")
    state = net.init_state(batch_size=3)
    assert [i.name for i in model.graph.input] == ["x", *state]
    assert [o.name for o in model.graph.output] == ["spk", "mem", "late", "syn", *(f"{k}.next" for k in state)]
    meta = json.loads({p.key: p.value for p in model.metadata_props}["snngraph"])
    assert meta["mode"] == "step" and meta["time"]["dt"] == 1
    assert [s["name"] for s in meta["states"]] == list(state)
    sess = Session(tmp_path / "step.onnx")
    fresh = sess.init_state(3)
    assert list(fresh) == list(state)
    for key, value in state.items():
        assert fresh[key].shape == tuple(value.shape) and not fresh[key].any()


def test_step_state_order_follows_compiled_net(tmp_path):
    """Insertion order differs from stage order, and a dead neuron has no state in either."""
    g = sg.Graph("order")
    x = g.input("x", shape=(3,))
    fb = g.feedback((3,), name="fb")
    g.leaky(x, beta=0.5, name="dead")
    first = g.leaky(g.linear(x, 3, name="fc"), beta=0.9, name="first")
    loop = g.synaptic(g.add(first, fb, name="sum"), alpha=0.5, beta=0.5, name="loop")
    g.connect(fb, loop)
    g.output("spk", loop)
    model = export_and_check(g, tmp_path / "order.onnx", mode="step")
    state = sg.compile(g).init_state(1)
    assert "dead.mem" not in state
    assert [i.name for i in model.graph.input][1:] == list(state)
    compare(g, tmp_path, ((6, 2),), mode="step")


def test_step_model_carried_over_time_equals_sequence_and_eager(tmp_path):
    g = stateful_graph()
    export_and_check(g, tmp_path / "step.onnx", mode="step")
    export_and_check(g, tmp_path / "seq.onnx")
    step, seq = Session(tmp_path / "step.onnx"), Session(tmp_path / "seq.onnx")
    net = sg.compile(g).eval()
    xs = inputs_for(g, 10, 2, seed=3, scale=3.0)["x"]
    whole, want = seq.run(xs), eager(g, {"x": xs}, net)
    state, eager_state, outs = step.init_state(2), net.init_state(2), []
    for t in range(xs.shape[0]):
        out, state = step.step(xs[t], state)
        with torch.no_grad():
            _, eager_state = net.step(torch.from_numpy(xs[t]), eager_state)
        for key, value in eager_state.items():
            assert_close(f"{key} at t={t}", state[key], value.numpy(), spike=key.endswith(".spk"))
        outs.append(out)
    spikes = {k: g.type_of(r).spike for k, r in g.outputs.items()}
    for key in g.outputs:
        carried = np.stack([o[key] for o in outs])
        assert_close(key, carried, whole[key], spikes[key])
        assert_close(key, carried, want[key], spikes[key])
    assert whole["spk"].sum() > 0
    assert_close("run of a step model", step.run(xs)["mem"], whole["mem"], spike=False)


def test_step_model_t1_b1_and_torch_inputs(tmp_path):
    g = stateful_graph()
    compare(g, tmp_path, ((1, 1), (4, 1)), mode="step")
    sess = Session(tmp_path / "stateful_step.onnx")
    out, state = sess.step(torch.ones(1, 6))  # no state: a fresh one
    assert out["spk"].shape == (1, 4) and state["fb.buffer"].shape == (2, 1, 6)


def trained(steps: int = 4) -> tuple[sg.Graph, torch.nn.Module]:
    torch.manual_seed(0)
    g = sg.Graph("trained")
    x = g.input("x", shape=(10,))
    s = g.leaky(g.linear(x, 12, name="fc1"), beta=0.8, learn_beta=True, learn_threshold=True, name="lif1")
    o = g.leaky(g.linear(s, 3, name="fc2"), beta=0.9, learn_beta=True, name="lif2")
    g.output("spk", o)
    g.output("mem", o.mem)
    g = quantise(g)
    net = sg.compile(g)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    data = torch.from_numpy(inputs_for(g, 8, 4, seed=1)["x"])
    for _ in range(steps):
        opt.zero_grad()
        out = net(data)
        loss = ((out["mem"] - 1.0) ** 2).mean() + out["spk"].mean()
        loss.backward()
        opt.step()
    return g, net.eval()


def test_trained_net_exports_its_trained_weights(tmp_path):
    g, net = trained()
    model = export_and_check(net, tmp_path / "trained.onnx")
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    trained_w = net.state_dict()["fc1.weight"].numpy()
    assert np.array_equal(inits["fc1.weight"], trained_w)
    assert not np.array_equal(inits["fc1.weight"], g.nodes["fc1"].weight.value)
    for key in ("lif1.threshold", "fc2.bias"):
        assert np.array_equal(inits[key], net.state_dict()[key].numpy()), key
    for key in ("lif1.beta", "lif2.beta"):  # decays are used clamped: the export stores clamp(beta), folded
        clamped = net.state_dict()[key].clamp(0, 1).numpy()
        assert any(v.shape == clamped.shape and np.array_equal(v, clamped) for v in inits.values()), key
    assert net.state_dict()["lif1.threshold"].item() != 1.0
    compare(g, tmp_path, ((1, 1), (6, 3)), net=net)
    compare(g, tmp_path, ((5, 2),), net=net, mode="step")


def test_callable_heaviside_surrogate_exports(tmp_path):
    import snntorch

    g = sg.Graph("callable")
    x = g.input("x", shape=(5,))
    s = g.leaky(g.linear(x, 5, name="fc"), beta=0.9, spike_grad=snntorch.surrogate.fast_sigmoid(), name="lif")
    g.output("spk", s)
    compare(quantise(g), tmp_path, ((6, 2),))


def test_unsupported_constructs_raise_graph_error(tmp_path):
    g = sg.Graph("bad")
    x = g.input("x", shape=(4,))
    s = g.leaky(g.linear(x, 4, name="fc"), beta=0.9, spike_grad=lambda v: torch.sigmoid(v), name="soft")
    g.output("spk", s)
    with pytest.raises(sg.GraphError, match="soft"):
        sg.export_onnx(g, tmp_path / "bad.onnx")
    assert not (tmp_path / "bad.onnx").exists()
    g2 = sg.Graph("open_loop")
    x = g2.input("x", shape=(4,))
    fb = g2.feedback((4,), name="fb")
    g2.output("spk", g2.leaky(g2.add(x, fb), beta=0.9, name="l"))
    with pytest.raises(sg.GraphError, match="fb"):
        sg.export_onnx(g2, tmp_path / "open.onnx")


@pytest.mark.parametrize("kwargs", [dict(mode="stream"), dict(num_steps=0), dict(mode="step", num_steps=4),
                                    dict(opset=9)])
def test_bad_arguments_raise_graph_error(tmp_path, kwargs):
    g = quantise(stateful_graph())
    with pytest.raises(sg.GraphError, match="export_onnx"):
        sg.export_onnx(g, tmp_path / "x.onnx", **kwargs)
    with pytest.raises(sg.GraphError, match="expects an sg.Graph"):
        sg.export_onnx("model.txt", tmp_path / "x.onnx")


def test_session_errors(tmp_path):
    g = stateful_graph()
    sg.export_onnx(g, tmp_path / "seq.onnx")
    sg.export_onnx(g, tmp_path / "step.onnx", mode="step")
    with pytest.raises(sg.GraphError, match="mode='step'"):
        Session(tmp_path / "seq.onnx").step(np.zeros((1, 6), np.float32), {})
    step = Session(tmp_path / "step.onnx")
    with pytest.raises(sg.GraphError, match="input 'x'"):
        step.step(np.zeros((1, 7), np.float32), step.init_state(1))
    with pytest.raises(sg.GraphError, match="missing"):
        step.step(np.zeros((1, 6), np.float32), {})
    with pytest.raises(sg.GraphError, match="rejected"):
        step.step(np.zeros((1, 6), np.float32), step.init_state(2))
    plain = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["a"], ["b"])], "plain",
        [onnx.helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT, [1])]),
        opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8)
    onnx.save_model(plain, tmp_path / "plain.onnx")
    with pytest.raises(sg.GraphError, match="not an snngraph"):
        Session(tmp_path / "plain.onnx")


@pytest.mark.parametrize("opset", [15, 21])
def test_other_opsets(tmp_path, opset):
    g = stateful_graph()
    for mode in ("sequence", "step"):
        model = export_and_check(g, tmp_path / f"{mode}.onnx", mode=mode, opset=opset)
        assert model.opset_import[0].version == opset
    want = eager(g, inputs_for(g, 5, 2))
    for mode in ("sequence", "step"):
        got = Session(tmp_path / f"{mode}.onnx").run(inputs_for(g, 5, 2))
        assert np.array_equal(got["spk"], want["spk"])
        assert_close("mem", got["mem"], want["mem"], spike=False)


def test_public_names():
    """``sg.runtimes.onnx.Session`` resolves in a fresh interpreter (no prior import of the backend)."""
    import subprocess
    import sys

    code = "import snngraph as sg; print(sg.runtimes.onnx.Session.__name__, sg.export_onnx.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["Session", "export_onnx"]
    assert sg.runtimes.onnx.Session is Session


def test_export_without_path_returns_checked_model():
    model = sg.export_onnx(stateful_graph(), None, mode="step")
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17


@pytest.mark.parametrize("spin", [False, True])
def test_session_thread_options_keep_results(tmp_path, spin):
    g = stateful_graph()
    export_and_check(g, tmp_path / "seq.onnx")
    xs = np.random.default_rng(0).random((5, 2, 6)).astype(np.float32)
    default = Session(tmp_path / "seq.onnx").run(xs)
    tuned = Session(tmp_path / "seq.onnx", threads=1, spin=spin).run(xs)
    assert default.keys() == tuned.keys()
    for key in default:
        np.testing.assert_array_equal(tuned[key], default[key])
    options = Session(tmp_path / "seq.onnx", spin=spin)._sess.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == ("1" if spin else "0")
