"""A user-declared neuron model works everywhere a built-in one does (SPEC §10): training with
surrogate gradients, streaming, text and file round trips, every ONNX export mode; and declarations
and files naming unknown models fail with GraphError naming them."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import save_file

import snngraph as sg
from snngraph.ir.serialize import CHECKSUM_KEY, checksum
from snngraph.runtimes.torch.kernels import kernel_for


@sg.neuron_model("test_adaptive", params={"beta": sg.ParamSpec(0.9, 0.0, 1.0, clamped=True), "threshold": 1.0,
                                          "rho": sg.ParamSpec(0.8, 0.0, 1.0), "b": 0.2},
                 state=("mem", "a"), options={"reset": ("subtract", "zero")})
def adaptive(ops, x, state, p):
    """theta = threshold + b*a;  mem = beta*mem + x - S*theta (or *(1-S));  a = rho*a + S."""
    theta = p["threshold"] + p["b"] * state["a"]
    mem = ops.clamp(p["beta"], 0.0, 1.0) * state["mem"] + x
    spk = ops.spike(mem - theta)
    fired = ops.detach(spk)
    mem = mem - fired * theta if p["reset"] == "subtract" else (1 - fired) * mem
    return spk, {"mem": mem, "a": p["rho"] * state["a"] + fired}


def reference(x, beta, threshold, rho, b, reset):
    """The same neuron written out in plain torch, step by step (the oracle)."""
    mem, a, out = torch.zeros_like(x[0]), torch.zeros_like(x[0]), []
    for t in range(x.shape[0]):
        theta = threshold + b * a
        mem = beta.clamp(0, 1) * mem + x[t]
        spk = sg.surrogate.atan()(mem - theta)
        fired = spk.detach()
        mem = mem - fired * theta if reset == "subtract" else (1 - fired) * mem
        a = rho * a + fired
        out.append(torch.stack([spk, mem, a]))
    return torch.stack(out)


def graph(reset: str = "subtract", dtype=np.float32) -> sg.Graph:
    g = sg.Graph("user")
    x = g.input("x", shape=(5,), dtype="float64" if dtype == np.float64 else "float32")
    rng = np.random.default_rng(0)
    h = g.neuron("test_adaptive", g.linear(x, 6, weight=rng.normal(0, 1.0, (6, 5)).astype(dtype),
                                           bias_value=np.full(6, 0.3, dtype), name="fc"),
                 beta=np.linspace(0.5, 0.95, 6, dtype=dtype), b=np.linspace(0.1, 0.6, 6, dtype=dtype),
                 learn=("beta", "b"), reset=reset, name="n1")
    for port in ("spk", "mem", "a"):
        g.output(port, getattr(h, port))
    return g


def inputs(steps=12, batch=3, dtype=torch.float32):
    return torch.randn(steps, batch, 5, generator=torch.Generator().manual_seed(1), dtype=dtype) * 1.5


def test_registered_and_listed_with_its_declaration():
    model = sg.neuron_models()["test_adaptive"]
    assert model.state == ("mem", "a") and model.ports == ("spk", "mem", "a")
    assert set(model.params) == {"beta", "threshold", "rho", "b"} and model.options["reset"].default == "subtract"
    assert {"leaky", "synaptic", "alpha", "lapicque", "rleaky", "rsynaptic", "integrate_fire", "leaky_integrator",
            "adaptive_leaky"} <= set(sg.neuron_models())
    assert not hasattr(sg.Graph, "test_adaptive")  # user models build through g.neuron only


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_trains_like_its_plain_torch_reference(reset):
    g = graph(reset, np.float64)
    net = sg.compile(g)
    x = inputs(dtype=torch.float64)
    out = net(x)
    with torch.no_grad():
        current = torch.nn.functional.linear(x, net.fc.weight, net.fc.bias)
    beta = net.n1.beta.detach().clone().requires_grad_(True)
    b = net.n1.b.detach().clone().requires_grad_(True)
    ref = reference(current, beta, net.n1.threshold, net.n1.rho, b, reset)
    assert out["spk"].sum() > 0 and torch.equal(out["spk"], ref[:, 0])
    for i, port in ((1, "mem"), (2, "a")):
        torch.testing.assert_close(out[port], ref[:, i], rtol=1e-12, atol=1e-12)
    weights = torch.randn(3, *out["spk"].shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    loss = sum((out[p] * w).sum() for p, w in zip(("spk", "mem", "a"), weights, strict=True))
    loss.backward()
    (ref * weights.transpose(0, 1)).sum().backward()
    torch.testing.assert_close(net.n1.beta.grad, beta.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(net.n1.b.grad, b.grad, rtol=1e-10, atol=1e-12)
    assert net.fc.weight.grad.abs().sum() > 0
    assert set(net.state_dict()) == {"fc.weight", "fc.bias", "n1.beta", "n1.threshold", "n1.rho", "n1.b"}
    assert {k for k, v in net.named_parameters()} == {"fc.weight", "fc.bias", "n1.beta", "n1.b"}


def test_streams_with_step_and_init_state():
    net = sg.compile(graph())
    x = inputs()
    out = net(x)
    state, steps = net.init_state(3), []
    assert set(state) == {"n1.mem", "n1.a"}
    for t in range(x.shape[0]):
        o, state = net.step(x[t], state)
        steps.append(o["spk"])
    assert torch.equal(torch.stack(steps), out["spk"]) and torch.equal(state["n1.a"], out["a"][-1])


def test_text_and_file_round_trips(tmp_path):
    g = graph("zero")
    assert sg.parse(g.to_text(with_params=True)).nodes == g.nodes
    assert sg.parse(str(g)).to_text() == str(g)
    sg.save(g, tmp_path / "u.sg")
    back = sg.load(tmp_path / "u.sg")
    assert back.nodes == g.nodes
    x = inputs()
    assert torch.equal(sg.compile(back)(x)["spk"], sg.compile(g)(x)["spk"])


@pytest.mark.parametrize("mode", ["sequence", "step", "unrolled"])
def test_exports_to_onnx_in_every_mode(tmp_path, mode):
    net = sg.compile(graph("zero"))
    x = inputs(steps=8)
    with torch.no_grad():
        out = net(x)
    path = tmp_path / f"{mode}.onnx"
    kw = {"mode": "step"} if mode == "step" else {"num_steps": 8, "unroll": True} if mode == "unrolled" else {}
    sg.export_onnx(net, path, **kw)
    session = ort.InferenceSession(str(path))
    if mode == "step":
        state = {i.name: np.zeros((3, 6), np.float32) for i in session.get_inputs() if i.name != "x"}
        got = []
        for t in range(8):
            spk, mem, a, *new = session.run(None, {"x": x[t].numpy(), **state})
            state = dict(zip(state, new, strict=True))
            got.append((spk, mem, a))
        spk, mem, a = (np.stack(v) for v in zip(*got, strict=True))
    else:
        spk, mem, a = session.run(["spk", "mem", "a"], {"x": x.numpy()})
    assert out["spk"].sum() > 0 and np.array_equal(spk, out["spk"].numpy())
    np.testing.assert_allclose(mem, out["mem"].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a, out["a"].numpy(), rtol=1e-5, atol=1e-6)


def test_torch_kernel_is_derived_with_the_declared_signature():
    kernel = kernel_for("test_adaptive")
    assert kernel.state_names == ("mem", "a") and not kernel.output_is_state
    x, mem, a = torch.ones(2, 3) * 2, torch.zeros(2, 3), torch.zeros(2, 3)
    spk, mem, a = kernel.step(x, mem, a, beta=0.5, threshold=1.0, rho=0.8, b=0.2)
    assert torch.equal(spk, torch.ones(2, 3)) and torch.equal(a, torch.ones(2, 3))
    with pytest.raises(sg.GraphError, match="reset must be one of"):
        kernel.step(x, mem, a, reset="clip")


def test_bad_builder_values_name_the_node():
    g = sg.Graph("bad")
    h = g.linear(g.input("x", shape=(4,)), 4)
    cases = [({"beta": 1.5}, "beta must lie in"), ({"reset": "clip"}, "reset must be one of"),
             ({"gamma": 1.0}, "unexpected keyword"), ({"learn": ("threshold", "nope")}, "cannot learn"),
             ({"beta": np.ones(3, np.float32)}, "does not broadcast")]
    for kwargs, message in cases:
        with pytest.raises(sg.GraphError, match=message):
            g.neuron("test_adaptive", h, name="n", **kwargs)
        assert "n" not in g.nodes
    with pytest.raises(sg.GraphError, match="neuron model 'nope' is not registered"):
        g.neuron("nope", h)


def test_declarations_are_checked():
    step = adaptive.step
    with pytest.raises(sg.GraphError, match="built-in"):
        sg.neuron_model("leaky", params={}, state=("mem",), replace=True)(step)
    with pytest.raises(sg.GraphError, match="taken"):
        sg.neuron_model("linear", params={}, state=("mem",))(step)
    with pytest.raises(sg.GraphError, match="taken"):
        sg.neuron_model("test_adaptive", params={}, state=("mem",))(step)
    with pytest.raises(sg.GraphError, match="reserved"):
        sg.neuron_model("test_bad1", params={"spike_grad": 1.0}, state=("mem",))(step)
    with pytest.raises(sg.GraphError, match="distinct"):
        sg.neuron_model("test_bad2", params={"mem": 1.0}, state=("mem",))(step)
    with pytest.raises(sg.GraphError, match="must take"):
        sg.neuron_model("test_bad3", params={}, state=("mem",))(lambda ops, x: x)
    assert "test_bad1" not in sg.neuron_models()


def test_files_and_text_naming_an_unregistered_model_raise_naming_it(tmp_path):
    text = str(graph()).replace("test_adaptive(", "not_declared(")
    with pytest.raises(sg.GraphError, match="unknown op 'not_declared'.*registered neuron model"):
        sg.parse(text)
    sg.save(graph(), tmp_path / "u.sg")
    with safe_open(tmp_path / "u.sg", framework="numpy") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    structure = json.loads(metadata["snngraph"])
    (node,) = [n for n in structure["nodes"] if n["op"] == "test_adaptive"]
    node["op"] = "not_declared"  # a well-formed, correctly checksummed file naming an unknown model
    text = json.dumps(structure)
    save_file(tensors, tmp_path / "v.sg", metadata={"snngraph": text, CHECKSUM_KEY: checksum(text, tensors)})
    with pytest.raises(sg.GraphError, match="unknown op 'not_declared'.*registered neuron model"):
        sg.load(tmp_path / "v.sg")


def test_to_nir_refuses_a_model_without_a_nir_mapping():
    with pytest.raises(sg.GraphError, match="test_adaptive 'n1'.*no NIR counterpart"):
        sg.to_nir(graph(), dt=1e-3)
