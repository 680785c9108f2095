"""``inhibition=True`` and ``state_quant=`` against snnTorch 1.0.0: sg.nn in float64 (spikes exact,
states 1e-9, gradients of inputs and parameters 1e-9 over 20 steps), sg.trace of snnTorch models
using them (init_hidden and explicit state), the compiled net's training step, ONNX export and the
IR's text / file forms."""

from __future__ import annotations

import warnings

import pytest
import snntorch as snn
import torch
from onnx_helpers import compare
from snntorch.functional import quant as snn_quant
from test_fx_helpers import B, check_equivalent, inputs, run_explicit, run_hidden
from test_fx_neurons import EXPLICIT
from test_nn_parity import ATAN, STATES, T, _fresh, _random, assert_same_run
from torch import nn

import snngraph as sg

HYPER = {
    "Leaky": {"beta": 0.8},
    "Synaptic": {"alpha": 0.6, "beta": 0.7},
    "Alpha": {"alpha": 0.9, "beta": 0.8},
    "Lapicque": {"beta": 0.8},
    "RLeaky": {"beta": 0.8, "linear_features": 6},
    "RSynaptic": {"alpha": 0.7, "beta": 0.8, "all_to_all": False, "V": 0.3},
}
QUANT = {  # snnTorch's state_quant arguments: uniform, and exponentially spaced around the threshold / 0
    "uniform4": {"num_bits": 4},
    "exp3_thr": {"num_bits": 3, "uniform": False, "threshold": 1.0, "upper_limit": 0.5},
    "exp5_zero": {"num_bits": 5, "uniform": False, "thr_centered": False, "lower_limit": 0.5},
}


@pytest.fixture(autouse=True)
def _float64_and_quiet_snntorch():
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    snn.SpikingNeuron.instances.clear()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Inhibition is an unstable feature")
        yield
    torch.set_default_dtype(default)
    snn.SpikingNeuron.instances.clear()


def _pair(neuron: str, theirs_kw: dict, ours_kw: dict) -> tuple[nn.Module, nn.Module]:
    theirs = getattr(snn, neuron)(spike_grad=ATAN, **_fresh(theirs_kw))
    ours = getattr(sg.nn, neuron)(spike_grad=ATAN, **_fresh(ours_kw))
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


def _options(case: str, wide: bool = False) -> tuple[dict, dict]:
    """(snnTorch's keywords, ours) for an option case; quantisers are each library's own (``wide``:
    levels up to 3.6, for Alpha, whose currents must grow past the threshold to fire)."""
    if case == "inhibition":
        return {"inhibition": True}, {"inhibition": True}
    if case == "inhibition_now":
        return {"inhibition": True, "reset_delay": False}, {"inhibition": True, "reset_delay": False}
    name = case.removeprefix("both_")
    args = QUANT[name] | ({"threshold": 3.0} if wide else {})
    theirs = {"state_quant": snn_quant.state_quant(**args)}
    ours = {"state_quant": sg.functional.state_quant(**args)}
    if case.startswith("both_"):
        theirs["inhibition"] = ours["inhibition"] = True
    return theirs, ours


CASES = ["inhibition", *QUANT, "both_uniform4"]
NOW = ("Leaky", "Synaptic", "RLeaky")  # the neurons with reset_delay (RSynaptic's is broken in snnTorch)


@pytest.mark.parametrize("case", CASES + ["inhibition_now"])
@pytest.mark.parametrize("neuron", sorted(HYPER))
def test_sg_nn_matches_snntorch(neuron, case):
    if case == "inhibition_now" and neuron not in NOW:
        pytest.skip("no reset_delay option")
    theirs_kw, ours_kw = _options(case, wide=neuron == "Alpha" and case != "exp3_thr")
    theirs, ours = _pair(neuron, HYPER[neuron] | theirs_kw, HYPER[neuron] | ours_kw)
    xs = _random((T, 4, 6), seed=len(case) + len(neuron), scale=2.0, shift=0.5)
    assert_same_run(theirs, ours, xs, STATES[neuron])


@pytest.mark.parametrize("neuron", ["Leaky", "Synaptic"])
def test_learnable_parameters_with_both_options(neuron):
    theirs_kw, ours_kw = _options("both_exp3_thr")
    learn = {"learn_beta": True, "learn_threshold": True, "threshold": torch.linspace(0.8, 1.2, 6)}
    theirs, ours = _pair(neuron, HYPER[neuron] | learn | theirs_kw, HYPER[neuron] | learn | ours_kw)
    assert_same_run(theirs, ours, _random((T, 4, 6), seed=3, scale=2.0, shift=0.5), STATES[neuron])


