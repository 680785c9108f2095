"""Odd values reach the user as ``GraphError``, never as TypeError, ValueError, OverflowError,
RuntimeError or a numpy warning (issue #19 item 14); what the builder accepts prints, saves, loads
back and runs.

Classes: sizes that are strings, bools, negatives or huge; numpy scalars (accepted, stored as Python
ints); flags that are not bools; non-finite or bool batch-norm constants; numbers beyond float32;
meta-device, bfloat16 and complex tensors as weights; huge pool strides; ``bf16`` parameters, huge
ints and malformed surrogates in text and files; a ``fused`` flag set by hand; float32 inputs into a
net whose constants are float64."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.numpy import save_file

import snngraph as sg
from snngraph.cli import main
from snngraph.ir.serialize import CHECKSUM_KEY, checksum
from snngraph.testing import node_kind_graphs

GRAPHS = node_kind_graphs()


def _base() -> tuple[sg.Graph, sg.Handle]:
    g = sg.Graph("g")
    return g, g.input("x", (2, 6, 6))


def round_trips(g: sg.Graph, tmp_path) -> None:
    """Prints, parses back, saves, loads back and runs one step."""
    assert sg.parse(g.to_text(with_params=True)) == g
    sg.parse(g.to_text())
    sg.save(g, tmp_path / "g.sg")
    assert sg.load(tmp_path / "g.sg") == g
    if max(t.numel for t in g.types().values()) > 2**16:
        return  # legal, but too large to run here
    net = sg.compile(g)
    net(**{name: torch.rand(2, 2, *node.shape) for name, node in g.inputs.items()})


# --- builder: sizes, integer tuples, flags and constants ------------------------------------------------
def _loop(g: sg.Graph, fb: sg.Handle) -> sg.Handle:
    g.connect(fb, g.scale(fb, 0.5))
    return fb


SYNAPSE_CALLS = {
    "linear.out_features": lambda g, x, v: g.linear(g.flatten(x), v),
    "linear.bias": lambda g, x, v: g.linear(g.flatten(x), 3, bias=v),
    "conv2d.out_channels": lambda g, x, v: g.conv2d(x, v, 3),
    "conv2d.kernel_size": lambda g, x, v: g.conv2d(x, 4, v),
    "conv2d.stride": lambda g, x, v: g.conv2d(x, 4, 3, stride=v),
    "conv2d.padding": lambda g, x, v: g.conv2d(x, 4, 3, padding=v),
    "conv2d.dilation": lambda g, x, v: g.conv2d(x, 4, 3, dilation=v),
    "conv2d.groups": lambda g, x, v: g.conv2d(x, 4, 1, groups=v),
    "conv2d.bias": lambda g, x, v: g.conv2d(x, 4, 1, bias=v),
    "conv1d.out_channels": lambda g, x, v: g.conv1d(g.flatten(x, 1), v, 3),
    "max_pool2d.kernel_size": lambda g, x, v: g.max_pool2d(x, v),
    "max_pool2d.stride": lambda g, x, v: g.max_pool2d(x, 2, stride=v),
    "max_pool2d.padding": lambda g, x, v: g.max_pool2d(x, 2, padding=v),
    "avg_pool2d.stride": lambda g, x, v: g.avg_pool2d(x, 2, stride=v),
    "max_pool1d.stride": lambda g, x, v: g.max_pool1d(g.flatten(x, 1), 2, stride=v),
    "flatten.start_dim": lambda g, x, v: g.flatten(x, v),
    "flatten.end_dim": lambda g, x, v: g.flatten(x, 0, v),
    "concat.dim": lambda g, x, v: g.concat(x, x, dim=v),
    "scale.factor": lambda g, x, v: g.scale(x, v),
    "scale.learnable": lambda g, x, v: g.scale(x, 2.0, learnable=v),
    "dropout.p": lambda g, x, v: g.dropout(x, v),
    "batch_norm.eps": lambda g, x, v: g.batch_norm(x, eps=v),
    "batch_norm.momentum": lambda g, x, v: g.batch_norm(x, momentum=v),
    "batch_norm.affine": lambda g, x, v: g.batch_norm(x, affine=v),
    "delay.steps": lambda g, x, v: g.delay(x, v),
    "feedback.shape": lambda g, x, v: _loop(g, g.feedback(v)),
    "input.shape": lambda g, x, v: g.input("y", v),
    "input.dtype": lambda g, x, v: g.input("y", 3, dtype=v),
}
ODD_VALUES = st.one_of(
    st.booleans(), st.integers(-3, 8), st.sampled_from([2**31, 2**40, 2**63, 10**30, -(10**30)]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["8", "", "same", "valid", b"2"]), st.none(),
    st.sampled_from([np.int64(2), np.int32(1), np.float32(0.5), np.float64(1e300), np.bool_(True), np.int64(2**40)]),
    st.tuples(st.integers(-2, 3), st.integers(-2, 3)), st.lists(st.integers(0, 3), max_size=3),
    st.sampled_from([(True, True), (np.int64(1), np.int64(2)), (2**40, 1), [[1]], {"a": 1}]))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(call=st.sampled_from(sorted(SYNAPSE_CALLS)), value=ODD_VALUES)
def test_synapse_builders_refuse_with_graph_error_or_round_trip(tmp_path, call, value):
    g, x = _base()
    try:
        h = SYNAPSE_CALLS[call](g, x, value)
    except sg.GraphError:
        return
    g.output("o", h)
    round_trips(g, tmp_path)


@pytest.mark.parametrize("call, value, message", [
    ("linear.out_features", True, "out_features must be an int, got True"),
    ("linear.out_features", "8", "out_features must be an int, got '8'"),
    ("linear.out_features", 0, "out_features must be a positive int, got 0"),
    ("linear.out_features", 10**20, "too large"),
    ("conv2d.out_channels", "8", "out_channels must be an int"),
    ("conv2d.out_channels", 0, "out_channels must be a positive int, got 0"),
    ("conv2d.out_channels", -1, "out_channels must be a positive int"),
    ("conv2d.out_channels", 2**30, "weight of shape"),
    ("conv2d.kernel_size", -1, "kernel_size must be a positive int"),
    ("conv2d.groups", True, "groups must be an int, got True"),
    ("conv2d.bias", "yes", "bias must be True or False"),
    ("max_pool2d.stride", 10**20, "stride = 100000000000000000000 is too large"),
    ("max_pool2d.stride", 2**40, "too large"),
    ("flatten.start_dim", "1", "start_dim must be an int"),
    ("concat.dim", 0.5, "dim must be an int"),
    ("batch_norm.momentum", float("nan"), "momentum must be finite"),
    ("batch_norm.eps", float("inf"), "eps must be finite"),
    ("batch_norm.eps", True, "eps must be a number"),
    ("batch_norm.eps", None, "eps must be a number"),
    ("batch_norm.affine", 1, "affine must be True or False"),
    ("dropout.p", True, "p must lie in [0, 1]"),
    ("scale.factor", 1e300, "beyond the float32 range"),
    ("scale.learnable", "no", "learnable must be True or False"),
    ("input.dtype", ["float32"], "dtype must be one of"),
])
def test_builder_error_classes(call, value, message):
    g, x = _base()
    with pytest.raises(sg.GraphError, match=__import__("re").escape(message)):
        SYNAPSE_CALLS[call](g, x, value)


@pytest.mark.parametrize("build", [
    lambda g, x: g.conv2d(x, np.int64(4), np.int64(3), stride=np.int32(1), groups=np.int64(2)),
    lambda g, x: g.linear(g.flatten(x, np.int64(0)), np.int64(3)),
    lambda g, x: g.concat(x, x, dim=np.int64(0)),
    lambda g, x: g.delay(x, np.int64(2)),
    lambda g, x: g.max_pool2d(x, (np.int64(2), 2)),
    lambda g, x: g.batch_norm(x, eps=np.float32(1e-3), momentum=np.float64(0.2), affine=np.bool_(False)),
    lambda g, x: g.dropout(x, np.float32(0.25)),
])
def test_numpy_scalars_are_accepted_and_stored_as_python_numbers(tmp_path, build):
    g, x = _base()
    g.output("o", build(g, x))
    for node in g.nodes.values():
        for value in node.attrs().values():
            items = value if isinstance(value, tuple) else (value,)
            assert not any(isinstance(v, np.generic) for v in items), node
    round_trips(g, tmp_path)


@pytest.mark.parametrize("tensor, message", [
    (torch.ones(3, 72, device="meta"), "meta device"),
    (torch.ones(3, 72, dtype=torch.complex64), "real tensor"),
    (torch.ones(3, 72, dtype=torch.bool), "real tensor"),
    (np.full((3, 72), "a"), "real number, array or tensor"),
])
def test_unusable_tensors_as_weights(tensor, message):
    g, x = _base()
    with pytest.raises(sg.GraphError, match=message):
        g.linear(g.flatten(x), 3, weight=tensor)


def test_meta_device_model_is_refused_by_trace():
    with torch.device("meta"):
        model = torch.nn.Sequential(torch.nn.Linear(4, 3), sg.nn.Leaky(beta=0.9, init_hidden=True))
    with pytest.raises(sg.GraphError, match="meta device"):
        sg.trace(model, torch.zeros(2, 4))


def test_bfloat16_and_half_tensors_become_float32(tmp_path):
    g, x = _base()
    w = torch.rand(3, 72, dtype=torch.bfloat16)
    h = g.linear(g.flatten(x), 3, weight=w, bias_value=torch.zeros(3, dtype=torch.float16))
    g.output("o", h)
    assert g.nodes[h.name].weight.dtype == "float32"
    np.testing.assert_array_equal(g.nodes[h.name].weight.value, w.float().numpy())
    round_trips(g, tmp_path)


# --- text ------------------------------------------------------------------------------------------------
LEAKY = GRAPHS["leaky"].to_text(with_params=True)
LINEAR = GRAPHS["linear"].to_text(with_params=True)


def _edit(text: str, field: str, value: str) -> str:
    import re

    edited, n = re.subn(rf"\b{field}=(?:(?:param|const)<[^>]*>)?(?:\([^()]*\)|[^,()\s]+)(?:\([^()]*\))?",
                        f"{field}={value}", text, count=1)
    assert n == 1, field
    return edited


@pytest.mark.parametrize("text, field, value, message", [
    (LEAKY, "threshold", "param<bf16[]>(1.0)", "dtype bf16 is not supported for parameters"),
    (LEAKY, "threshold", "const<f16[4]>(1.0, 1.0, 1.0, 1.0)", "dtype f16 is not supported"),
    (LEAKY, "threshold", "9" * 40, "beyond the float32 range"),
    (LEAKY, "threshold", "9" * 320, "expected Param"),
    (LEAKY, "threshold", "1e39", "beyond the float32 range"),
    (LEAKY, "threshold", "param(1e39)", "beyond the float32 range"),
    (LEAKY, "threshold", "const<f32[4]>(1e39, 1, 1, 1)", "beyond the float32 range"),
    (LEAKY, "threshold", f"const<f32[4]>({'9' * 320}, 1, 1, 1)", "out of range"),
    (LEAKY, "surrogate", "atan(beta=2.0)", "atan takes ['alpha'], got a parameter 'beta'"),
    (LEAKY, "surrogate", "fast_sigmoid(slope=1.0, slope=2.0)", "given twice"),
    (LEAKY, "surrogate", "heaviside(x=1.0)", "heaviside takes no parameters"),
    (LEAKY, "surrogate", "atan(alpha=nan)", "must be finite"),
    (LEAKY, "surrogate", "atan(alpha=2.0, alpha=3.0)", "given twice"),
    (LEAKY, "surrogate", f"atan(alpha={'9' * 320})", "out of range"),
    (LINEAR, "weight", "param<f32[4]>", "weight must have shape"),
])
def test_parse_error_classes(text, field, value, message):
    with pytest.raises(sg.GraphError, match=r"line \d+") as info:
        sg.parse(_edit(text, field, value))
    assert message in str(info.value)


@pytest.mark.parametrize("key, field, value", [
    ("conv2d", "stride", "(4611686018427387904, 1)"),
    ("conv2d", "kernel_size", "(99999999999999999999, 1)"),
    ("max_pool2d", "stride", "(4611686018427387904, 4611686018427387904)"),
    ("avg_pool2d", "padding", "(99999999999999999999, 0)"),
])
def test_huge_ints_in_text_are_refused(key, field, value):
    text = GRAPHS[key].to_text(with_params=True)
    with pytest.raises(sg.GraphError, match=r"line \d+: .*too large"):
        sg.parse(_edit(text, field, value))


# --- files and the command line -------------------------------------------------------------------------
def _crafted(tmp_path, key: str, change) -> str:
    path = tmp_path / "good.sg"
    sg.save(GRAPHS[key], path)
    with safe_open(str(path), framework="numpy") as f:
        structure, tensors = json.loads(f.metadata()["snngraph"]), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    change(structure, tensors)
    text = json.dumps(structure)
    out = tmp_path / "crafted.sg"
    save_file(tensors, str(out), metadata={"snngraph": text, CHECKSUM_KEY: checksum(text, tensors)})
    return str(out)


def _node(structure: dict, op: str) -> dict:
    return next(n for n in structure["nodes"] if n["op"] == op)


def _as_attr(node: dict, key: str, value) -> None:
    """Write a parameter as a bare number among the attributes (as a scalar float32 parameter may be)."""
    del node["params"][key]
    node["attrs"][key] = value


FILE_CASES = {
    "bool_param_dim": ("leaky", lambda s, t: _node(s, "leaky")["params"]["threshold"].update(shape=[True]),
                       "malformed shape"),
    "huge_int_scalar": ("leaky", lambda s, t: _as_attr(_node(s, "leaky"), "beta", 2**1100), "expected Param"),
    "beyond_float32_scalar": ("leaky", lambda s, t: _as_attr(_node(s, "leaky"), "beta", 1e308), "float32 range"),
    "huge_pool_stride": ("max_pool2d", lambda s, t: _node(s, "max_pool2d")["attrs"].update(stride=[2**62, 2**62]),
                         "too large"),
    "huge_conv_dilation": ("conv2d", lambda s, t: _node(s, "conv2d")["attrs"].update(dilation=[2**40, 1]),
                           "too large"),
    "surrogate_wrong_params": ("leaky", lambda s, t: _node(s, "leaky")["attrs"].update(
        surrogate={"surrogate": "atan", "params": [["slope", 2.0]]}), "atan takes"),
    "surrogate_huge_param": ("leaky", lambda s, t: _node(s, "leaky")["attrs"].update(
        surrogate={"surrogate": "atan", "params": [["alpha", 10**400]]}), "malformed surrogate"),
    "batch_norm_eps_huge_int": ("batch_norm", lambda s, t: _node(s, "batch_norm")["attrs"].update(eps=2**1100),
                                "expected float"),
}


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_crafted_files_raise_graph_error_and_the_cli_prints_one_line(tmp_path, capsys, case):
    key, change, message = FILE_CASES[case]
    path = _crafted(tmp_path, key, change)
    with pytest.raises(sg.GraphError, match=message):
        sg.load(path)
    for argv in (["show", path, "--no-png"], ["export", path, "--onnx", str(tmp_path / "m.onnx")]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"snngraph {argv[0]}: error: cannot read") and "Traceback" not in err


def _fused_by_hand(tmp_path, key: str, **attrs) -> str:
    return _crafted(tmp_path, key, lambda s, t: _node(s, key.split("_")[0] if key != "rleaky" else "rleaky")[
        "attrs"].update(fused=True, **attrs))


@pytest.mark.parametrize("key, attrs", [("alpha", {}), ("lapicque", {}), ("rleaky", {"reset_delay": False}),
                                        ("leaky", {"surrogate": {"surrogate": "SSO", "params": [
                                            ["mean", 0.0], ["variance", 0.2]]}})])
def test_fused_flag_without_a_fused_kernel_is_refused_by_compile(tmp_path, key, attrs):
    g = sg.load(_fused_by_hand(tmp_path, key, **attrs))
    with pytest.raises(sg.GraphError, match="fused=true, but the runtime has no fused kernel"):
        sg.compile(g)


def test_fused_flag_where_the_pass_would_fuse_is_kept(tmp_path):
    g = sg.load(_fused_by_hand(tmp_path, "leaky", surrogate={"surrogate": "atan", "params": [["alpha", 2.0]]}))
    net = sg.compile(g)
    assert net.graph.nodes["lif"].fused
    net(torch.rand(3, 2, 4))


# --- runtimes: dtypes -------------------------------------------------------------------------------------
def test_float32_input_into_a_net_of_float64_constants_is_a_graph_error():
    g = sg.Graph("bn64")
    x = g.input("x", (2, 3, 3))
    h = g.batch_norm(x, affine=False, running_mean=np.zeros(2), running_var=np.ones(2, np.float64))
    g.output("spk", g.leaky(h, beta=0.5))
    net = sg.compile(g).eval()
    assert not list(net.parameters())
    with pytest.raises(sg.GraphError, match=r"input 'x': expected dtype torch.float64, got torch.float32"):
        net(torch.rand(2, 2, 2, 3, 3))
    with pytest.raises(sg.GraphError, match=r"input 'x': expected dtype torch.float64"):
        net.step(torch.rand(2, 2, 3, 3))
    net(torch.rand(2, 2, 2, 3, 3, dtype=torch.float64))


def test_frozen_weights_fix_the_input_dtype():
    g = sg.Graph("frozen")
    x = g.input("x", (4,))
    g.output("spk", g.leaky(g.linear(x, 3), beta=0.5))
    frozen = g.with_nodes({"linear1": g.nodes["linear1"].replace(
        weight=sg.ir.types.Param(g.nodes["linear1"].weight.value), bias=None)})
    net = sg.compile(frozen)
    with pytest.raises(sg.GraphError, match="expected dtype torch.float32, got torch.float64"):
        net(torch.rand(2, 2, 4, dtype=torch.float64))


def test_float64_parameter_beyond_float32_is_a_lowering_error_naming_it(tmp_path):
    g = sg.Graph("big")
    x = g.input("x", (4,))
    g.output("spk", g.leaky(g.scale(x, np.float64(1e300), name="gain"), beta=0.5))
    with pytest.raises(sg.LoweringError, match=r"scale 'gain': parameter 'factor' has values beyond the float32"):
        sg.export_onnx(g, tmp_path / "m.onnx")
