"""``batch_norm(stats=...)``: per-step statistics (``"step"``, the default) or statistics of the whole
sequence's ``T * B`` rows (``"sequence"``, SpikingJelly's multi-step batch norm). Text, save/load and
the builder; the torch runtime against ``nn.BatchNorm1d/2d`` run by hand (forward, gradients, running
statistics, in float64); evaluation mode, ONNX, streaming, loops, unrolling and NIR."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import snngraph as sg
from snngraph.passes import unroll_time
from snngraph.runtimes.torch.unrolled import run_unrolled
from tests.onnx_helpers import compare

T, B = 5, 3


def _graph(stats: str, shape=(2, 5, 5), affine: bool = True) -> sg.Graph:
    g = sg.Graph("bn")
    x = g.input("x", shape, dtype="float64")
    c = shape[0]
    h = g.batch_norm(x, momentum=0.3, affine=affine, weight=torch.linspace(0.5, 1.5, c, dtype=torch.float64),
                     bias_value=torch.linspace(-0.2, 0.3, c, dtype=torch.float64),
                     running_mean=torch.linspace(-0.5, 0.5, c, dtype=torch.float64),
                     running_var=torch.linspace(0.5, 2.0, c, dtype=torch.float64), stats=stats, name="bn")
    g.output("spk", g.leaky(h, 0.8, threshold=0.5, name="lif"))
    g.output("bn", h)
    return g


def _reference(net: sg.CompiledNet, rank: int) -> nn.Module:
    """A fresh torch batch norm holding the compiled net's parameters and statistics."""
    mod = net.bn
    ref = (nn.BatchNorm2d if rank == 3 else nn.BatchNorm1d)(mod.num_features, mod.eps, mod.momentum,
                                                            affine=mod.affine).double()
    ref.load_state_dict(mod.state_dict())
    return ref


def _sequence(shape, seed=0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, *shape, generator=gen, dtype=torch.float64) * 3 - 1).requires_grad_(True)


def test_builder_text_and_files(tmp_path):
    seq = _graph("sequence")
    assert seq.nodes["bn"].stats == "sequence" and _graph("step").nodes["bn"].stats == "step"
    assert 'stats="sequence"' in seq.to_text() and "stats" not in _graph("step").to_text()  # the default is quiet
    assert sg.parse(seq.to_text(with_params=True)) == seq
    sg.save(seq, tmp_path / "bn.sg")
    assert sg.load(tmp_path / "bn.sg") == seq
    g = sg.Graph("bad")
    x = g.input("x", (3,))
    with pytest.raises(sg.GraphError, match=r"batch_norm 'bn': stats must be one of \['step', 'sequence'\], got 't'"):
        g.batch_norm(x, stats="t", name="bn")
    text = seq.to_text(with_params=True).replace('stats="sequence"', 'stats="batch"')
    with pytest.raises(sg.GraphError, match="stats must be one of"):
        sg.parse(text)


@pytest.mark.parametrize("shape", [(2, 5, 5), (3, 4), (4,)])
def test_sequence_statistics_pool_time_and_batch(shape):
    """Training mode: one torch batch norm call over all T*B rows (outputs, input and parameter gradients,
    running statistics and the batch counter), and the module stays a real torch batch norm."""
    net = sg.compile(_graph("sequence", shape))
    rank = len(shape)
    assert type(net.bn) is (nn.BatchNorm2d if rank == 3 else nn.BatchNorm1d)
    ref = _reference(net, rank)
    x = _sequence(shape)
    x_ref = x.detach().clone().requires_grad_(True)
    got = net(x)["bn"]
    want = ref(x_ref.reshape(T * B, *shape)).reshape(T, B, *shape)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    weights = torch.randn_like(want)
    (got * weights).sum().backward()
    (want * weights).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(net.bn.weight.grad, ref.weight.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(net.bn.bias.grad, ref.bias.grad, rtol=1e-10, atol=1e-12)
    for key in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(net.bn, key), getattr(ref, key), rtol=1e-12, atol=1e-12, msg=key)
    assert int(net.bn.num_batches_tracked) == 1  # one update per sequence