def test_init_hidden_sequential_with_both_options():
    theirs_kw, ours_kw = _options("both_uniform4")
    torch.manual_seed(0)
    theirs = nn.Sequential(nn.Linear(5, 6), snn.Leaky(beta=0.8, init_hidden=True, spike_grad=ATAN, **theirs_kw))
    ours = nn.Sequential(nn.Linear(5, 6), sg.nn.Leaky(beta=0.8, init_hidden=True, spike_grad=ATAN, **ours_kw))
    ours.load_state_dict(theirs.state_dict())
    assert_same_run(theirs, ours, _random((T, 4, 5), seed=4, scale=2.0, shift=0.5), (), hidden=True)


def test_inhibition_applies_the_graded_factor_and_takes_the_winner_over_all_neurons():
    xs = _random((T, 3, 2, 4), seed=5, scale=2.0, shift=0.5)
    unit = sg.nn.Leaky(beta=0.8, inhibition=True)
    graded = sg.nn.Leaky(beta=0.8, inhibition=True, graded_spikes_factor=0.5)
    flat = sg.nn.Leaky(beta=0.8, inhibition=True)
    m1 = m2 = m3 = None
    fired = 0
    for x in xs:
        s1, m1 = unit(x, m1)
        s2, m2 = graded(x, m2)  # snnTorch's fire_inhibition leaves the factor out
        s3, m3 = flat(x.reshape(3, 8), m3)  # (B, 2, 4): one winner per sample, as for the flat layer
        assert torch.equal(s2, 0.5 * s1) and torch.equal(s1.reshape(3, 8), s3) and torch.equal(m1, m2)
        assert (s1.reshape(3, -1).sum(1) <= 1).all()
        fired += int(s1.sum())
    assert fired > 0
    with pytest.raises(sg.GraphError, match="batched"):
        unit(torch.ones(4))


def test_state_quant_keeps_the_states_on_the_levels():
    q = sg.functional.state_quant(num_bits=3)
    lif = sg.nn.Synaptic(alpha=0.7, beta=0.8, state_quant=q)
    syn = mem = None
    for x in _random((T, 2, 6), seed=6, scale=2.0):
        _, syn, mem = lif(x, syn, mem)
        for value in (syn, mem):
            assert torch.isin(value, q.levels.double()).all()


# --- sg.trace of snnTorch models -------------------------------------------------------------------------
TRACED = {
    "leaky": lambda **kw: snn.Leaky(beta=0.8, **kw),
    "synaptic": lambda **kw: snn.Synaptic(alpha=0.7, beta=0.8, **kw),
    "alpha": lambda **kw: snn.Alpha(alpha=0.9, beta=0.8, **kw),
    "lapicque": lambda **kw: snn.Lapicque(beta=0.8, **kw),
    "rleaky": lambda **kw: snn.RLeaky(beta=0.8, linear_features=5, **kw),
    "rsynaptic": lambda **kw: snn.RSynaptic(alpha=0.7, beta=0.8, all_to_all=False, V=0.3, **kw),
}


def _snn_options(case: str) -> dict:
    return {"inhibition": {"inhibition": True},
            "quant": {"state_quant": snn_quant.state_quant(num_bits=4)},
            "both": {"inhibition": True, "state_quant": snn_quant.state_quant(num_bits=3, uniform=False)}}[case]


@pytest.fixture
def float32():
    torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("case", ["inhibition", "quant", "both"])
@pytest.mark.parametrize("op", sorted(TRACED))
def test_trace_init_hidden(op, case, float32):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), TRACED[op](init_hidden=True, **_snn_options(case)))
    xs = inputs(4)
    graph = check_equivalent(model, xs[0], xs, lambda: run_hidden(model, xs))
    node = graph.nodes["_1"]
    assert node.inhibition == (case != "quant") and (node.state_quant is None) == (case == "inhibition")


@pytest.mark.parametrize("case", ["inhibition", "both"])
@pytest.mark.parametrize("op", ["leaky", "synaptic", "rleaky"])
def test_trace_explicit_state(op, case, float32):
    torch.manual_seed(0)
    neuron = TRACED[op](**_snn_options(case))
    n = len(STATES[type(neuron).__name__])
    model = EXPLICIT[n](neuron)
    zeros = [torch.zeros(B, 5) for _ in range(n)]
    recurrent = op.startswith("r")
    carry = [(i, i) for i in range(n)] if recurrent else [(i, i + 1) for i in range(n)]
    outputs = list(range(n if recurrent else n + 1))
    xs = inputs(4)
    graph = check_equivalent(model, (xs[0], *zeros), xs, lambda: run_explicit(model, xs, zeros, outputs, carry),
                             keep_state_outputs=True)
    assert any(getattr(node, "inhibition", False) for node in graph.nodes.values())


def test_trace_reads_sg_quantiser_and_refuses_opaque_callables(float32):
    q = sg.functional.state_quant(num_bits=2)
    graph = sg.trace(nn.Sequential(nn.Linear(4, 5), sg.nn.Leaky(beta=0.8, init_hidden=True, state_quant=q)),
                     torch.zeros(2, 4))
    assert graph.nodes["_1"].state_quant == tuple(q.levels.tolist())
    opaque = sg.nn.Leaky(beta=0.8, init_hidden=True, state_quant=lambda m: m.round())
    with pytest.raises(sg.GraphError, match="state_quant .* is not traceable"):
        sg.trace(nn.Sequential(nn.Linear(4, 5), opaque), torch.zeros(2, 4))


