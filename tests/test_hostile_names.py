"""Names read from files and text are whole identifiers: a hostile ``.sg`` file cannot forge lines of
``str(g)`` / ``snngraph show`` (newlines, ANSI escapes), and no name or path is mistaken for a field."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import save_file

import snngraph as sg
from snngraph.cli import main
from snngraph.ir.serialize import CHECKSUM_KEY, checksum
from snngraph.ir.types import check_name

FAKE_LINE = "spk\n  %evil = relu(%x) : f32[3]\n  output pwned"
ESC = "\x1b[2J\x1b[31m"


def _graph(name: str = "g", neuron: str = "lif") -> sg.Graph:
    torch.manual_seed(0)
    g = sg.Graph(name)
    x = g.input("x", (3,))
    g.output("spk", g.leaky(g.linear(x, 3, name="fc"), beta=0.9, name=neuron))
    return g


def _crafted(tmp_path, edit, name: str = "crafted.sg"):
    """A saved graph whose structure JSON ``edit`` changed, with a valid checksum (only the content is hostile)."""
    path = tmp_path / name
    sg.save(_graph(), path)
    with safe_open(str(path), framework="numpy") as f:
        structure = json.loads(f.metadata()["snngraph"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    edit(structure)
    text = json.dumps(structure)
    save_file(tensors, str(path), metadata={"snngraph": text, CHECKSUM_KEY: checksum(text, tensors)})
    return path


def _node(structure: dict, name: str) -> dict:
    return next(n for n in structure["nodes"] if n["name"] == name)


@pytest.mark.parametrize("name", ["x\n", "x\n\n", "fc\r", "a b", "a\x1b", "", "1x", "x.y", "é"])
def test_names_must_be_whole_identifiers(name):
    with pytest.raises(sg.GraphError, match="invalid"):
        check_name(name)
    with pytest.raises(sg.GraphError, match="invalid"):
        sg.Graph(name)
    g = sg.Graph("g")
    with pytest.raises(sg.GraphError, match="invalid"):
        g.input(name, (3,))
    x = g.input("x", (3,))
    with pytest.raises(sg.GraphError, match="invalid"):
        g.output(name, x)


EDITS = {
    "output name with a forged node line": lambda s: s["outputs"][0].__setitem__(0, FAKE_LINE),
    "output name with a trailing newline": lambda s: s["outputs"][0].__setitem__(0, "spk\n"),
    "output name with ANSI escapes": lambda s: s["outputs"][0].__setitem__(0, ESC + "spk"),
    "output target node with ANSI escapes": lambda s: s["outputs"][0].__setitem__(1, "lif" + ESC),
    "output target port with a newline": lambda s: s["outputs"][0].__setitem__(2, "spk\n"),
    "graph name with a forged line": lambda s: s.__setitem__("name", "g\n  %evil = relu(%x) : f32[3]"),
    "graph name with ANSI escapes": lambda s: s.__setitem__("name", "g" + ESC),
    "node name with a trailing newline": lambda s: _node(s, "fc").__setitem__("name", "fc\n"),
    "input reference with ANSI escapes": lambda s: _node(s, "lif")["inputs"][0].__setitem__(0, "fc" + ESC),
    "input port with a newline": lambda s: _node(s, "lif")["inputs"][0].__setitem__(1, "out\n"),
}


@pytest.mark.parametrize("case", sorted(EDITS))
def test_hostile_names_in_a_file_are_refused_without_echoing_them(tmp_path, case):
    path = _crafted(tmp_path, EDITS[case])
    with pytest.raises(sg.GraphError) as info:
        sg.load(path)
    message = str(info.value)
    assert "\x1b" not in message and "\n" not in message and "\r" not in message


def test_show_does_not_print_a_forged_listing(tmp_path, capsys):
    path = _crafted(tmp_path, EDITS["output name with a forged node line"])
    assert main(["show", str(path), "--no-png"]) == 1
    out, err = capsys.readouterr()
    assert "%evil" not in out and "\n  %evil" not in err and err.startswith("snngraph show: error:")
    path = _crafted(tmp_path, EDITS["graph name with ANSI escapes"], "ansi.sg")
    assert main(["show", str(path), "--no-png"]) == 1
    assert "\x1b" not in "".join(capsys.readouterr())


def test_output_names_are_checked_by_verify():
    g = _graph()
    forged = g.with_outputs({FAKE_LINE: g.outputs["spk"]})
    with pytest.raises(sg.GraphError, match="invalid output name"):
        sg.verify(forged)


# --- a field name is not a substring of where it was read --------------------------------------------
def test_a_neuron_named_like_a_field_round_trips(tmp_path):
    g = _graph(neuron="lif_dtype")
    assert sg.parse(g.to_text(with_params=True)) == g
    path = tmp_path / "model_dtype.sg"
    sg.save(g, path)
    assert sg.load(path) == g


def test_a_dtype_graph_name_and_path_load(tmp_path):
    g = _graph(name="dtype_net", neuron="dtype")
    folder = tmp_path / "dtype"
    folder.mkdir()
    sg.save(g, folder / "dtype.sg")
    assert sg.load(folder / "dtype.sg") == g
    assert sg.parse(g.to_text(with_params=True)) == g


def test_an_unknown_dtype_is_still_refused(tmp_path):
    path = _crafted(tmp_path, lambda s: _node(s, "x")["attrs"].__setitem__("dtype", "int8"))
    with pytest.raises(sg.GraphError, match="unknown dtype 'int8'"):
        sg.load(path)
    with pytest.raises(sg.GraphError, match="line 2: .*unknown dtype 'float8'"):
        sg.parse('graph g\n  %x = input(shape=(3,), dtype="float8") : f32[3]\n  output y = %x\nend\n')
