"""STDP single steps and STDPLearner against snnTorch 1.0.0's (``snntorch.functional.stdp_learner``)
in float64, over multi-step sequences, on sg.nn layers and on compiled nets."""

from __future__ import annotations

import pytest
import snntorch as snn
import torch
from snntorch.functional import stdp_learner as ref
from torch import nn

import snngraph as sg
from snngraph.functional import stdp

T, B = 6, 3
F_PAIRS = [(lambda w: w, lambda w: w), (lambda w: torch.clamp(w, -1, 1) ** 2, lambda w: 1 - w.abs())]


def _spikes(*shape: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, *shape, generator=g, dtype=torch.float64) < 0.4).double()


def _run(fn, ref_fn, layer, pre, post, *taus, f_pre, f_post):
    """Both implementations over the whole sequence, traces carried; every step's results equal."""
    ours, theirs = (None, None), (None, None)
    for t in range(T):
        a = fn(layer, pre[t], post[t], *ours, *taus, f_pre, f_post)
        b = ref_fn(layer, pre[t], post[t], *theirs, *taus, f_pre, f_post)
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)
        ours, theirs = a[:2], b[:2]
    return a


@pytest.mark.parametrize("f_pre, f_post", F_PAIRS)
@pytest.mark.parametrize("name", ["stdp_linear_single_step", "mstdp_linear_single_step"])
def test_linear_rules_match_snntorch(name, f_pre, f_post) -> None:
    fc = nn.Linear(5, 4).double()
    pre, post = _spikes(B, 5, seed=1), _spikes(B, 4, seed=2)
    _, _, dw = _run(getattr(stdp, name), getattr(ref, name), fc, pre, post, 2.0, 3.0, f_pre=f_pre, f_post=f_post)
    assert dw.abs().sum() > 0 and dw.shape == ((4, 5) if name.startswith("stdp") else (B, 4, 5))


@pytest.mark.parametrize("f_pre, f_post", F_PAIRS)
def test_mstdpet_matches_snntorch_unbatched_and_extends_to_batches(f_pre, f_post) -> None:
    fc = nn.Linear(5, 4).double()
    pre, post = _spikes(5, seed=3), _spikes(4, seed=4)
    _run(stdp.mstdpet_linear_single_step, ref.mstdpet_linear_single_step, fc, pre, post, 2.0, 3.0, 4.0,
         f_pre=f_pre, f_post=f_post)
    pre_b, post_b = _spikes(B, 5, seed=5), _spikes(B, 4, seed=6)  # snnTorch's torch.outer refuses a batch
    with pytest.raises(RuntimeError):
        ref.mstdpet_linear_single_step(fc, pre_b[0], post_b[0], None, None, 2.0, 3.0, 4.0)
    traces = (None, None)
    for t in range(T):
        tr_pre, tr_post, elig = stdp.mstdpet_linear_single_step(fc, pre_b[t], post_b[t], *traces, 2.0, 3.0, 4.0,
                                                                f_pre, f_post)
        for b in range(B):  # sample b alone is the unbatched rule on its own traces
            _, _, alone = ref.mstdpet_linear_single_step(
                fc, pre_b[t, b], post_b[t, b], None if t == 0 else traces[0][b], None if t == 0 else traces[1][b],
                2.0, 3.0, 4.0, f_pre, f_post)
            torch.testing.assert_close(elig[b], alone, rtol=1e-12, atol=1e-12)
        traces = (tr_pre, tr_post)


@pytest.mark.parametrize("f_pre, f_post", F_PAIRS)
def test_mstdp_takes_unbatched_spikes_as_mstdpet(f_pre, f_post) -> None:
    """snnTorch's mstdp crashes on unbatched spikes; ours is then snnTorch's mstdpet (the same eligibility)."""
    fc = nn.Linear(5, 4).double()
    pre, post = _spikes(5, seed=7), _spikes(4, seed=8)
    with pytest.raises(IndexError):
        ref.mstdp_linear_single_step(fc, pre[0], post[0], None, None, 2.0, 3.0)
    _run(stdp.mstdp_linear_single_step, lambda *a: ref.mstdpet_linear_single_step(*a[:7], 4.0, *a[7:]), fc, pre,
         post, 2.0, 3.0, f_pre=f_pre, f_post=f_post)


