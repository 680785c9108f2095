"""ONNX robustness: the exported step model stepped through T steps equals the eager sequence and the
exported sequence model on random graphs; hostile metadata, files and run-time inputs given to
``sg.runtimes.onnx.Session`` are answered by ``GraphError`` without absurd allocations."""

from __future__ import annotations

import contextlib
import json
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx_helpers import assert_close, eager, inputs_for, quantise

import snngraph as sg
from snngraph.runtimes.onnx import Session
from snngraph.testing import random_graphs

MiB = 1 << 20


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


# --- step model == eager == sequence model, on random graphs -------------------------------------------
def _step_through(sess: Session, net: sg.CompiledNet, xs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Step the ONNX step model over T with its own state, checking that state against ``net.step``'s."""
    steps, batch = next(iter(xs.values())).shape[:2]
    state, ref_state = sess.init_state(batch), net.init_state(batch)
    assert list(state) == list(ref_state)
    collected: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for t in range(steps):
            out, state = sess.step({k: v[t] for k, v in xs.items()}, state)
            _, ref_state = net.step(state=ref_state, **{k: torch.from_numpy(v[t]) for k, v in xs.items()})
            for key, value in ref_state.items():
                assert_close(f"state {key} (t={t})", state[key], value.numpy(), spike=False)
            for key, value in out.items():
                collected.setdefault(key, []).append(value)
    return {k: np.stack(v) for k, v in collected.items()}


def test_step_model_through_time_equals_eager_and_sequence_model(tmp_path):
    counts = {"checked": 0, "refused": 0}

    @settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(random_graphs(max_nodes=6))
    def check(graph: sg.Graph) -> None:
        g = quantise(graph)
        try:
            sg.export_onnx(g, tmp_path / "step.onnx", mode="step")
            sg.export_onnx(g, tmp_path / "seq.onnx")
        except sg.GraphError:  # a construct without an ONNX lowering: legitimately refused
            counts["refused"] += 1
            assume(False)
        net = sg.compile(g).eval()
        xs = inputs_for(g, steps=5, batch=2, scale=3.0)
        want = eager(g, xs, net)
        stepped = _step_through(Session(tmp_path / "step.onnx"), net, xs)
        sequence = Session(tmp_path / "seq.onnx").run(xs)
        for key, value in want.items():
            spike = g.type_of(g.outputs[key]).spike
            assert_close(f"{key} step model vs eager", stepped[key], value, spike)
            assert_close(f"{key} step model vs sequence model", stepped[key], sequence[key], spike)
        counts["checked"] += 1

    check()
    assert counts["checked"] >= 20 and counts["refused"] <= counts["checked"] // 10, counts


# --- hostile models --------------------------------------------------------------------------------
def _graph() -> sg.Graph:
    g = sg.Graph("tiny")
    x = g.input("x", (3,))
    fb = g.feedback((4,), name="fb")
    o = g.leaky(g.add(g.linear(x, 4, name="fc"), fb), beta=0.9, name="lif")
    g.connect(fb, g.scale(o, 0.5))
    g.output("spk", o)
    return quantise(g)


@pytest.fixture(scope="module")
def step_model() -> onnx.ModelProto:
    torch.manual_seed(0)
    return sg.export_onnx(_graph(), None, mode="step")


def _meta(model: onnx.ModelProto) -> dict[str, Any]:
    return json.loads({p.key: p.value for p in model.metadata_props}["snngraph"])


def _with_meta(model: onnx.ModelProto, text: str) -> bytes:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    onnx.helper.set_model_props(copy, {"snngraph": text})
    return copy.SerializeToString()


@contextlib.contextmanager
def _no_big_allocation(limit: int = 64 * MiB) -> Iterator[None]:
    """Fail if the block allocates more than ``limit`` bytes through Python/numpy at its peak."""
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit, f"allocated {peak / MiB:.0f} MiB"


def _lif_state(meta: dict) -> dict:
    return next(s for s in meta["states"] if s["name"] == "lif.mem")


def _set_state(key: str, value: Any) -> Callable[[dict], None]:
    return lambda meta: _lif_state(meta).__setitem__(key, value)


def _drop(key: str) -> Callable[[dict], None]:
    return lambda meta: meta.pop(key)


def _set(key: str, value: Any) -> Callable[[dict], None]:
    return lambda meta: meta.__setitem__(key, value)


METADATA_EDITS = {
    "state shape 2**40": (_set_state("shape", ["B", 2**40]), "state 'lif.mem'.*too large"),
    "state shape 2**20 x 2**20": (_set_state("shape", ["B", 2**20, 2**20]), "state 'lif.mem'.*too large"),
    "negative state dim": (_set_state("shape", ["B", -4]), "state 'lif.mem'.*positive ints"),
    "zero state dim": (_set_state("shape", ["B", 0]), "state 'lif.mem'.*positive ints"),
    "float state dim": (_set_state("shape", ["B", 4.0]), "state 'lif.mem'.*positive ints"),
    "bool state dim": (_set_state("shape", ["B", True]), "state 'lif.mem'.*positive ints"),
    "unknown symbol in state": (_set_state("shape", ["N", 4]), "state 'lif.mem'.*'B'"),
    "state shape not a list": (_set_state("shape", "B,4"), "state 'lif.mem'.*list of dims"),
    "empty state shape": (_set_state("shape", []), "state 'lif.mem'.*non-empty"),
    "state not in the model": (_set_state("name", "ghost.mem"), "metadata lists inputs .*ghost.mem.*model has"),
    "state shape unlike the model's": (_set_state("shape", ["B", 5]), "'lif.mem' shape \\(B, 5\\).*declares"),
    "state without a name": (lambda m: m["states"][0].pop("name"), "state #0 must be an object"),
    "state entry not an object": (lambda m: m["states"].__setitem__(0, "fb.buffer"), "state #0"),
    "missing states": (_drop("states"), "'states' is missing"),
    "missing mode": (_drop("mode"), "'mode' is missing"),
    "missing inputs": (_drop("inputs"), "'inputs' is missing"),
    "missing outputs": (_drop("outputs"), "'outputs' is missing"),
    "missing graph name": (_drop("graph"), "'graph' is missing"),
    "unknown mode": (_set("mode", "batch"), "mode must be one of"),
    "sequence mode with states": (_set("mode", "sequence"), "sequence model takes no state"),
    "no inputs": (_set("inputs", {}), "no inputs"),
    "input shape 2**40": (_set("inputs", {"x": ["B", 2**40]}), "input 'x'.*too large"),
    "input shape unlike the model's": (_set("inputs", {"x": ["B", 7]}), "'x' shape \\(B, 7\\).*declares"),
    "input named wrong": (_set("inputs", {"y": ["B", 3]}), "metadata lists inputs \\['y'"),
    "output named wrong": (_set("outputs", {"out": ["B", 4]}), "metadata lists outputs \\['out'"),
    "output shape 2**40": (_set("outputs", {"spk": ["B", 2**40]}), "output 'spk'.*too large"),
}


@pytest.mark.parametrize("case", list(METADATA_EDITS))
def test_hostile_metadata_raises_graph_error(step_model, case):
    edit, match = METADATA_EDITS[case]
    meta = _meta(step_model)
    edit(meta)
    with _no_big_allocation(), pytest.raises(sg.GraphError, match=match):
        Session(_with_meta(step_model, json.dumps(meta))).init_state(4)


@pytest.mark.parametrize("text, match", [
    ("{not json", "not valid JSON"),
    ("", "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    ("[1, 2]", "must be a JSON object, got list"),
    ("null", "must be a JSON object, got NoneType"),
    ('{"mode": "step"}', "'graph' is missing"),
])
def test_malformed_metadata_json_raises_graph_error(step_model, text, match):
    with pytest.raises(sg.GraphError, match=match):
        Session(_with_meta(step_model, text))


def test_model_declaring_absurd_state_shape_is_refused(step_model):
    """Model and metadata agree on an absurd state: the metadata check refuses before any allocation."""
    copy = onnx.ModelProto()
    copy.CopyFrom(step_model)
    for value in (*copy.graph.input, *copy.graph.output):
        if value.name.startswith("lif.mem"):
            value.type.tensor_type.shape.dim[1].dim_value = 2**40
    meta = _meta(step_model)
    _lif_state(meta)["shape"] = ["B", 2**40]
    with _no_big_allocation(), pytest.raises(sg.GraphError, match="too large|cannot load"):
        Session(_with_meta(copy, json.dumps(meta))).init_state(1)


def test_absurd_batch_for_init_state_is_refused(step_model):
    sess = Session(step_model.SerializeToString())
    with _no_big_allocation(), pytest.raises(sg.GraphError, match="state '.*' of shape .* is too large"):
        sess.init_state(2**40)
    for bad in (0, -1, True, 2.0, "1"):
        with pytest.raises(sg.GraphError, match="batch_size must be a positive int"):
            sess.init_state(bad)


def test_corrupt_model_files_raise_graph_error(step_model, tmp_path):
    data = step_model.SerializeToString()
    flipped = bytearray(data)
    flipped[len(flipped) // 3] ^= 0xFF
    files = {"truncated.onnx": data[: len(data) // 2], "flipped.onnx": bytes(flipped), "empty.onnx": b"",
             "text.onnx": b"graph tiny {}"}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    for name in (*files, "missing.onnx"):
        try:
            Session(tmp_path / name)
        except sg.GraphError as err:
            assert name in str(err)
        else:  # a flipped byte may land in a weight: the model still loads and is still checked
            assert name == "flipped.onnx"


# --- wrong inputs at run time ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sessions(tmp_path_factory) -> dict[str, Session]:
    torch.manual_seed(0)
    g = sg.Graph("two")
    a, b = g.input("a", (3,)), g.input("b", (3,))
    g.output("spk", g.leaky(g.add(g.linear(a, 4, name="fa"), g.linear(b, 4, name="fb")), beta=0.9, name="lif"))
    root = tmp_path_factory.mktemp("sessions")
    out = {}
    for name, graph in (("one", _graph()), ("two", quantise(g))):
        for mode in ("step", "sequence"):
            sg.export_onnx(graph, root / f"{name}_{mode}.onnx", mode=mode)
            out[f"{name}_{mode}"] = Session(root / f"{name}_{mode}.onnx")
    return out


@pytest.mark.parametrize("x, match", [
    (np.zeros((2, 4), np.float32), "input 'x': expected shape \\(B, 3\\), got \\(2, 4\\)"),
    (np.zeros((3,), np.float32), "input 'x': expected shape \\(B, 3\\), got \\(3,\\)"),
    (np.zeros((1, 2, 3), np.float32), "input 'x': expected shape"),
    (np.array([["a", "b", "c"]]), "input 'x': expected real numbers.*<U1"),
    (np.zeros((2, 3), np.complex64), "input 'x': expected real numbers.*complex64"),
    (np.array([[None, 1, 2]], dtype=object), "input 'x': expected real numbers.*object"),
    ([[1.0, 2.0], [3.0]], "input 'x': expected an array of real numbers"),
    (object(), "input 'x': expected real numbers"),
])
def test_step_rejects_wrong_input_shapes_and_dtypes(sessions, x, match):
    sess = sessions["one_step"]
    with pytest.raises(sg.GraphError, match=match):
        sess.step(x, sess.init_state(2))


def test_step_accepts_real_dtypes_and_tensors(sessions):
    sess = sessions["one_step"]
    want, _ = sess.step(np.ones((2, 3), np.float32), sess.init_state(2))
    for x in (np.ones((2, 3), np.int64), np.ones((2, 3), bool), np.ones((2, 3), np.float64), torch.ones(2, 3)):
        got, _ = sess.step(x, sess.init_state(2))
        assert np.array_equal(got["spk"], want["spk"])


def test_step_rejects_wrong_state(sessions):
    sess = sessions["one_step"]
    x = np.zeros((2, 3), np.float32)
    good = sess.init_state(2)
    wrong = {
        "lif.mem": ({**good, "lif.mem": np.zeros((3, 4), np.float32)}, "state 'lif.mem'.*\\(2, 4\\).*got \\(3, 4\\)"),
        "fb.buffer": ({**good, "fb.buffer": np.zeros((2, 4), np.float32)}, "state 'fb.buffer'.*\\(1, 2, 4\\)"),
        "dtype": ({**good, "lif.mem": np.full((2, 4), "x")}, "state 'lif.mem': expected real numbers"),
        "missing": ({"lif.mem": good["lif.mem"]}, "state is missing \\['fb.buffer'\\]"),
        "unknown": ({**good, "lif.memory": good["lif.mem"]}, "state has unknown entries \\['lif.memory'\\]"),
        "not a dict": (list(good.values()), "state must be a dict"),
    }
    for state, match in wrong.values():
        with pytest.raises(sg.GraphError, match=match):
            sess.step(x, state)


@pytest.mark.parametrize("mode", ["step", "sequence"])
def test_run_rejects_wrong_sequences(sessions, mode):
    one, two = sessions[f"one_{mode}"], sessions[f"two_{mode}"]
    with pytest.raises(sg.GraphError, match="T >= 1"):
        one.run(np.zeros((0, 2, 3), np.float32))
    with pytest.raises(sg.GraphError, match="B >= 1"):
        one.run(np.zeros((3, 0, 3), np.float32))
    for empty in (np.float32(1.0), {}):
        with pytest.raises(sg.GraphError, match="T >= 1"):
            one.run(empty)
    with pytest.raises(sg.GraphError, match="same T"):
        two.run({"a": np.zeros((4, 2, 3), np.float32), "b": np.zeros((5, 2, 3), np.float32)})
    with pytest.raises(sg.GraphError, match="takes inputs \\['a', 'b'\\]"):
        two.run({"a": np.zeros((4, 2, 3), np.float32), "c": np.zeros((4, 2, 3), np.float32)})
    with pytest.raises(sg.GraphError, match="input 'x'"):
        one.run(np.zeros((4, 2, 5), np.float32))
    with pytest.raises(sg.GraphError, match="input 'x': expected real numbers"):
        one.run(np.zeros((4, 2, 3), np.complex64))
    spk = two.run({"a": np.ones((4, 2, 3), np.float32), "b": np.ones((4, 2, 3), np.float32)})["spk"]
    assert spk.shape == (4, 2, 4) and set(np.unique(spk)) <= {0.0, 1.0}


# --- fuzzed metadata -------------------------------------------------------------------------------
JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                max_size=4), max_leaves=12)
META_PATHS = [("graph",), ("mode",), ("inputs",), ("inputs", "x"), ("inputs", "x", 1), ("outputs",),
              ("outputs", "spk"), ("outputs", "spk", 0), ("states",), ("states", 0), ("states", 0, "name"),
              ("states", 0, "shape"), ("states", 0, "shape", 0), ("states", 1, "shape", 1), ("format",), ("time",)]


def _assign(meta: dict, path: tuple, value: Any) -> None:
    target = meta
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow,
                                                                                   HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.sampled_from(META_PATHS), JSON), min_size=1, max_size=3))
def test_fuzzed_metadata_raises_nothing_but_graph_error(step_model, edits):
    meta = _meta(step_model)
    for path, value in edits:
        with contextlib.suppress(KeyError, IndexError, TypeError):  # an earlier edit removed the container
            _assign(meta, path, value)
    text = json.dumps(meta)
    with _no_big_allocation():
        try:
            sess = Session(_with_meta(step_model, text))
            sess.step(np.ones((2, 3), np.float32), sess.init_state(2))
        except sg.GraphError as err:
            assert str(err)
