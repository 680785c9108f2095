"""Runtime limits: the state and parameters a compiled net or an ONNX session would hold are bounded in
total (``sg.limits.MAX_RUNTIME_BYTES``) before anything is allocated, and unrolling is bounded in steps and
nodes (``MAX_UNROLL_STEPS``, ``MAX_UNROLLED_NODES``). Tests of the defaults run in a subprocess under an
address-space limit, so that a missing bound fails the test instead of exhausting the machine."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from limited import run_limited
from onnx import TensorProto, helper

import snngraph as sg
from snngraph.cli import main
from snngraph.runtimes.onnx import Session

MiB = 1 << 20

FEEDBACK_GRAPH = """
import snngraph as sg
def feedback_graph(n=2**27, steps=4, loops=4):
    '''Four feedback delays of (steps, B, n): a few bytes of graph, 8 GiB of state at B = 1.'''
    g = sg.Graph("loops")
    x = g.input("x", (1,))
    g.output("x_out", g.scale(x, 1.0, name="sx"))
    for i in range(loops):
        fb = g.feedback((n,), steps=steps, name=f"fb{i}")
        g.connect(fb, g.scale(fb, 0.5, name=f"s{i}"))
        g.output(f"o{i}", fb)
    return g
"""


def _feedback_graph(n: int, steps: int = 4, loops: int = 4) -> sg.Graph:
    namespace: dict = {}
    exec(FEEDBACK_GRAPH, namespace)  # the same builder as the subprocess's
    return namespace["feedback_graph"](n, steps, loops)


def test_forward_with_huge_feedback_state_is_refused_under_a_memory_limit():
    """Before: the first net(x) at T = 1, B = 1 took 31 s and 8 GiB."""
    out = run_limited(FEEDBACK_GRAPH + """
import time, torch
net = sg.compile(feedback_graph())
start = time.monotonic()
for call in (lambda: net(torch.zeros(1, 1, 1)), lambda: net.init_state(1), lambda: net.step(torch.zeros(1, 1))):
    try:
        call()
        print("ran")
    except sg.GraphError as err:
        print("GraphError:", err)
print("seconds", time.monotonic() - start)
""", gib=2.5, timeout=120)
    assert out.count("GraphError: init_state: the state for batch 1 takes 8589934592 bytes") == 3, out
    assert "sg.limits.MAX_RUNTIME_BYTES = 4294967296" in out and "'fb0.buffer' of shape (4, 1, 134217728)" in out
    assert float(out.split("seconds")[1]) < 5.0


def test_runtime_limit_counts_parameters_and_twice_the_state(monkeypatch):
    net = sg.compile(_feedback_graph(1024, steps=2, loops=2))
    state = 2 * 2 * 1024 * 4  # two buffers of (2, B=1, 1024) float32
    params = sum(t.numel() * t.element_size() for t in (*net.parameters(), *net.buffers()))
    monkeypatch.setattr(sg.limits, "MAX_RUNTIME_BYTES", params + 2 * state)
    assert set(net.init_state(1)) == {"fb0.buffer", "fb1.buffer"}
    assert net(torch.zeros(3, 1, 1))["o0"].shape == (3, 1, 1024)
    monkeypatch.setattr(sg.limits, "MAX_RUNTIME_BYTES", params + 2 * state - 1)
    with pytest.raises(sg.GraphError, match=f"batch 1 takes {state} bytes.*MAX_RUNTIME_BYTES"):
        net.init_state(1)
    with pytest.raises(sg.GraphError, match="MAX_RUNTIME_BYTES"):
        net(torch.zeros(3, 1, 1))
    monkeypatch.setattr(sg.limits, "MAX_RUNTIME_BYTES", params + 4 * state - 1)
    with pytest.raises(sg.GraphError, match=f"batch 2 takes {2 * state} bytes"):
        net.init_state(2)  # the batch counts
    net.init_state(1)


def test_parameters_count_toward_the_runtime_limit(monkeypatch):
    torch.manual_seed(0)
    g = sg.Graph("wide")
    s = g.leaky(g.linear(g.input("x", (256,)), 256, name="fc"), beta=0.9, name="lif")
    g.output("spk", s)
    net = sg.compile(g)
    monkeypatch.setattr(sg.limits, "MAX_RUNTIME_BYTES", 256 * 256 * 4)  # the weight alone
    params = sum(t.numel() * t.element_size() for t in (*net.parameters(), *net.buffers()))
    assert params > 256 * 256 * 4
    with pytest.raises(sg.GraphError, match=f"takes 1024 bytes .*with the parameters' {params} a step would hold"):
        net.step(torch.zeros(1, 256))


# --- ONNX sessions -----------------------------------------------------------------------------------
def six_state_model(n: int) -> bytes:
    """A tiny step model (well under 1 kB) declaring six states of (B, n) float32, passed through."""
    states = [f"n{i}.mem" for i in range(6)]
    info = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["B", n]) for name in states]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["spk"])] +
        [helper.make_node("Identity", [s], [f"{s}.next"]) for s in states], "six",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 1]), *info],
        [helper.make_tensor_value_info("spk", TensorProto.FLOAT, ["B", 1]),
         *(helper.make_tensor_value_info(f"{s}.next", TensorProto.FLOAT, ["B", n]) for s in states)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    meta = {"graph": "six", "mode": "step", "inputs": {"x": ["B", 1]}, "outputs": {"spk": ["B", 1]},
            "states": [{"name": s, "shape": ["B", n]} for s in states]}
    helper.set_model_props(model, {"snngraph": json.dumps(meta)})
    return model.SerializeToString()


def test_session_with_huge_declared_state_is_refused_under_a_memory_limit():
    """Before: an 861-byte model of six states reached 6.3 GiB in init_state(1) + step."""
    out = run_limited(f"""