@pytest.mark.parametrize("kwargs", [{}, {"stride": 2}, {"padding": 1}, {"padding": (1, 2), "stride": (2, 1)},
                                    {"padding": 1, "padding_mode": "reflect"},
                                    {"padding": 1, "padding_mode": "circular"}])
def test_conv2d_rule_matches_snntorch(kwargs) -> None:
    conv = nn.Conv2d(2, 3, 3, **kwargs).double()
    pre = _spikes(B, 2, 7, 6, seed=7)
    with torch.no_grad():
        post = (conv(pre.reshape(-1, 2, 7, 6)) > 0.1).double().reshape(T, B, 3, *conv(pre[0]).shape[-2:])
    _, _, dw = _run(stdp.stdp_conv2d_single_step, ref.stdp_conv2d_single_step, conv, pre, post, 2.0, 3.0,
                    f_pre=F_PAIRS[1][0], f_post=F_PAIRS[1][1])
    assert dw.shape == conv.weight.shape and dw.abs().sum() > 0


@pytest.mark.parametrize("kwargs", [{}, {"stride": 2}, {"padding": 2}, {"padding": 1, "padding_mode": "replicate"}])
def test_conv1d_rule_matches_snntorch(kwargs) -> None:
    conv = nn.Conv1d(2, 3, 3, **kwargs).double()
    pre = _spikes(B, 2, 9, seed=8)
    with torch.no_grad():
        post = (conv(pre.reshape(-1, 2, 9)) > 0.1).double().reshape(T, B, 3, -1)
    _, _, dw = _run(stdp.stdp_conv1d_single_step, ref.stdp_conv1d_single_step, conv, pre, post, 2.0, 3.0,
                    f_pre=F_PAIRS[0][0], f_post=F_PAIRS[0][1])
    assert dw.abs().sum() > 0


def test_conv_rules_refuse_what_snntorch_refuses() -> None:
    x = torch.zeros(1, 2, 5, 5)
    for conv in (nn.Conv2d(2, 2, 3, dilation=2), nn.Conv2d(2, 2, 3, groups=2), nn.Conv2d(2, 2, 3, padding="same")):
        with pytest.raises(NotImplementedError):
            stdp.stdp_conv2d_single_step(conv, x, x, None, None, 2.0, 2.0)
    with pytest.raises(NotImplementedError):
        stdp.stdp_conv1d_single_step(nn.Conv1d(2, 2, 3, dilation=2), x[..., 0], x[..., 0], None, None, 2.0, 2.0)


