"""``sg.testing``: assert_graphs_equivalent finds and names differences; random_graphs produces every
node kind, shrinks to small examples and reproduces; the default pipeline preserves semantics."""

import random
import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

import snngraph as sg
from snngraph.ir.node import NODE_KINDS
from snngraph.passes import insert_surrogates
from snngraph.testing import OPS, assert_graphs_equivalent, node_kind_graphs, random_graphs, spike_inputs

KINDS = node_kind_graphs()
NO_SHRINK = settings(database=None, phases=[Phase.generate], max_examples=2000)
SHRINK = settings(database=None, max_examples=2000, derandomize=True)


def mlp(w2_delta=0.0, spike_grad=None, dropout=False):
    rng = np.random.default_rng(0)
    g = sg.Graph("mlp")
    x = g.input("x", (6,))
    w1 = rng.normal(0, 0.8, (8, 6)).astype(np.float32)
    h = g.linear(x, 8, weight=w1, bias_value=np.zeros(8, np.float32), name="fc1")
    s = g.leaky(h, 0.9, learn_beta=True, spike_grad=spike_grad, name="lif1")
    if dropout:
        s = g.dropout(s, 0.5, name="drop")
    w2 = rng.normal(0, 0.8, (4, 8)).astype(np.float32)
    w2[2] += w2_delta
    o = g.leaky(g.linear(s, 4, weight=w2, bias=False, name="fc2"), 0.8, name="lif2")
    g.output("spk", o)
    g.output("mem", o.mem)
    return g


@pytest.mark.parametrize("key", sorted(KINDS))
def test_passes_on_parse_and_load_copies(key, tmp_path):
    g = KINDS[key]
    assert_graphs_equivalent(g, sg.parse(g.to_text(with_params=True)), num_steps=8)
    sg.save(g, tmp_path / "g.sg")
    assert_graphs_equivalent(g, sg.load(tmp_path / "g.sg"), num_steps=8)


def test_passes_on_compiled_nets_and_training_mode():
    g = mlp(dropout=True)
    assert_graphs_equivalent(sg.compile(g), g)
    assert_graphs_equivalent(g, sg.parse(g.to_text(with_params=True)), training=True)


def test_fails_naming_output_step_and_index_when_a_weight_is_perturbed():
    with pytest.raises(AssertionError) as info:
        assert_graphs_equivalent(mlp(), mlp(w2_delta=0.5))
    message = str(info.value)
    match = re.match(r"output '(spk|mem)' differs at time step (\d+), index \((\d+), (\d+)\): a=(\S+), b=(\S+) ",
                     message)
    assert match, message
    key, (t, b, i) = match.group(1), (int(match.group(k)) for k in (2, 3, 4))
    assert i == 2  # only neuron 2 of fc2 receives the perturbed weight
    x = spike_inputs(mlp(), 16, 2)["x"]
    out_a, out_b = sg.compile(mlp())(x)[key].detach(), sg.compile(mlp(w2_delta=0.5))(x)[key].detach()
    assert float(match.group(5).rstrip(",")) == pytest.approx(out_a[t, b, i].item())
    assert float(match.group(6)) == pytest.approx(out_b[t, b, i].item())
    assert torch.equal(out_a[:t], out_b[:t])  # the first difference is reported


def test_fails_on_gradients_when_outputs_agree():
    """Two surrogates: identical spikes and membranes, different gradients."""
    with pytest.raises(AssertionError, match=r"gradient of parameter '(fc1\.\w+|lif1\.beta)' differs at index"):
        assert_graphs_equivalent(mlp(), mlp(spike_grad=sg.surrogate.fast_sigmoid()))


def test_tolerances():
    assert_graphs_equivalent(mlp(), mlp(w2_delta=1e-9))
    with pytest.raises(AssertionError):
        assert_graphs_equivalent(mlp(), mlp(w2_delta=1e-3))
    assert_graphs_equivalent(mlp(), mlp(w2_delta=1e-3), atol=1.0, rtol=1.0)


def test_fails_on_different_outputs_or_inputs():
    a, b = mlp(), mlp()
    b = b.with_outputs({"spk": b.outputs["spk"]})
    with pytest.raises(AssertionError, match="different outputs"):
        assert_graphs_equivalent(a, b)
    with pytest.raises(AssertionError, match="different inputs"):
        assert_graphs_equivalent(KINDS["leaky"], KINDS["conv1d"])


