"""Explicit-state neurons (``state_inputs=True``): typing, text / file round trips, the torch runtime
(sequence and step), the passes; and ``unroll_time``'s arguments and golden text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import snngraph as sg
from snngraph.ir.types import Ref
from snngraph.ir.verify import verify
from snngraph.passes import fuse_state_updates, insert_surrogates, unroll_time

GOLDEN = Path(__file__).parent / "golden"


def explicit(g: sg.Graph, name: str, states: dict[str, Ref]) -> sg.Graph:
    """``g`` with neuron ``name`` made explicit-state, reading ``states`` (port -> value)."""
    node = g.nodes[name]
    inputs = (node.inputs[0], *(states[p] for p in node.state_ports))
    return g.with_nodes({name: node.replace(state_inputs=True, inputs=inputs)})


def looped(kind: str) -> tuple[sg.Graph, sg.Graph]:
    """(stateful graph, the same with the neuron explicit-state, fed its own state ports through delays)."""
    g = sg.testing.node_kind_graphs()[kind]
    node = g.nodes["li" if kind == "leaky_integrator" else "lif"]
    delays = [sg.ir.synapses.Delay(name=f"prev_{p}", inputs=(Ref(node.name, p),), steps=1,
                                   shape=g.type_of(Ref(node.name, p)).shape) for p in node.state_ports]
    with_delays = g.with_nodes({d.name: d for d in delays})
    return g, explicit(with_delays, node.name, {p: Ref(f"prev_{p}", "out") for p in node.state_ports})


@pytest.mark.parametrize("kind", ["leaky", "synaptic", "alpha", "lapicque", "rleaky", "rsynaptic_one_to_one",
                                  "integrate_fire", "leaky_integrator", "adaptive_leaky", "leaky_graded"])
def test_stateful_neuron_equals_explicit_state_through_delays(kind):
    g, e = looped(kind)
    verify(e)
    sg.testing.assert_graphs_equivalent(g, e, num_steps=9, dtype=torch.float64, atol=1e-12)


def test_step_mode_reads_the_state_from_the_inputs():
    g, e = looped("synaptic")
    net, enet = sg.compile(g).eval(), sg.compile(e).eval()
    assert not any(k.startswith("lif.") for k in enet.init_state(2))  # nothing carried by the node
    x = sg.testing.spike_inputs(g, 6, 2)["x"]
    want = net(x)
    state = enet.init_state(2)
    for t in range(6):
        out, state = enet.step(x[t], state)
        for key in want:
            torch.testing.assert_close(out[key], want[key][t], atol=1e-6, rtol=0)


def test_fuse_state_updates_leaves_explicit_state_neurons_unfused():
    g = insert_surrogates(sg.testing.node_kind_graphs()["leaky"])
    e = explicit(g, "lif", {"mem": Ref("x", "out")})
    assert fuse_state_updates(e) is e
    assert fuse_state_updates(g).nodes["lif"].fused


def test_text_and_file_round_trips(tmp_path):
    u = unroll_time(sg.testing.node_kind_graphs()["rsynaptic"], steps=3)
    assert u.nodes["lif_t2"].state_inputs and "state_inputs=true" in u.to_text()
    assert sg.parse(u.to_text(with_params=True)) == u
    sg.save(u, tmp_path / "u.sg")
    assert sg.load(tmp_path / "u.sg") == u


def test_wrong_state_input_type_is_a_graph_error_naming_the_node():
    g = sg.Graph("bad")
    x = g.input("x", (4,))
    g.input("y", (3,))
    g.output("out", g.synaptic(x, 0.5, 0.9, name="syn"))
    bad = explicit(g, "syn", {"syn": Ref("y", "out"), "mem": Ref("x", "out")})
    with pytest.raises(sg.GraphError, match=r"synaptic 'syn': state input 'syn' has type f32\[3\], expected f32\[4\]"):
        verify(bad)
    with pytest.raises(sg.GraphError, match=r"synaptic 'syn': state input 'syn'"):
        sg.parse(bad.to_text())
    missing = bad.with_nodes({"syn": bad.nodes["syn"].replace(inputs=(Ref("x", "out"),))})
    with pytest.raises(sg.GraphError, match=r"synaptic 'syn': takes 3 inputs, got 1"):
        verify(missing)


def test_wrong_state_input_dtype():
    g = sg.Graph("dt")
    x = g.input("x", (2,))
    g.output("out", g.leaky(x, 0.5, name="lif"))
    e = explicit(g.with_nodes({"m": sg.ir.synapses.Input(name="m", shape=(2,), dtype="float64")}), "lif",
                 {"mem": Ref("m", "out")})
    with pytest.raises(sg.GraphError, match=r"leaky 'lif': state input 'mem' has type f64\[2\]"):
        verify(e)


@pytest.mark.parametrize("steps", [0, -1, True, 1.5, "2"])
def test_unroll_time_rejects_bad_steps(steps):
    with pytest.raises(sg.GraphError, match="steps must be a positive int"):
        unroll_time(sg.testing.node_kind_graphs()["leaky"], steps=steps)


def test_steps_none_keeps_the_reordering_pass():
    g = sg.testing.node_kind_graphs()["feedback"]
    once = unroll_time(g)
    assert unroll_time(once) is once and unroll_time(once, steps=None) is once
    assert unroll_time.name == "unroll_time"
    assert unroll_time in sg.passes.default_pipeline()


def tiny() -> sg.Graph:
    g = sg.Graph("tiny")
    x = g.input("x", (2,))
    fb = g.feedback((2,), name="fb")
    fc = g.linear(x, 2, weight=np.eye(2, dtype=np.float32), bias=False, name="fc")
    s = g.leaky(g.add(fc, fb, name="sum"), 0.5, name="lif")
    g.connect(fb, s.mem)
    g.output("spk", s)
    return g


def test_golden_text_of_a_two_step_unrolling():
    text = unroll_time(tiny(), steps=2).to_text()
    assert text == (GOLDEN / "tiny.unroll_time_steps2.txt").read_text()


def test_one_step_unrolling_is_the_graph_renamed():
    g = sg.testing.node_kind_graphs()["rleaky"]
    u = unroll_time(g, steps=1)
    assert [n.replace(name=n.name[:-3], inputs=tuple(Ref(r.node[:-3], r.port) for r in n.inputs))
            for n in u.nodes.values()] == list(g.nodes.values())
    assert list(u.outputs) == ["spk_t0", "mem_t0"]


def test_nir_export_refuses_explicit_state():
    u = unroll_time(sg.testing.node_kind_graphs()["leaky"], steps=2)
    with pytest.raises(sg.GraphError, match="leaky 'lif_t1': has explicit state inputs"):
        sg.to_nir(u, dt=1e-3)
