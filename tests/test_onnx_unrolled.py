"""Scan-free static ONNX export (``export_onnx(..., num_steps=T, unroll=True)``) vs the eager torch
runtime in onnxruntime; and explicit-state neurons in the Scan and step exports."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from onnx_helpers import assert_close, compare, eager, export_and_check, inputs_for, quantise
from unroll_helpers import NEURONS, delay_graph, neuron_graph

import snngraph as sg
from snngraph.runtimes.onnx import Session
from snngraph.testing_graphs import random_graphs

LOOPS = {"Scan", "Loop"}


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


def compare_unrolled(g: sg.Graph, tmp_path, steps: int, batches=(1, 3), seed: int = 0) -> onnx.ModelProto:
    """Export ``g`` unrolled over ``steps``; no loop node; outputs equal eager's for each batch size."""
    path = tmp_path / f"{g.name}_unrolled{steps}.onnx"
    model = export_and_check(g, path, num_steps=steps, unroll=True)
    assert not {n.op_type for n in model.graph.node} & LOOPS
    sess = Session(path)
    for batch in batches:
        xs = inputs_for(g, steps, batch, seed, scale=3.0)
        want, got = eager(g, xs), sess.run(xs)
        assert set(got) == set(want)
        for key in want:
            assert_close(f"{key} (T={steps}, B={batch})", got[key], want[key], g.type_of(g.outputs[key]).spike)
    return model


@pytest.mark.parametrize("kind", sorted(sg.testing.node_kind_graphs()))
@pytest.mark.parametrize("steps", [1, 6])
def test_every_node_kind(kind, steps, tmp_path):
    compare_unrolled(quantise(sg.testing.node_kind_graphs()[kind]), tmp_path, steps)


@pytest.mark.parametrize("kind", NEURONS)
@pytest.mark.parametrize("reset,delayed", [("subtract", True), ("zero", False), ("none", True)])
def test_neuron_reset_variants_per_neuron_parameters(kind, reset, delayed, tmp_path):
    compare_unrolled(quantise(neuron_graph(kind, reset, delayed, per_neuron=True)), tmp_path, 7)


def test_delays_and_feedback(tmp_path):
    compare_unrolled(quantise(delay_graph()), tmp_path, 5)


def mlp() -> sg.Graph:
    g = sg.Graph("mlp")
    x = g.input("x", (12,))
    s = g.leaky(g.linear(x, 16, name="fc1"), beta=0.9, learn_beta=True, name="lif1")
    o = g.synaptic(g.linear(s, 5, name="fc2"), alpha=0.8, beta=0.9, name="lif2")
    g.output("spk", o)
    g.output("mem", o.mem)
    return g


def test_same_interface_as_the_scan_export(tmp_path):
    g = quantise(mlp())
    scan = sg.export_onnx(g, None, num_steps=4)
    flat = compare_unrolled(g, tmp_path, 4)
    for a, b in ((scan.graph.input, flat.graph.input), (scan.graph.output, flat.graph.output)):
        assert [v.name for v in a] == [v.name for v in b]
        assert [str(v.type) for v in a] == [str(v.type) for v in b]
    assert {n.op_type for n in scan.graph.node} & LOOPS
    assert __import__("json").loads(flat.metadata_props[0].value)["unrolled"] is True


def test_parameters_are_stored_once(tmp_path):
    """A T=100 export holds each weight once: the initializers do not grow with T."""
    g = mlp()
    short, long = (sg.export_onnx(g, None, num_steps=t, unroll=True) for t in (2, 100))
    params = {f"{n}.{k}": p.value for n, node in g.nodes.items() for k, p in node.params().items()}
    for model in (short, long):
        names = [i.name for i in model.graph.initializer]
        assert all(names.count(k) <= 1 for k in params)  # scalar 1s (graded_spikes_factor) are skipped
        assert all(names.count(k) == 1 for k in ("fc1.weight", "fc1.bias", "fc2.weight"))  # decays: folded clamps
        weight_bytes = sum(i.ByteSize() for i in model.graph.initializer if i.name in params)
        assert weight_bytes < 1.1 * sum(v.nbytes for v in params.values()) + 1024
    # only the per-step int64 indices (one scalar per step) are added with T
    assert len(long.graph.initializer) - len(short.graph.initializer) == 98
    assert long.ByteSize() < short.ByteSize() + 400_000  # graph structure, not weights (fc1 is 16x12)


def test_trained_net_exports_its_parameters(tmp_path):
    net = sg.compile(quantise(mlp()))
    with torch.no_grad():
        net.lif1.beta.fill_(0.75)
    path = tmp_path / "net.onnx"
    export_and_check(net, path, num_steps=3, unroll=True)
    xs = inputs_for(net.source, 3, 2)
    got, want = Session(path).run(xs), eager(net.source, xs, net)
    assert_close("mem", got["mem"], want["mem"], spike=False)
    assert np.array_equal(got["spk"], want["spk"])


@pytest.mark.parametrize("kwargs", [dict(unroll=True), dict(unroll=True, mode="step"),
                                    dict(unroll=1, num_steps=3)])
def test_unroll_needs_a_fixed_number_of_steps(kwargs, tmp_path):
    with pytest.raises(sg.GraphError, match="unroll=True needs mode='sequence' and num_steps|num_steps applies"):
        sg.export_onnx(mlp(), tmp_path / "x.onnx", **kwargs)


def test_explicit_state_neurons_in_scan_and_step_exports(tmp_path):
    """An unrolled graph itself (explicit-state neurons, zero delays) exports in both ordinary modes."""
    g = quantise(sg.testing.node_kind_graphs()["rsynaptic"])
    u = sg.passes.unroll_time(g, steps=3)
    compare(u, tmp_path, ((1, 1), (4, 2)))
    compare(u, tmp_path, ((3, 2),), mode="step")


@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(random_graphs(max_nodes=6))
def test_random_graphs(tmp_path, graph):
    compare_unrolled(quantise(graph), tmp_path, 4, batches=(2,))
