"""``sconv2d_lstm``'s pooled spikes (``pool`` / ``pool_size``, snnTorch ``SConv2dLSTM(max_pool=, avg_pool=)``):
``sg.trace`` of snnTorch models in both styles against snnTorch 1.0.0 in float64 over T = 12 steps
(spikes exact, states 1e-9, every weight's gradient 1e-8), fused and unfused compiled nets, shape
inference, text / file round trips, builder errors and ONNX export in every mode."""

from __future__ import annotations

import pytest
import snntorch as snn
import torch
from onnx_helpers import assert_close, compare
from test_lstm import SPIKE, B, T, _check_traced, _x, float64_default
from torch import nn

import snngraph as sg
from snngraph import GraphError

POOLS = {"max": dict(max_pool=2), "avg": dict(avg_pool=(2, 1))}


@pytest.mark.parametrize("pool", sorted(POOLS))
@pytest.mark.parametrize("reset", ["none", "subtract", "zero"])
def test_trace_sequential_init_hidden(pool: str, reset: str) -> None:
    with float64_default():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1),
                              snn.SConv2dLSTM(2, 3, 3, threshold=0.05, reset_mechanism=reset, learn_threshold=True,
                                              spike_grad=SPIKE, init_hidden=True, **POOLS[pool]),
                              nn.Flatten(), nn.Linear(3 * 2 * (2 if pool == "max" else 4), 2))
        x = _x(1, 4, 4, seed=5)
        graph = sg.trace(model, x[0])
        (node,) = (n for n in graph.nodes.values() if n.op == "sconv2d_lstm")
        assert node.pool == pool and node.pool_size == ((2, 2) if pool == "max" else (2, 1))
        model[1].reset_mem()
        outs, spikes = [], []
        for t in range(T):
            outs.append(model(x[t]))
            spikes.append(model[1].spk)
        reference = [torch.stack(outs)]
    assert 0 < torch.stack(spikes).sum() < torch.stack(spikes).numel()
    net = _check_traced(model, graph, x, reference)
    assert net.graph.nodes[node.name].fused