def test_rejects_non_graphs():
    with pytest.raises(sg.GraphError, match="expects graphs or compiled nets"):
        assert_graphs_equivalent(mlp(), "mlp")


def test_spike_inputs_are_seeded_spikes():
    a = spike_inputs(KINDS["conv2d"], 5, 3, seed=7)
    b = spike_inputs(KINDS["conv2d"], 5, 3, seed=7)
    assert a["x"].shape == (5, 3, 2, 6, 6) and torch.equal(a["x"], b["x"])
    assert set(a["x"].unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(a["x"], spike_inputs(KINDS["conv2d"], 5, 3, seed=8)["x"])


def ops_of(g):
    return {node.op for node in g.nodes.values()} | ({"feedback"} if any(
        node.op == "delay" and node.name.startswith("feedback") for node in g.nodes.values()) else set())


def test_random_graphs_cover_every_node_kind():
    user_models = {name for name, m in sg.neuron_models().items() if not m.builtin}  # registered by other tests
    assert (set(OPS) - {"feedback"}) | {"input"} == set(NODE_KINDS) - user_models


@pytest.mark.parametrize("op", OPS)
def test_random_graphs_emit_every_op(op):
    g = find(random_graphs(ops=(op,)), lambda g: op in ops_of(g), settings=NO_SHRINK)
    sg.verify(g)


def test_random_graphs_shrink_to_small_examples():
    g = find(random_graphs(max_nodes=4), lambda g: "alpha" in ops_of(g), settings=SHRINK)
    assert len(g.nodes) <= 3 and len(g.outputs) == 1, g.to_text()


@pytest.mark.slow
def test_random_graphs_shrink_conv_stacks():
    g = find(random_graphs(), lambda g: "conv2d" in ops_of(g) and "leaky" in ops_of(g), settings=SHRINK)
    assert len(g.nodes) <= 4, g.to_text()  # input, conv2d, leaky (+ at most one adapter node)


def test_random_graphs_reproduce_from_the_hypothesis_seed():
    def draw(seed):
        return find(random_graphs(), lambda g: len(g.nodes) >= 4, settings=NO_SHRINK, random=random.Random(seed))

    assert draw(3) == draw(3)


def test_random_graphs_rejects_unknown_ops():
    with pytest.raises(ValueError, match="unknown ops"):
        random_graphs(ops=("linear", "softmax"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs(max_nodes=6, surrogates=True))
def test_default_pipeline_preserves_semantics(g):
    """compile(g) under the default pipeline computes what the bare graph (surrogates only) computes."""
    assert_graphs_equivalent(g, g, passes_b=[insert_surrogates], num_steps=8, atol=1e-5, rtol=1e-4)


PIPELINE = sg.passes.default_pipeline()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs(max_nodes=5, surrogates=True), st.integers(0, len(PIPELINE)))
def test_every_prefix_of_the_default_pipeline_preserves_semantics(g, k):
    # float64: the fused kernels' hand-written backward sums in another order than autograd, so
    # float32 gradients that cancel to ~0 differ by rounding noise; in float64 they agree tightly
    assert_graphs_equivalent(g, g, passes_a=PIPELINE[:k], passes_b=[insert_surrogates], num_steps=6, atol=1e-9,
                             rtol=1e-7, dtype=torch.float64)


def test_stochastic_surrogate_and_dropout_are_reproduced_without_touching_the_global_rng():
    g = mlp(spike_grad=sg.surrogate.SSO(), dropout=True)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    assert_graphs_equivalent(g, sg.parse(g.to_text(with_params=True)), training=True)
    assert torch.equal(torch.rand(3), expected)


def test_surrogates_are_opt_in():
    plain = find(random_graphs(ops=("leaky",)), lambda g: "leaky" in ops_of(g), settings=NO_SHRINK)
    assert all(getattr(n, "surrogate", None) is None for n in plain.nodes.values())
    fancy = find(random_graphs(ops=("leaky",), surrogates=True),
                 lambda g: any(getattr(n, "surrogate", None) is not None for n in g.nodes.values()), settings=NO_SHRINK)
    sg.verify(fancy)
