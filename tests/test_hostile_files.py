"""Hostile input: corrupt, truncated, bit-flipped, oversized, wrong-format and crafted graph files are
each answered by ``GraphError`` from ``sg.load`` with nothing executed; fuzzed text for ``sg.parse``
raises nothing but ``GraphError``."""

import base64
import builtins
import json
import pickle
import zipfile

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.numpy import save_file

import snngraph as sg
from snngraph.ir.serialize import CHECKSUM_KEY, checksum
from snngraph.testing import node_kind_graphs

GRAPHS = node_kind_graphs()
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Boom:
    """Unpickling this writes a marker file: proof that code from the file ran."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(autouse=True)
def nothing_executes(request, monkeypatch, tmp_path):
    """Fail loudly if loading unpickles or evaluates anything; Boom's marker proves the rest.
    (Not for the parse fuzzers: hypothesis compiles code of its own.)"""
    if "fuzz" in request.node.name:
        yield
        return
    def refuse(*args, **kwargs):
        raise AssertionError("sg.load tried to unpickle or evaluate data from the file")

    def only_code(run):
        def guarded(source, *args, **kwargs):
            if isinstance(source, (str, bytes)):  # imports pass code objects; file data would be text
                refuse()
            return run(source, *args, **kwargs)
        return guarded

    Boom.marker = str(tmp_path / "executed")
    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(np, "load", refuse)
    monkeypatch.setattr(builtins, "eval", only_code(builtins.eval))
    monkeypatch.setattr(builtins, "exec", only_code(builtins.exec))
    yield
    assert not (tmp_path / "executed").exists(), "code from a graph file was executed"


def saved(tmp_path, key="rleaky"):
    path = tmp_path / "good.sg"
    sg.save(GRAPHS[key], path)
    return path, path.read_bytes()


def structure_of(path):
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    return json.loads(meta["snngraph"]), tensors


def write(path, structure, tensors=None, valid_checksum=True, meta=None):
    """A safetensors file with ``structure`` as its metadata and (by default) a correct checksum."""
    tensors = tensors or {}
    text = structure if isinstance(structure, str) else json.dumps(structure)
    metadata = {"snngraph": text, CHECKSUM_KEY: checksum(text, tensors) if valid_checksum else "0" * 64}
    save_file(tensors, str(path), metadata=metadata | (meta or {}))
    return path


def assert_rejected(path, match=None):
    with pytest.raises(sg.GraphError, match=match):
        sg.load(path)


def test_good_file_loads_and_crafting_helper_round_trips(tmp_path):
    path, _ = saved(tmp_path)
    assert sg.load(path) == GRAPHS["rleaky"]
    structure, tensors = structure_of(path)
    assert sg.load(write(tmp_path / "copy.sg", structure, tensors)) == GRAPHS["rleaky"]


def test_truncated_files(tmp_path):
    path, data = saved(tmp_path)
    header = int.from_bytes(data[:8], "little")
    for cut in sorted({0, 1, 7, 8, 9, 8 + header // 2, 8 + header - 1, 8 + header, 8 + header + 1, len(data) - 1}):
        (tmp_path / "cut.sg").write_bytes(data[:cut])
        assert_rejected(tmp_path / "cut.sg")


def test_bit_flips_at_seeded_positions(tmp_path):
    path, data = saved(tmp_path)
    rng = np.random.default_rng(1234)
    header_end = 8 + int.from_bytes(data[:8], "little")
    positions = [*rng.integers(0, 8, 4), *rng.integers(8, header_end, 40), *rng.integers(header_end, len(data), 20)]
    for pos in positions:
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        (tmp_path / "flip.sg").write_bytes(bytes(flipped))
        assert_rejected(tmp_path / "flip.sg")


@pytest.mark.slow
@pytest.mark.parametrize("key", ["linear"])
def test_every_single_bit_flip_is_detected(tmp_path, key):
    _, data = saved(tmp_path, key)
    for bit in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        (tmp_path / "flip.sg").write_bytes(bytes(flipped))
        assert_rejected(tmp_path / "flip.sg")


@pytest.mark.parametrize("length", [2**63, 2**40, 64 * 2**20 + 1, 10**6])
def test_oversized_header_length(tmp_path, length):
    _, data = saved(tmp_path)
    (tmp_path / "big.sg").write_bytes(length.to_bytes(8, "little") + data[8:])
    assert_rejected(tmp_path / "big.sg", "bad or truncated header")


def test_wrong_format_files(tmp_path):
    samples = {
        "empty.sg": b"",
        "random.sg": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "png.sg": b"\x89PNG\r\n\x1a\n" + b"\0" * 64,
        "json.sg": json.dumps({"format": "snngraph.graph/1", "nodes": []}).encode(),
        "text.sg": GRAPHS["leaky"].to_text().encode(),
        "pickle.sg": pickle.dumps(Boom()),
    }
    for name, data in samples.items():
        (tmp_path / name).write_bytes(data)
        assert_rejected(tmp_path / name)
    torch.save({"boom": Boom()}, tmp_path / "torch.sg")
    assert_rejected(tmp_path / "torch.sg")
    with zipfile.ZipFile(tmp_path / "npz.sg", "w") as z:
        z.writestr("w.npy", pickle.dumps(Boom()))
    assert_rejected(tmp_path / "npz.sg")
    assert_rejected(tmp_path / "missing.sg", "cannot read graph file")
    assert_rejected(tmp_path, "cannot read graph file")  # a directory


def test_safetensors_without_snngraph_structure(tmp_path):
    save_file({"w": np.zeros(3, np.float32)}, str(tmp_path / "plain.sg"))
    assert_rejected(tmp_path / "plain.sg", "no snngraph structure")
    save_file({}, str(tmp_path / "notjson.sg"), metadata={"snngraph": "{not json"})
    assert_rejected(tmp_path / "notjson.sg", "no snngraph structure")
    write(tmp_path / "other.sg", {"format": "other/9", "name": "g", "nodes": [], "outputs": []})
    assert_rejected(tmp_path / "other.sg", "unknown format")
    write(tmp_path / "list.sg", [1, 2, 3])
    assert_rejected(tmp_path / "list.sg", "unknown format")
    write(tmp_path / "deep.sg", "[" * 100_000 + "]" * 100_000)
    assert_rejected(tmp_path / "deep.sg", "no snngraph structure")


def test_checksum_mismatch(tmp_path):
    structure, tensors = structure_of(saved(tmp_path)[0])
    assert_rejected(write(tmp_path / "bad.sg", structure, tensors, valid_checksum=False), "checksum mismatch")
    tensors = {k: v + 1 for k, v in tensors.items()}  # structure intact, values swapped
    save_file(tensors, str(tmp_path / "swap.sg"), metadata={"snngraph": json.dumps(structure),
                                                             CHECKSUM_KEY: checksum(json.dumps(structure), {})})
    assert_rejected(tmp_path / "swap.sg", "checksum mismatch")


def mutated(tmp_path, change, key="rleaky"):
    structure, tensors = structure_of(saved(tmp_path, key)[0])
    change(structure, tensors)
    return write(tmp_path / "crafted.sg", structure, tensors)


def node(structure, name):
    return next(n for n in structure["nodes"] if n["name"] == name)


CRAFTED = {
    "unknown_op": (lambda s, t: node(s, "lif").update(op="os.system"), "unknown op"),
    "dunder_op": (lambda s, t: node(s, "lif").update(op="__class__"), "unknown op"),
    "absurd_input_shape": (lambda s, t: node(s, "x")["attrs"].update(shape=[2**40]), "too large"),
    "absurd_input_shape_2d": (lambda s, t: node(s, "x")["attrs"].update(shape=[2**20, 2**20, 2**20]), "too large"),
    "absurd_delay": (lambda s, t: s["nodes"].insert(1, {"name": "d", "op": "delay", "inputs": [["x", "out"]],
                                                         "attrs": {"steps": 10**12, "shape": [4]}, "params": {}}),
                     "too large"),
    "negative_input_shape": (lambda s, t: node(s, "x")["attrs"].update(shape=[-4]), "positive"),
    "many_dims": (lambda s, t: node(s, "x")["attrs"].update(shape=[1] * 100), "expected tuple"),
    "absurd_param_shape": (lambda s, t: node(s, "lif")["params"]["threshold"].update(shape=[2**31, 2**31]),
                           "malformed shape"),
    "absurd_features": (lambda s, t: node(s, "lif").update(), None),
    "py_object_attr": (lambda s, t: node(s, "lif")["attrs"].update(reset_mechanism={"py/object": "os.system"}),
                       "malformed surrogate"),
    "reduce_attr": (lambda s, t: node(s, "lif")["attrs"].update(
        surrogate={"__reduce__": ["os.system", ["touch executed"]]}), "malformed surrogate"),
    "pickled_attr": (lambda s, t: node(s, "lif")["attrs"].update(
        reset_mechanism=base64.b64encode(b"\x80\x04cos\nsystem\n").decode()), None),
    "custom_surrogate": (lambda s, t: node(s, "lif")["attrs"].update(
        surrogate={"surrogate": "custom", "params": []}), "malformed surrogate"),
    "surrogate_with_fn": (lambda s, t: node(s, "lif")["attrs"].update(
        surrogate={"surrogate": "atan", "params": [], "fn": "os.system"}), "malformed surrogate"),
    "surrogate_param_object": (lambda s, t: node(s, "lif")["attrs"].update(
        surrogate={"surrogate": "atan", "params": [["alpha", {"py/object": "x"}]]}), "malformed surrogate"),
    "unknown_field": (lambda s, t: node(s, "lif")["attrs"].update(__class__="x"), "no field"),
    "extra_entry_key": (lambda s, t: node(s, "lif").update(code="import os"), "malformed entry"),
    "param_missing_tensor": (lambda s, t: node(s, "lif")["params"]["beta"].update(tensor="nope"), "missing tensor"),
    "param_learnable_not_bool": (lambda s, t: node(s, "lif")["params"]["beta"].update(learnable="yes"),
                                 "missing tensor"),
    "int_tensor": (lambda s, t: t.update({"lif.beta": np.array(1, np.int64)}), "dtype int64"),
    "non_finite_tensor": (lambda s, t: t.update({"lif.beta": np.array(np.nan, np.float32)}), "non-finite"),
    "beta_out_of_range": (lambda s, t: t.update({"lif.beta": np.array(7.0, np.float32)}), "beta must lie"),
    "bad_input_ref": (lambda s, t: node(s, "lif").update(inputs=[["nope", "out"]]), "does not exist"),
    "bad_input_type": (lambda s, t: node(s, "lif").update(inputs=[{"node": "x"}]), "malformed inputs"),
    "cycle": (lambda s, t: node(s, "fc").update(inputs=[["lif", "spk"]]), "cycle without a delay"),
    "duplicate_node": (lambda s, t: s["nodes"].append(dict(node(s, "lif"))), "duplicate node"),
    "bad_node_name": (lambda s, t: node(s, "lif").update(name="a b"), "invalid node name"),
    "bad_output": (lambda s, t: s["outputs"].append(["o", 1, 2]), "malformed or duplicate output"),
    "unknown_output": (lambda s, t: s["outputs"].append(["o", "nope", "out"]), "unknown value"),
    "nodes_not_list": (lambda s, t: s.update(nodes={"x": 1}), "malformed structure"),
    "name_not_str": (lambda s, t: s.update(name=["g"]), "malformed structure"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_structures_are_rejected(tmp_path, case):
    change, match = CRAFTED[case]
    path = mutated(tmp_path, change, key="linear")
    if case == "absurd_features":
        structure, tensors = structure_of(path)
        node(structure, "fc")["attrs"].update(in_features=2**40, out_features=2**40)
        path = write(tmp_path / "crafted.sg", structure, tensors)
        match = "expects 1099511627776 input features"
    assert_rejected(path, match)


def test_absurd_tensor_header_in_safetensors(tmp_path):
    """A header that claims a huge tensor over a few bytes of data is refused before any allocation."""
    meta = json.dumps({"format": "snngraph.graph/1", "name": "g", "nodes": [], "outputs": []})
    header = json.dumps({"__metadata__": {"snngraph": meta}, "w": {"dtype": "F32", "shape": [2**31, 2**31],
                                                                    "data_offsets": [0, 16]}}).encode()
    header += b" " * (-len(header) % 8)
    (tmp_path / "huge.sg").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 16)
    assert_rejected(tmp_path / "huge.sg", "corrupt")


VALID_TEXT = GRAPHS["rleaky"].to_text(with_params=True)
VOCAB = ["%", "%x", "%lif.mem", "(", ")", "<", ">", "[", "]", ",", "=", ":", " ", "\n", "#", '"', "\\", "-",
         "1e308", "1e-320", "nan", "inf", "-inf", "0", "-1", "99999999999999999999", "param", "const", "f32",
         "f64", "none", "true", "graph", "end", "output", "linear", "leaky", "input", "atan(alpha=2.0)",
         "param<f32[100000,100000]>", "const<f64[9999,9999]>", "9" * 5000, "\x00", "\u00e9", "\ud7ff"]


def assert_only_graph_error(text):
    try:
        g = sg.parse(text)
    except sg.GraphError:
        return
    sg.verify(g) if g.outputs else None
    assert isinstance(g.to_text(), str)


@FUZZ
@given(st.text(max_size=400))
def test_fuzz_parse_random_text(text):
    assert_only_graph_error(text)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID_TEXT)), st.integers(0, 8),
                          st.one_of(st.sampled_from(VOCAB), st.text(max_size=3))), min_size=1, max_size=6))
def test_fuzz_parse_mutated_listing(edits):
    text = VALID_TEXT
    for pos, cut, insert in edits:
        pos = min(pos, len(text))
        text = text[:pos] + insert + text[pos + cut:]
    assert_only_graph_error(text)


@FUZZ
@given(st.lists(st.sampled_from(VOCAB), max_size=40))
def test_fuzz_parse_token_soup(tokens):
    assert_only_graph_error("graph g\n  %y = " + "".join(tokens) + "\nend\n")


def test_paths_must_be_str_or_path_like(tmp_path):
    path, _ = saved(tmp_path, "leaky")
    assert sg.load(str(path)) == sg.load(path) == GRAPHS["leaky"]
    with pytest.raises(sg.GraphError, match=r"sg.load: path must be a str or os.PathLike, got bytes"):
        sg.load(str(path).encode())
    with pytest.raises(sg.GraphError, match=r"sg.load: path must be a str or os.PathLike, got int"):
        sg.load(3)
    with pytest.raises(sg.GraphError, match=r"sg.save: path must be a str or os.PathLike, got bytes"):
        sg.save(GRAPHS["leaky"], str(tmp_path / "b.sg").encode())