class ExplicitPooled(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.lstm = snn.SConv2dLSTM(2, 3, 3, threshold=0.05, spike_grad=SPIKE, **kw)

    def forward(self, x, syn, mem):
        return self.lstm(self.conv(x), syn, mem)


@pytest.mark.parametrize("pool", sorted(POOLS))
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_trace_explicit_state(pool: str, reset: str) -> None:
    torch.manual_seed(0)
    model = ExplicitPooled(reset_mechanism=reset, learn_threshold=True, **POOLS[pool]).double()
    x = _x(1, 4, 6, seed=6)
    zeros = torch.zeros(B, 3, 4, 6, dtype=torch.float64)
    graph = sg.trace(model, (x[0], zeros, zeros))
    assert graph.type_of(graph.outputs[list(graph.outputs)[0]]).shape == ((3, 2, 3) if pool == "max" else (3, 2, 6))
    syn = mem = zeros
    outs = []
    for t in range(T):
        spk, syn, mem = model(x[t], syn, mem)
        outs.append((spk, syn, mem))
    reference = [torch.stack(v) for v in zip(*outs, strict=True)]
    assert 0 < reference[0].sum() < reference[0].numel()
    _check_traced(model, graph, x, reference)


def _graph(pool: str = "max", size=2) -> sg.Graph:
    g = sg.Graph("pooled")
    x = g.input("x", shape=(1, 4, 6))
    h = g.sconv2d_lstm(g.conv2d(x, 2, 3, padding=1, name="c"), out_channels=3, kernel_size=3, threshold=0.05,
                       learn_threshold=True, reset_mechanism="subtract", pool=pool, pool_size=size, name="n")
    g.output("spk", h)
    g.output("mem", h.mem)
    g.output("syn", h.syn)
    return g


def test_shapes_text_and_file_round_trips(tmp_path) -> None:
    g = _graph("avg", (2, 3))
    types = {k: g.type_of(r).shape for k, r in g.outputs.items()}
    assert types == {"spk": (3, 2, 2), "mem": (3, 4, 6), "syn": (3, 4, 6)} and g.type_of(g.outputs["spk"]).spike
    text = g.to_text(with_params=True)
    assert 'pool="avg", pool_size=(2, 3)' in text
    assert "pool=" not in _graph("none", None).to_text()  # the default stays out of the text form
    sg.save(g, tmp_path / "p.sg")
    torch.manual_seed(0)
    x = torch.rand(5, 2, 1, 4, 6) * 2
    want = sg.compile(g)(x)
    for back in (sg.parse(text), sg.load(tmp_path / "p.sg")):
        assert back.nodes == g.nodes
        got = sg.compile(back)(x)
        assert all(torch.equal(got[k], want[k]) for k in want)
    state = sg.compile(g).init_state(2)
    assert state["n.mem"].shape == (2, 3, 4, 6) and "n.spk" not in state


def test_builder_and_shape_errors() -> None:
    g = sg.Graph("e")
    x = g.input("x", shape=(2, 4, 4))
    with pytest.raises(GraphError, match="pool must be one of"):
        g.sconv2d_lstm(x, out_channels=2, kernel_size=3, pool="min", pool_size=2)
    with pytest.raises(GraphError, match="needs pool_size"):
        g.sconv2d_lstm(x, out_channels=2, kernel_size=3, pool="max")
    with pytest.raises(GraphError, match="pool_size given without pool"):
        g.sconv2d_lstm(x, out_channels=2, kernel_size=3, pool_size=2)
    with pytest.raises(GraphError, match=r"needs a \(C, H, W\) state at least that large"):
        g.sconv2d_lstm(x, out_channels=2, kernel_size=3, pool="avg", pool_size=5)
    with pytest.raises(GraphError, match="threshold"):
        g.sconv2d_lstm(x, out_channels=2, kernel_size=3, pool="max", pool_size=2, threshold=torch.rand(2, 4, 4))
    with pytest.raises(GraphError, match="unexpected keyword"):
        g.slstm(g.input("v", shape=(4,)), hidden_size=3, pool="max", pool_size=2)
    with pytest.raises(GraphError, match="pool_size is given exactly"):
        sg.parse(_graph("max").to_text().replace(', pool_size=(2, 2)', ''))


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_fused_equals_unfused_and_trains(pool: str) -> None:
    torch.manual_seed(0)
    g = _graph(pool)
    fused = sg.compile(g).double()
    unfused = sg.compile(g, passes=[p for p in sg.passes.default_pipeline() if p.name != "fuse_state_updates"])
    unfused.double().load_state_dict(fused.state_dict())
    x = torch.rand(T, B, 1, 4, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    outs = []
    for net in (fused, unfused):
        out = net(x)
        net.zero_grad()
        (out["spk"].sum() + out["mem"].pow(2).sum() + out["syn"].sum()).backward()
        outs.append(out)
    assert 0 < outs[1]["spk"].sum() < outs[1]["spk"].numel()
    assert all(torch.equal(outs[0][k], outs[1][k]) for k in outs[0])
    for (name, a), b in zip(fused.named_parameters(), unfused.parameters(), strict=True):
        assert a.grad.abs().sum() > 0, name
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12, msg=name)
    state = fused.init_state(B)
    with torch.no_grad():
        for t in range(4):
            step, state = fused.step(x[t], state=state)
        seq = fused(x[:4])
    assert all(torch.allclose(step[k], seq[k][-1], rtol=1e-9, atol=1e-12) for k in seq)


@pytest.mark.parametrize("mode", ["sequence", "step", "unrolled"])
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_onnx_export_equals_torch(pool: str, mode: str, tmp_path) -> None:
    torch.manual_seed(0)
    g = _graph(pool, 2 if pool == "max" else (1, 3))
    if mode != "unrolled":
        want = compare(g, tmp_path, shapes=((6, 2), (9, 1)), mode=mode)
        assert 0 < want["spk"].sum() < want["spk"].size
        return
    from snngraph.runtimes.onnx import Session

    net = sg.compile(g).eval()
    sg.export_onnx(net, tmp_path / "u.onnx", num_steps=6, unroll=True)
    x = torch.rand(6, 2, 1, 4, 6, generator=torch.Generator().manual_seed(5)) * 2
    with torch.no_grad():
        want = net(x)
    got = Session(tmp_path / "u.onnx").run({"x": x.numpy()})
    for key, value in want.items():
        assert_close(key, got[key], value.numpy(), spike=key == "spk")
    assert want["spk"].sum() > 0