import numpy as np, snngraph as sg
from snngraph.runtimes.onnx import Session
sess = Session({six_state_model(2**27)!r})
for call in (lambda: sess.init_state(1), lambda: sess.step(np.zeros((1, 1), np.float32))):
    try:
        call()
        print("ran")
    except sg.GraphError as err:
        print("GraphError:", err)
""", gib=2.5, timeout=120)
    assert "GraphError: init_state: model 'six' declares a state of 3221225472 bytes for batch 1" in out, out
    assert "GraphError: step: model 'six' declares a state of 3221225472 bytes" in out, out
    assert "MAX_RUNTIME_BYTES" in out


def test_session_runtime_limit_is_twice_the_state(monkeypatch):
    data = six_state_model(1024)
    assert len(data) < 1024
    sess = Session(data)
    state = 6 * 1024 * 4
    monkeypatch.setattr(sg.limits, "MAX_RUNTIME_BYTES", 2 * state)
    out, new = sess.step(np.ones((1, 1), np.float32), sess.init_state(1))
    assert out["spk"].shape == (1, 1) and new["n5.mem"].shape == (1, 1024)
    with pytest.raises(sg.GraphError, match="for batch 2.*MAX_RUNTIME_BYTES"):
        sess.init_state(2)
    with pytest.raises(sg.GraphError, match="step: .*for batch 3"):
        sess.step(np.ones((3, 1), np.float32), {k: np.zeros((3, 1024), np.float32) for k in new})


@pytest.mark.parametrize("edit", [
    lambda m: m.__setitem__("graph", "six\n\x1b[31mfake"),
    lambda m: m["states"][0].__setitem__("name", "n0.mem\n"),
    lambda m: m.__setitem__("inputs", {"x\x1b": ["B", 1]}),
])
def test_session_metadata_names_must_be_names(edit):
    model = onnx.load_from_string(six_state_model(4))
    meta = json.loads(model.metadata_props[0].value)
    edit(meta)
    model.metadata_props[0].value = json.dumps(meta)
    with pytest.raises(sg.GraphError, match="is not a valid name") as info:
        Session(model.SerializeToString())
    assert "\x1b" not in str(info.value) and "\n" not in str(info.value)


# --- unrolling -------------------------------------------------------------------------------------
def _small() -> sg.Graph:
    torch.manual_seed(0)
    g = sg.Graph("small")
    g.output("spk", g.leaky(g.linear(g.input("x", (4,)), 4, name="fc"), beta=0.9, name="lif"))
    return g


def test_unrolled_export_of_64000_steps_is_refused_at_once():
    """Before: 63 s and 4 GiB. The check comes before any unrolling."""
    out = run_limited("""
import time, snngraph as sg
g = sg.Graph("small")
g.output("spk", g.leaky(g.linear(g.input("x", (4,)), 4, name="fc"), beta=0.9, name="lif"))
start = time.monotonic()
try:
    sg.export_onnx(g, None, num_steps=64000, unroll=True)
    print("exported")
except sg.GraphError as err:
    print("GraphError:", err)
print("seconds", time.monotonic() - start)
""", gib=2.5, timeout=120)
    assert "GraphError: graph 'small': cannot unroll 64000 time steps, more than sg.limits.MAX_UNROLL_STEPS" in out
    assert float(out.split("seconds")[1]) < 5.0


def test_unroll_limits_steps_and_nodes(monkeypatch):
    from snngraph.passes.unroll_time import unroll_time

    g = _small()
    with pytest.raises(sg.GraphError, match="cannot unroll 4097 time steps"):
        unroll_time(g, steps=4097)
    monkeypatch.setattr(sg.limits, "MAX_UNROLLED_NODES", 30)
    assert len(unroll_time(g, steps=10).nodes) <= 30
    with pytest.raises(sg.GraphError, match="its 3 nodes over 11 steps makes 33 nodes.*MAX_UNROLLED_NODES = 30"):
        sg.export_onnx(g, None, num_steps=11, unroll=True)
    monkeypatch.setattr(sg.limits, "MAX_UNROLL_STEPS", 5)
    with pytest.raises(sg.GraphError, match="cannot unroll 6 time steps.*MAX_UNROLL_STEPS = 5"):
        unroll_time(g, steps=6)
    sg.export_onnx(g, None, num_steps=6)  # a Scan over a fixed T unrolls nothing


def test_cli_export_unroll_is_bounded(tmp_path, capsys, monkeypatch):
    sg.save(_small(), tmp_path / "m.sg")
    monkeypatch.setattr(sg.limits, "MAX_UNROLL_STEPS", 10)  # small, so that the test stays cheap without a bound
    argv = ["export", str(tmp_path / "m.sg"), "--onnx", str(tmp_path / "m.onnx"), "--num-steps", "11", "--unroll"]
    assert main(argv) == 1
    assert "MAX_UNROLL_STEPS" in capsys.readouterr().err and not (tmp_path / "m.onnx").exists()
