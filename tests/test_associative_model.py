"""The ``associative_leaky`` declared model (a ``cell="heads"`` model): builder, compiled net, streaming,
ONNX (sequence, step, unrolled), text and files, against snnTorch 1.0.0 (float64, multi-step, gradients)
and the plain-torch recurrence; and the heads mechanism itself, with a user-declared model.

snnTorch's closed form is exact with its two ``1e-8`` guards at zero (``_exact_reference``); its spikes
are float32 (its ``bmm`` fails in float64), so the references use a dtype-keeping surrogate."""

from __future__ import annotations

import inspect
import textwrap

import numpy as np
import onnxruntime as ort
import pytest
import snntorch as snn
import torch
from torch import nn

import snngraph as sg
from snngraph import GraphError

Heads = sg.Heads

T, B, IN, D, N = 12, 3, 5, 2, 3
HEADS = ("to_v", "to_k", "to_alpha", "to_q")


def _exact_reference() -> type:
    """snnTorch's AssociativeLeaky with its ``1e-8`` guards at zero: its closed form, exactly."""
    source = textwrap.dedent(inspect.getsource(snn.AssociativeLeaky.forward)).replace("1e-8", "0.0")
    namespace: dict = {}
    exec(source, {"torch": torch}, namespace)  # snnTorch's own code, one constant changed
    return type("ExactAssociativeLeaky", (snn.AssociativeLeaky,), {"forward": namespace["forward"]})