def _current(seed: int, *shape: int) -> torch.Tensor:
    return torch.rand(T, *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2


@pytest.mark.parametrize("on_grad", [True, False])
def test_learner_on_sg_nn_layers_matches_snntorch(on_grad) -> None:
    torch.manual_seed(0)  # float32 throughout: snnTorch's spikes, hence its post traces, are float32
    fc_ref = nn.Linear(5, 4)
    fc = nn.Linear(5, 4)
    fc.load_state_dict(fc_ref.state_dict())
    lif_ref = snn.Leaky(beta=0.8, init_hidden=True)  # snnTorch's learner needs a lone spike output
    lif = sg.nn.Leaky(beta=0.8)  # ours also takes the (spk, mem) of explicit state
    theirs = ref.STDPLearner(fc_ref, lif_ref, 2.0, 3.0, F_PAIRS[1][0], F_PAIRS[1][1])
    ours = sg.functional.STDPLearner(fc, lif, 2.0, 3.0, F_PAIRS[1][0], F_PAIRS[1][1])
    x = _current(9, B, 5).float()
    mem = None
    for t in range(T):
        spk_ref = lif_ref(fc_ref(x[t]))
        spk, mem = lif(fc(x[t]), mem)
        assert torch.equal(spk, spk_ref)
    a, b = ours.step(on_grad=on_grad, scale=0.5), theirs.step(on_grad=on_grad, scale=0.5)
    if on_grad:
        assert a is None and b is None
        assert torch.equal(fc.weight.grad, fc_ref.weight.grad)
        assert fc.weight.grad.abs().sum() > 0
    else:
        assert torch.equal(a, b)
    assert torch.equal(ours.trace_pre, theirs.trace_pre) and torch.equal(ours.trace_post, theirs.trace_post)
    assert ours.in_spike_monitor.records == [] and ours.out_spike_monitor.records == []


def test_learner_reset_disable_enable() -> None:
    fc, lif = nn.Linear(3, 2).double(), sg.nn.Leaky(beta=0.5, init_hidden=True)
    learner = sg.functional.STDPLearner(fc, lif, 2.0, 2.0)
    x = torch.ones(B, 3, dtype=torch.float64)
    lif(fc(x))
    learner.disable()
    lif(fc(x))
    assert len(learner.in_spike_monitor.records) == 1
    learner.enable()
    lif(fc(x))
    assert learner.step(on_grad=False) is not None and learner.trace_pre is not None
    lif(fc(x))
    learner.reset()  # snnTorch's crashes (nn.Module has no reset)
    assert learner.trace_pre is None and learner.in_spike_monitor.records == []
    assert learner.step(on_grad=False) is None


def _compiled_and_stepped(kind: str):
    g = sg.Graph("stdp")
    if kind == "linear":
        x = g.input("x", shape=(5,))
        cur = g.linear(x, 4, name="fc1")
        xs, layer = _current(10, B, 5), nn.Linear(5, 4)
    else:
        x = g.input("x", shape=(2, 6, 6))
        cur = g.conv2d(x, 3, 3, stride=1, padding=1, name="fc1")
        xs, layer = _current(10, B, 2, 6, 6), nn.Conv2d(2, 3, 3, padding=1)
    lif = g.leaky(cur, beta=0.8, name="lif1")
    g.output("spk1", lif)
    g.output("mem1", lif.mem)
    torch.manual_seed(0)
    net = sg.compile(g).double()
    layer = layer.double()
    layer.load_state_dict(net.fc1.state_dict())
    return net, layer, xs


@pytest.mark.parametrize("kind", ["linear", "conv2d"])
def test_learner_on_compiled_net_sees_what_stepping_sees(kind) -> None:
    net, layer, xs = _compiled_and_stepped(kind)
    lif = sg.nn.Leaky(beta=0.8, init_hidden=True)
    stepped = sg.functional.STDPLearner(layer, lif, 2.0, 3.0)
    compiled = sg.functional.STDPLearner(net.fc1, net, 2.0, 3.0, output="spk1")
    for t in range(T):
        lif(layer(xs[t]))
    net(xs)
    assert len(compiled._recorder.pre) == T
    a, b = compiled.step(on_grad=False), stepped.step(on_grad=False)
    assert a.abs().sum() > 0
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    net(xs)  # a second sequence continues the traces
    compiled.step()
    assert net.fc1.weight.grad is not None


def test_learner_on_compiled_net_argument_errors() -> None:
    net, _, _ = _compiled_and_stepped("linear")
    with pytest.raises(ValueError, match="output="):
        sg.functional.STDPLearner(net.fc1, net, 2.0, 3.0)
    with pytest.raises(ValueError, match="not a compiled net"):
        sg.functional.STDPLearner(nn.Linear(2, 2), sg.nn.Leaky(beta=0.5), 2.0, 3.0, output="spk")
    learner = sg.functional.STDPLearner(net.fc1, net, 2.0, 3.0, output="nope")
    with pytest.raises(KeyError, match="nope"):
        net(_current(1, B, 5))
    learner.disable()
    net(_current(1, B, 5))


def test_learner_on_compiled_net_ignores_streaming_calls() -> None:
    net, _, xs = _compiled_and_stepped("linear")
    learner = sg.functional.STDPLearner(net.fc1, net, 2.0, 3.0, output="spk1")
    state = net.init_state(B)
    for t in range(2):
        _, state = net.step(xs[t], state=state)  # net.fc1 runs, the net's forward does not
    net(xs)
    assert len(learner._recorder.pre) == T and all(p.shape == (B, 5) for p in learner._recorder.pre)


def test_snntorch_module_paths() -> None:
    from snngraph.functional import stdp_learner
    from snngraph.functional.loss import SpikeTime
    from snngraph.functional.quant import StateQuant

    assert SpikeTime is sg.functional.SpikeTime and StateQuant is sg.functional.StateQuant
    for name in ref.__dict__:
        if name.endswith("_single_step") or name == "STDPLearner":
            assert getattr(stdp_learner, name) is getattr(sg.functional, name)