def test_step_statistics_normalise_each_step():
    """The default: each step's B rows by themselves, one running-statistics update per step."""
    shape = (2, 5, 5)
    net = sg.compile(_graph("step", shape))
    ref = _reference(net, 3)
    x = _sequence(shape, seed=1)
    got = net(x)["bn"]
    want = torch.stack([ref(x_t) for x_t in x.detach()])
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    torch.testing.assert_close(net.bn.running_var, ref.running_var, rtol=1e-12, atol=1e-12)
    assert int(net.bn.num_batches_tracked) == T
    seq = sg.compile(_graph("sequence", shape))
    assert not torch.allclose(seq(x)["bn"], got)  # the two do differ in training


def test_evaluation_mode_is_the_same_affine_map_and_streams():
    shape = (2, 5, 5)
    x = _sequence(shape, seed=2).detach()
    step, seq = sg.compile(_graph("step", shape)).eval(), sg.compile(_graph("sequence", shape)).eval()
    want = step(x)
    got = seq(x)
    for key in want:
        assert torch.equal(got[key], want[key]), key
    assert 0 < got["spk"].sum() < got["spk"].numel()
    state, outs = seq.init_state(B, like=x), []
    for x_t in x:
        out, state = seq.step(x_t, state)
        outs.append(out["bn"])
    torch.testing.assert_close(torch.stack(outs), want["bn"], rtol=0, atol=1e-12)


def test_streaming_in_training_mode_is_refused():
    net = sg.compile(_graph("sequence"))
    x = torch.zeros(B, 2, 5, 5, dtype=torch.float64)
    with pytest.raises(sg.GraphError, match=r"batch_norm 'bn': normalises with the statistics of the whole sequence "
                                            r"\(stats=\"sequence\"\).*call \.eval\(\)"):
        net.step(x, net.init_state(B, like=x))
    sg.compile(_graph("step")).step(x, None)  # per-step statistics stream


def test_a_loop_through_a_delay_in_training_mode_is_refused():
    g = sg.Graph("loop")
    x = g.input("x", (3,))
    fb = g.feedback((3,), name="fb")
    h = g.batch_norm(g.add(x, fb), stats="sequence", name="bn")
    s = g.leaky(h, 0.9, name="lif")
    g.connect(fb, g.scale(s, 0.5))
    g.output("spk", s)
    net = sg.compile(g)
    with pytest.raises(sg.GraphError, match="batch_norm 'bn': normalises with the statistics of the whole sequence"):
        net(torch.rand(4, 2, 3))
    assert net.eval()(torch.rand(4, 2, 3))["spk"].shape == (4, 2, 3)


def test_unrolled_graph_in_training_mode_is_refused():
    g = _graph("sequence")
    unrolled = sg.compile(unroll_time(g, steps=3))
    x = torch.rand(3, 2, 2, 5, 5, dtype=torch.float64)
    with pytest.raises(sg.GraphError, match="per-step copies of an unrolled graph"):
        run_unrolled(unrolled, {"x": x})
    got = run_unrolled(unrolled.eval(), {"x": x})
    want = sg.compile(g).eval()(x)
    torch.testing.assert_close(got["bn"], want["bn"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", ["sequence", "step"])
def test_onnx_export_runs_the_running_statistics(tmp_path, mode):
    g = sg.testing.node_kind_graphs()["batch_norm_sequence"]
    assert g.nodes["bn"].stats == "sequence"
    out = compare(g, tmp_path, shapes=((4, 2), (1, 3)), mode=mode)
    assert out["spk"].sum() > 0


def test_nir_has_no_batch_norm():
    with pytest.raises(sg.GraphError, match=r"^batch_norm 'bn': has no NIR counterpart"):
        sg.to_nir(sg.testing.node_kind_graphs()["batch_norm_sequence"], dt=1e-3)
