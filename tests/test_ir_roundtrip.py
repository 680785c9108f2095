"""Round trips of the IR for every node kind: text form with and without parameter values, save/load,
on hand-built graphs of each kind and on hypothesis-generated graphs."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings

import snngraph as sg
from snngraph.ir.node import NODE_KINDS
from snngraph.testing import node_kind_graphs, random_graphs

KINDS = node_kind_graphs()
ROUND_TRIP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_hand_built_graphs_cover_every_node_kind():
    ops = {node.op for g in KINDS.values() for node in g.nodes.values()}
    models = sg.neuron_models()  # user models other tests declare are not hand-built here
    assert ops == {op for op in NODE_KINDS if op not in models or models[op].builtin}


def assert_round_trips(g, tmp_path):
    sg.verify(g)
    text = g.to_text()
    assert sg.parse(g.to_text(with_params=True)) == g
    assert sg.parse(text).to_text() == text
    assert str(sg.parse(text)) == text
    path = tmp_path / f"{g.name}.sg"
    sg.save(g, path)
    loaded = sg.load(path)
    assert loaded == g
    assert loaded.to_text(with_params=True) == g.to_text(with_params=True)


@pytest.mark.parametrize("key", sorted(KINDS))
def test_round_trip_each_node_kind(key, tmp_path):
    assert_round_trips(KINDS[key], tmp_path)


@pytest.mark.parametrize("key", ["leaky", "rleaky", "feedback", "conv2d", "leaky_integrator"])
def test_round_trip_after_the_default_pipeline(key, tmp_path):
    """Pass outputs (surrogates filled in, fused flags) print, parse and save like builder graphs."""
    assert_round_trips(sg.compile(KINDS[key]).graph, tmp_path)


@pytest.mark.parametrize("grad", ["atan", "fast_sigmoid", "sigmoid", "triangular", "heaviside",
                                  "straight_through_estimator", "spike_rate_escape", "SFS", "SSO", "LSO"])
def test_round_trip_explicit_surrogates(grad, tmp_path):
    g = sg.Graph("surrogates")
    x = g.input("x", (3,))
    g.output("spk", g.synaptic(x, 0.5, 0.9, spike_grad=getattr(sg.surrogate, grad)(), name="syn"))
    assert g.nodes["syn"].surrogate is not None
    assert_round_trips(g, tmp_path)


def test_round_trip_float64_parameters_and_odd_values(tmp_path):
    g = sg.Graph("f64")
    x = g.input("x", (3,), dtype="float64")
    w = np.array([[1e-30, -0.0, 3.141592653589793], [1e30, 2.0**-149, -1.5]], dtype=np.float64)
    h = g.linear(x, 2, weight=w, bias_value=np.array([0.1, -7.0]), name="fc")
    g.output("spk", g.leaky(h, np.array([0.0, 1.0], np.float32), threshold=1e-7, name="lif"))
    assert g.nodes["fc"].weight.dtype == "float64"
    assert_round_trips(g, tmp_path)


def test_round_trip_multiple_inputs_and_outputs(tmp_path):
    torch.manual_seed(0)
    g = sg.Graph("two")
    a, b = g.input("a", (4,)), g.input("b", (2,))
    s = g.rsynaptic(g.concat(a, b, name="cat"), 0.7, 0.8, name="rsyn")
    g.output("spk", s)
    g.output("syn", s.syn)
    g.output("mem", s.mem)
    g.output("raw", b)
    assert_round_trips(g, tmp_path)


def test_parse_without_values_keeps_structure_and_defaults():
    """Without values, weights are re-initialised but shapes, flags and scalars survive."""
    g = KINDS["rleaky"]
    back = sg.parse(g.to_text())
    assert list(back.nodes) == list(g.nodes)
    for name, node in g.nodes.items():
        for key, p in node.params().items():
            q = back.nodes[name].params()[key]
            assert (q.shape, q.dtype, q.learnable) == (p.shape, p.dtype, p.learnable)
            if p.is_scalar:
                assert q == p


@ROUND_TRIP
@given(random_graphs(surrogates=True))
def test_round_trip_random_graphs(g):
    sg.verify(g)
    text = g.to_text()
    assert sg.parse(g.to_text(with_params=True)) == g
    assert sg.parse(text).to_text() == text


@ROUND_TRIP
@given(random_graphs(max_nodes=6, surrogates=True))
def test_save_load_random_graphs(g):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "g.sg"
        sg.save(g, path)
        assert sg.load(path) == g


@settings(max_examples=30, deadline=None)
@given(random_graphs(max_nodes=6))
def test_verify_accepts_builder_and_pass_outputs(g):
    assert sg.verify(g) is g
    lowered = sg.compile(g).graph
    assert sg.verify(lowered) is lowered
