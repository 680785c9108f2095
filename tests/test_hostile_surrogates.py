"""Surrogate parameters read from text or files are checked against the surrogate's signature and must be
finite: a NaN ``alpha`` would load and train with NaN gradients, an unknown name would be used positionally."""

from __future__ import annotations

import inspect
import json

import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import save_file

import snngraph as sg
from snngraph.ir.serialize import CHECKSUM_KEY, checksum
from snngraph.ir.surrogate import SURROGATE_NAMES, SURROGATE_PARAMS
from snngraph.runtimes.torch.surrogates import GRADIENTS


def _graph(spike_grad=None) -> sg.Graph:
    torch.manual_seed(0)
    g = sg.Graph("g")
    x = g.input("x", (3,))
    g.output("spk", g.leaky(g.linear(x, 3, name="fc"), beta=0.9, name="lif",
                            spike_grad=spike_grad or sg.surrogate.atan()))
    return g


def _text_with(surrogate: str) -> str:
    text = _graph().to_text(with_params=True)
    assert "surrogate=atan(alpha=2.0)" in text
    return text.replace("surrogate=atan(alpha=2.0)", f"surrogate={surrogate}")


def _saved_with(tmp_path, spec: object):
    path = tmp_path / "s.sg"
    sg.save(_graph(), path)
    with safe_open(str(path), framework="numpy") as f:
        structure = json.loads(f.metadata()["snngraph"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    next(n for n in structure["nodes"] if n["name"] == "lif")["attrs"]["surrogate"] = spec
    text = json.dumps(structure)  # allow_nan: writes NaN / Infinity, which json.loads reads back
    save_file(tensors, str(path), metadata={"snngraph": text, CHECKSUM_KEY: checksum(text, tensors)})
    return path


def test_the_parameter_table_is_the_factories_signatures():
    for name in SURROGATE_NAMES:
        signature = inspect.signature(getattr(sg.surrogate, name))
        assert SURROGATE_PARAMS[name] == tuple((k, float(p.default)) for k, p in signature.parameters.items())
        assert GRADIENTS[name][1] == tuple(k for k, _ in SURROGATE_PARAMS[name])


BAD_TEXT = {
    "atan(alpha=nan)": "surrogate atan parameter alpha must be finite",
    "atan(alpha=inf)": "surrogate atan parameter alpha must be finite",
    "atan(alpha=-inf)": "surrogate atan parameter alpha must be finite",
    "atan(alpha=1e999)": "surrogate atan parameter alpha must be finite",
    "atan(beta=3.0)": r"surrogate atan takes \['alpha'\], got a parameter 'beta'",
    "heaviside(alpha=1.0)": "surrogate heaviside takes no parameters",
    "SFS(slope=1.0, slope=2.0)": "parameter slope given twice",
}


@pytest.mark.parametrize("surrogate", sorted(BAD_TEXT))
def test_parse_refuses_bad_surrogate_parameters(surrogate):
    with pytest.raises(sg.GraphError, match=f"line 4: .*{BAD_TEXT[surrogate]}"):
        sg.parse(_text_with(surrogate))


BAD_FILE = {
    "NaN": ({"surrogate": "atan", "params": [["alpha", float("nan")]]}, "alpha must be finite"),
    "Infinity": ({"surrogate": "atan", "params": [["alpha", float("inf")]]}, "alpha must be finite"),
    "unknown name": ({"surrogate": "atan", "params": [["gamma", 1.0]]}, "got a parameter 'gamma'"),
    "twice": ({"surrogate": "SSO", "params": [["mean", 0.0], ["mean", 1.0]]}, "mean given twice"),
    "bool value": ({"surrogate": "atan", "params": [["alpha", True]]}, "malformed surrogate parameters"),
    "forged line in a key": ({"surrogate": "atan", "params": [["alpha=1.0)\n  %x = relu(%x", 1.0]]},
                             "got a parameter"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILE))
def test_load_refuses_bad_surrogate_parameters(tmp_path, case):
    spec, match = BAD_FILE[case]
    with pytest.raises(sg.GraphError, match=f"s.sg: node #2: .*{match}"):
        sg.load(_saved_with(tmp_path, spec))


def test_parameters_are_read_by_name_in_the_signature_order(tmp_path):
    want = sg.surrogate.SFS(slope=10.0, B=0.5)
    g = sg.parse(_text_with("SFS(B=0.5, slope=10.0)"))
    assert g.nodes["lif"].surrogate == want and g.nodes["lif"].surrogate.params == (("slope", 10.0), ("B", 0.5))
    loaded = sg.load(_saved_with(tmp_path, {"surrogate": "SFS", "params": [["B", 0.5], ["slope", 10.0]]}))
    assert loaded.nodes["lif"].surrogate == want


def test_missing_parameters_take_the_factory_defaults(tmp_path):
    assert sg.parse(_text_with("SSO(variance=0.5)")).nodes["lif"].surrogate == sg.surrogate.SSO(variance=0.5)
    loaded = sg.load(_saved_with(tmp_path, {"surrogate": "atan", "params": []}))
    assert loaded.nodes["lif"].surrogate == sg.surrogate.atan()


@pytest.mark.parametrize("name", SURROGATE_NAMES)
def test_every_surrogate_still_round_trips(tmp_path, name):
    g = _graph(getattr(sg.surrogate, name)())
    assert sg.parse(g.to_text(with_params=True)) == g
    sg.save(g, tmp_path / "g.sg")
    assert sg.load(tmp_path / "g.sg") == g