# --- the IR: builder, text, files, compiled training, ONNX -----------------------------------------------
def _graph(model: str = "leaky", **kw) -> sg.Graph:
    g = sg.Graph("opts")
    x = g.input("x", shape=(6,))
    extra = {"beta": 0.8} if model != "synaptic" else {"alpha": 0.7, "beta": 0.8}
    n = getattr(g, model)(g.linear(x, 5, name="fc"), name="lif", **extra, **kw)
    g.output("spk", n)
    g.output("mem", n.mem)
    return g


def test_text_and_files_keep_the_options(tmp_path):
    levels = sg.functional.state_quant(num_bits=3).levels
    g = _graph(inhibition=True, state_quant=levels)
    text = g.to_text(with_params=True)
    assert "inhibition=true" in text and "state_quant=(" in text
    back = sg.parse(text)
    assert back.nodes["lif"] == g.nodes["lif"]
    sg.save(g, tmp_path / "g.snng")
    loaded = sg.load(tmp_path / "g.snng")
    assert loaded.nodes["lif"].state_quant == g.nodes["lif"].state_quant and loaded.nodes["lif"].inhibition
    assert "inhibition" not in _graph().to_text() and "state_quant" not in _graph().to_text()


@pytest.mark.parametrize("levels, match", [((0.5, 0.1), "ascending"), ((), "non-empty"), ("abc", "quantiser"),
                                           ((0.0, float("nan")), "finite")])
def test_builder_refuses_bad_levels(levels, match):
    with pytest.raises(sg.GraphError, match=match):
        _graph(state_quant=levels)


def test_parser_refuses_unsorted_levels():
    text = _graph(state_quant=(0.0, 1.0)).to_text(with_params=True).replace("state_quant=(0.0, 1.0)",
                                                                          "state_quant=(1.0, 0.0)")
    with pytest.raises(sg.GraphError, match="ascending"):
        sg.parse(text)


@pytest.mark.parametrize("model", ["leaky", "synaptic"])
def test_compiled_training_step_matches_stepping(model, float32):
    q = sg.functional.state_quant(num_bits=4)
    g = _graph(model, inhibition=True, state_quant=q)
    net = sg.compile(g).double()
    assert not net.graph.nodes["lif"].fused
    fc = nn.Linear(6, 5).double()
    fc.load_state_dict(net.fc.state_dict())
    kw = {"beta": 0.8} if model == "leaky" else {"alpha": 0.7, "beta": 0.8}
    lif = getattr(sg.nn, "Leaky" if model == "leaky" else "Synaptic")(inhibition=True, state_quant=q,
                                                                        init_hidden=True, **kw)
    xs = _random((T, 3, 6), seed=8, scale=2.0, shift=0.3)
    out = net(xs)
    ref = torch.stack([lif(fc(x)) for x in xs])
    assert torch.equal(out["spk"], ref) and out["spk"].sum() > 0
    out["spk"].sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(net.fc.weight.grad, fc.weight.grad, rtol=1e-9, atol=1e-12)
    torch.optim.SGD(net.parameters(), lr=0.1).step()
    assert not torch.equal(net.fc.weight, fc.weight)


@pytest.mark.parametrize("mode", ["sequence", "step"])
@pytest.mark.parametrize("model", ["leaky", "synaptic", "rleaky", "alpha", "lapicque"])
def test_onnx_export_matches_the_compiled_net(model, mode, tmp_path, float32):
    g = sg.Graph(model)
    x = g.input("x", shape=(6,))
    kw = {"synaptic": {"alpha": 0.7, "beta": 0.8}, "alpha": {"alpha": 0.9, "beta": 0.8}}.get(model, {"beta": 0.8})
    n = getattr(g, model)(g.linear(x, 5, name="fc"), name="lif", inhibition=True,
                          state_quant=sg.functional.state_quant(num_bits=4), **kw)
    g.output("spk", n)
    g.output("mem", n.mem)
    out = compare(g, tmp_path, shapes=((2, 1), (6, 3)), mode=mode)
    assert out["spk"].sum() > 0 or model in ("alpha", "lapicque")


@pytest.mark.parametrize("case", ["inhibition", "uniform4", "both_uniform4", "inhibition_now"])
def test_integrate_fire_is_snntorch_leaky_with_beta_one(case):
    theirs_kw, ours_kw = _options(case)
    theirs = snn.Leaky(beta=1.0, spike_grad=ATAN, **theirs_kw)
    ours = sg.nn.IntegrateFire(spike_grad=ATAN, **ours_kw)
    assert_same_run(theirs, ours, _random((T, 4, 6), seed=9, scale=1.0, shift=0.1), ("mem",))