def recurrence(m: nn.Module, x: torch.Tensor, threshold=1.0, factor=1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The oracle in plain torch: ``S = S diag(alpha) + v k^T``, ``Z = g H(S - theta)``, readout ``Z Q``;
    returns the output and every ``S`` (T, B, d, n)."""
    d, n = m.d_value, m.d_key
    v, k, alpha = m.to_v(x), m.to_k(x), torch.sigmoid(m.to_alpha(x))
    S, states, outs = x.new_zeros(x.shape[1], d, n), [], []
    spike = sg.surrogate.atan()
    for t in range(x.shape[0]):
        S = S * alpha[t].unsqueeze(1) + v[t].unsqueeze(2) * k[t].unsqueeze(1)
        Z = spike(S - threshold) * factor
        outs.append(Z.reshape(x.shape[1], d * n) if m.to_q is None
                    else torch.bmm(Z, m.to_q(x[t]).reshape(-1, n, d)).reshape(x.shape[1], d * d))
        states.append(S)
    return torch.stack(outs), torch.stack(states)


def _snntorch(q: bool, exact: bool = True, seed: int = 2) -> nn.Module:
    torch.manual_seed(seed)
    cls = _exact_reference() if exact else snn.AssociativeLeaky
    m = cls(IN, D, N, D * N, use_q_projection=q).double()
    m.spike_grad = sg.surrogate.atan()
    return m


def _graph(m: nn.Module, **kw) -> sg.Graph:
    g = sg.Graph("assoc")
    x = g.input("x", shape=(IN,))
    weights = {f"{h}_{p}": getattr(getattr(m, h), p).detach() for h in HEADS if getattr(m, h, None) is not None
               for p in ("weight", "bias")}
    h = g.associative_leaky(x, use_q_projection=m.to_q is not None, name="al", **weights, **kw)
    g.output("y", h)
    g.output("S", h.S)
    return g


def _x(steps: int = T, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    return (torch.randn(steps, B, IN, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2).to(dtype)


def _weighted(y: torch.Tensor, seed: int = 7) -> torch.Tensor:
    return (y * torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=y.dtype)).sum()


def _close_grads(ours, theirs) -> None:
    for a, b in zip(ours, theirs, strict=True):
        assert a.abs().sum() > 0
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("q", [True, False], ids=["q_projection", "no_q"])
def test_compiled_node_equals_snntorch(q: bool) -> None:
    """Output (the spikes exactly without ``to_q``), state and gradients (input and every projection)."""
    theirs = _snntorch(q)
    net = sg.compile(_graph(theirs)).double()
    assert [k for k in net.state_dict() if "to_" in k] == [f"al.{k}" for k in theirs.state_dict() if "to_" in k]
    x = _x()
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out, ref = net(xa), theirs(xb)
    assert out["y"].shape == (T, B, D * D if q else D * N) and out["S"].shape == (T, B, D, N)
    if q:
        torch.testing.assert_close(out["y"], ref, rtol=1e-9, atol=1e-12)
    else:
        assert torch.equal(out["y"], ref) and 0 < ref.count_nonzero() < ref.numel()
    torch.testing.assert_close(out["S"], recurrence(theirs, x)[1], rtol=1e-9, atol=1e-12)
    mine = [p for k, p in net.named_parameters() if "to_" in k]
    _close_grads(torch.autograd.grad(_weighted(out["y"]), [xa, *mine]),
                 torch.autograd.grad(_weighted(ref), [xb, *[p for k, p in theirs.named_parameters()]]))


def test_short_sequences_equal_unmodified_snntorch() -> None:
    theirs = _snntorch(True, exact=False)
    net = sg.compile(_graph(theirs)).double()
    x = _x(8, seed=1)
    torch.testing.assert_close(net(x)["y"], theirs(x), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("q", [True, False], ids=["q_projection", "no_q"])
def test_long_sequences_learnt_and_per_neuron_firing_equal_the_recurrence(q: bool) -> None:
    """60 steps (past where snnTorch's guarded closed form fades), a per-neuron ``(d, n)`` threshold and a
    learnt graded-spikes factor: forward and gradients (the factor's too) against the plain recurrence."""
    m = _snntorch(q, exact=False, seed=4)
    threshold = torch.tensor([[0.5, 1.0, 1.5], [0.8, 1.2, 0.3]], dtype=torch.float64)
    net = sg.compile(_graph(m, threshold=threshold, graded_spikes_factor=1.5, learn_graded_spikes_factor=True)).double()
    x = _x(60, seed=3)
    out = net(x)
    factor = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    ref, states = recurrence(m, x, threshold, factor)
    assert out["y"][40:].count_nonzero() > 0
    torch.testing.assert_close(out["y"], ref, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(out["S"], states, rtol=1e-9, atol=1e-12)
    params = dict(net.named_parameters())
    keys = ["al.graded_spikes_factor", *[f"al.{h}.{p}" for h in HEADS if getattr(m, h) is not None
                                          for p in ("weight", "bias")]]
    _close_grads(torch.autograd.grad(_weighted(out["y"]), [params[k] for k in keys]),
                 torch.autograd.grad(_weighted(ref), [factor, *m.parameters()]))


def test_streaming_equals_the_sequence() -> None:
    net = sg.compile(_graph(_snntorch(True))).double()
    x = _x()
    state = net.init_state(B)
    assert state["al.S"].shape == (B, D, N)
    steps = []
    for t in range(T):
        out, state = net.step(x[t], state)
        steps.append(out["y"])
    torch.testing.assert_close(torch.stack(steps), net(x)["y"], rtol=0, atol=0)


@pytest.mark.parametrize("q", [True, False], ids=["q_projection", "no_q"])
def test_onnx_sequence_step_and_unrolled_equal_the_compiled_net(q: bool, tmp_path) -> None:
    net = sg.compile(_graph(_snntorch(q).float()))
    x = _x(dtype=torch.float32)
    with torch.no_grad():
        want = net(x)
    assert want["y"].count_nonzero() > 0

    def check(y: np.ndarray, S: np.ndarray) -> None:
        if q:
            np.testing.assert_allclose(y, want["y"].numpy(), rtol=1e-5, atol=1e-5)
        else:
            np.testing.assert_array_equal(y, want["y"].numpy())
        np.testing.assert_allclose(S, want["S"].numpy(), rtol=1e-5, atol=1e-5)

    for label, kw in (("sequence", {}), ("unrolled", dict(num_steps=T, unroll=True))):
        sg.export_onnx(net, tmp_path / f"{label}.onnx", **kw)
        session = ort.InferenceSession(str(tmp_path / f"{label}.onnx"))
        check(*session.run(["y", "S"], {"x": x.numpy()}))
    sg.export_onnx(net, tmp_path / "step.onnx", mode="step")
    session = ort.InferenceSession(str(tmp_path / "step.onnx"))
    S, ys, Ss = np.zeros((B, D, N), np.float32), [], []
    for t in range(T):
        y, s, S = session.run(["y", "S", "al.S.next"], {"x": x[t].numpy(), "al.S": S})
        ys.append(y)
        Ss.append(s)
    check(np.stack(ys), np.stack(Ss))


def test_text_and_file_round_trips(tmp_path) -> None:
    g = _graph(_snntorch(True).float(), threshold=0.7, learn_threshold=True)
    text = str(g)
    assert "associative_leaky(" in text and "to_q_weight=param<f32[6,5]>" in text and "S=f32[2,3]" in text
    assert str(sg.parse(text)) == text
    sg.save(g, tmp_path / "g")
    loaded = sg.load(tmp_path / "g")
    assert str(loaded) == text
    x = _x(dtype=torch.float32)
    a, b = sg.compile(g), sg.compile(loaded)
    assert torch.equal(a(x)["y"], b(x)["y"])
    assert {k for k, p in a.named_parameters()} == {"al.threshold", *[f"al.{h}.{p}" for h in HEADS
                                                                      for p in ("weight", "bias")]}


def test_compiled_training_step_updates_every_projection() -> None:
    torch.manual_seed(0)
    g = sg.Graph("train")
    x = g.input("x", shape=(4,))
    h = g.associative_leaky(g.linear(x, IN, name="fc"), d_value=D, d_key=N, threshold=0.3, name="al")
    g.output("y", g.linear(h, 2, name="out"))
    net = sg.compile(g)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    before = {k: v.detach().clone() for k, v in net.named_parameters()}
    xs = torch.randn(T, B, 4) * 2
    loss = net(xs)["y"].pow(2).mean()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert all(not torch.equal(before[k], v) for k, v in net.named_parameters())


def test_a_linear_reading_the_readout_computes_with_its_real_values() -> None:
    """The ``to_q`` readout is not spikes (its type says so), so a linear after it is a plain linear."""
    m = _snntorch(True)
    g = sg.Graph("readout")
    x = g.input("x", shape=(IN,))
    weights = {f"{h}_{p}": getattr(getattr(m, h), p).detach() for h in HEADS for p in ("weight", "bias")}
    h = g.associative_leaky(x, name="al", **weights)
    w = torch.randn(3, D * D, dtype=torch.float64)
    g.output("y", g.linear(h, 3, bias=False, weight=w, name="fc"))
    assert not g.types()[h.ref].spike
    x_ = _x()
    torch.testing.assert_close(sg.compile(g).double()(x_)["y"], recurrence(m, x_)[0] @ w.T, rtol=1e-9, atol=1e-12)
    g2 = _graph(_snntorch(False))
    assert g2.types()[g2.outputs["y"]].spike


def test_sg_nn_module_runs_the_declared_kernel_and_loads_snntorch_weights() -> None:
    theirs = _snntorch(True, exact=False, seed=9)
    ours = sg.nn.AssociativeLeaky(IN, D, N, D * N).double()
    ours.load_state_dict(theirs.state_dict())
    x = _x(40, seed=5).requires_grad_(True)
    y = ours(x)
    ref = recurrence(ours, x)[0]
    torch.testing.assert_close(y, ref, rtol=1e-9, atol=1e-12)
    _close_grads(torch.autograd.grad(_weighted(y), [x, *ours.parameters()]),
                 torch.autograd.grad(_weighted(ref), [x, *ours.parameters()]))
    step_y, S = ours._step(x[0], x.new_zeros(B, D, N))
    torch.testing.assert_close(step_y, y[0], rtol=0, atol=0)
    assert S.shape == (B, D, N)


def test_trace_keeps_frozen_projections_frozen() -> None:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, IN), snn.AssociativeLeaky(IN, D, N, None, use_q_projection=False)).double()
    model[1].spike_grad = sg.surrogate.atan()
    model[1].to_k.weight.requires_grad_(False)
    net = sg.compile(sg.trace(model, _x()[..., :4])).double()
    trained = {k for k, p in net.named_parameters()}
    assert "1.to_k.weight" not in trained and "1.to_k.bias" in trained and "1.to_v.weight" in trained
    assert "1.to_k.weight" in net.state_dict()
    x = _x(seed=6)[..., :4]
    assert torch.equal(next(iter(net(x).values())), model(x))


def test_builder_errors_name_the_node() -> None:
    g = sg.Graph("bad")
    x = g.input("x", shape=(IN,))
    with pytest.raises(GraphError, match="al.*d_value must be a positive int"):
        g.associative_leaky(x, d_key=2, name="al")
    with pytest.raises(GraphError, match="to_q weights given with use_q_projection=False"):
        g.associative_leaky(x, d_value=2, d_key=2, use_q_projection=False, to_q_weight=np.zeros((4, IN)), name="al")
    with pytest.raises(GraphError, match="to_k_weight"):
        g.associative_leaky(x, d_value=2, d_key=2, to_k_weight=np.zeros((3, IN)), name="al")
    with pytest.raises(GraphError, match="1-D input"):
        g.associative_leaky(g.input("m", shape=(2, IN)), d_value=2, d_key=2, name="al")
    h = g.associative_leaky(x, d_value=2, d_key=3, name="al")
    node = g.nodes["al"]
    with pytest.raises(GraphError, match="to_v.weight of shape"):
        node.replace(to_v_weight=sg.ir.types.Param(np.zeros((2, 4), np.float32), True)).infer(
            (g.types()[x.ref],))
    assert h.node.dims() == {"d_value": 2, "d_key": 3}


def test_heads_declaration_errors() -> None:
    def step(ops, x, state, p):
        return ops.spike(state["M"]), {"M": state["M"]}

    bad = [
        (dict(cell="heads"), "heads=Heads"),
        (dict(cell="heads", heads=Heads({"a": ("d",), "b": ("e",)}, ("d",), when={"a": "on"}),
              options={"on": (True, False)}), "every dim must be defined"),
        (dict(cell="heads", heads=Heads({"a": ("d",), "b": ("d",)}, ("d",), when={"b": "mode"}),
              options={"mode": ("x", "y")}),
         "bool option"),
        (dict(cell="heads", heads=Heads({"a": ("d",)}, ("e",))), "names a dim"),
        (dict(cell="heads", heads=Heads({"beta": ("beta",)}, ("beta",)), params={"beta": 0.5}), "clash"),
    ]
    for kw, message in bad:
        params = kw.pop("params", {})
        with pytest.raises(GraphError, match=message):
            sg.neuron_model("heads_bad_model", params=params, state="M", **kw)(step)


@sg.neuron_model("linear_attention_lif", params={"beta": sg.ir.model.DECAY, "threshold": 1.0}, state="M",
                 cell="heads", heads=Heads({"to_q": ("n",), "to_k": ("n",), "to_v": ("d",)}, state=("d", "n"),
                                           output=("d",), bias=False), replace=True)
def _linear_attention_lif(ops, x, state, p):
    """A user model on the same mechanism: ``M = beta M + v k^T``, ``U = M q``, ``S = H(U - theta)``."""
    M = ops.clamp(p["beta"], 0.0, 1.0) * state["M"] + ops.outer(ops.project(x, "to_v"), ops.project(x, "to_k"))
    mem = ops.reshape(ops.matmul(M, ops.reshape(ops.project(x, "to_q"), (p["n"], 1))), (p["d"],))
    return ops.spike(mem - p["threshold"]), {"M": M}


def test_a_user_heads_model_works_everywhere(tmp_path) -> None:
    """A linear-attention neuron declared by a user: compiled (forward and gradients) against plain torch,
    streaming, ONNX, text."""
    rng = torch.Generator().manual_seed(1)
    wq, wk, wv = (torch.randn(n, IN, generator=rng, dtype=torch.float64) for n in (3, 3, 2))
    g = sg.Graph("attn")
    x = g.input("x", shape=(IN,))
    h = g.neuron("linear_attention_lif", x, beta=0.8, learn=("beta",), to_q_weight=wq, to_k_weight=wk,
                 to_v_weight=wv, name="att")
    g.output("spk", h)
    g.output("M", h.M)
    assert g.nodes["att"].to_q_bias is None and str(sg.parse(str(g))) == str(g)
    net = sg.compile(g).double()
    xs = _x(seed=2)
    out = net(xs)
    beta = net.get_parameter("att.beta").detach().clone().requires_grad_(True)  # 0.8 in float32, widened
    M, spikes, spike = xs.new_zeros(B, 2, 3), [], sg.surrogate.atan()
    for t in range(T):
        M = beta * M + (xs[t] @ wv.T).unsqueeze(2) * (xs[t] @ wk.T).unsqueeze(1)
        spikes.append(spike(torch.matmul(M, (xs[t] @ wq.T).unsqueeze(2)).squeeze(2) - 1.0))
    ref = torch.stack(spikes)
    assert torch.equal(out["spk"], ref) and 0 < ref.count_nonzero() < ref.numel()
    _close_grads(torch.autograd.grad(_weighted(out["spk"]), [net.get_parameter("att.beta")]),
                 torch.autograd.grad(_weighted(ref), [beta]))
    f32 = sg.compile(g).float()
    sg.export_onnx(f32, tmp_path / "attn.onnx")
    session = ort.InferenceSession(str(tmp_path / "attn.onnx"))
    with torch.no_grad():
        want = f32(xs.float())
    spk, mem = session.run(["spk", "M"], {"x": xs.float().numpy()})
    np.testing.assert_array_equal(spk, want["spk"].numpy())
    np.testing.assert_allclose(mem, want["M"].numpy(), rtol=1e-5, atol=1e-5)


def test_torch_compile_fullgraph_forward_and_backward_equal_eager() -> None:
    torch._dynamo.reset()
    g = sg.Graph("compiled")
    x = g.input("x", shape=(IN,))
    g.output("y", g.associative_leaky(x, d_value=D, d_key=N, threshold=0.3, name="al"))
    net = sg.compile(g)
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")
    xs = _x(6, dtype=torch.float32)
    y, ref = compiled(xs)["y"], net(xs)["y"]
    torch.testing.assert_close(y, ref, rtol=1e-6, atol=1e-6)
    params = list(net.parameters())
    _ = [torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(
        torch.autograd.grad(_weighted(y), params), torch.autograd.grad(_weighted(ref), params), strict=True)]
    assert compiled(_x(9, seed=1, dtype=torch.float32)[:, :2])["y"].shape == (9, 2, D * D)
