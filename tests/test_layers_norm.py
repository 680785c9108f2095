"""Activation (sigmoid, tanh, gelu) and per-sample normalisation (layer_norm, group_norm) nodes:
builder and shape errors, round trips, torch runtime, ONNX export and sg.trace."""

from __future__ import annotations

import numpy as np
import pytest
import snntorch as snn
import torch
import torch.nn.functional as F
from layer_helpers import (
    assert_matches_per_step,
    assert_onnx_matches,
    assert_round_trips,
    assert_trace_matches,
    one_node,
)
from torch import nn

import snngraph as sg


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


def _u(low: float, high: float, *shape: int) -> np.ndarray:
    return np.random.default_rng(1).uniform(low, high, shape).astype(np.float32)


LN_W, LN_B = _u(0.5, 1.5, 3, 4), _u(-0.5, 0.5, 3, 4)
GN_W, GN_B = _u(0.5, 1.5, 4), _u(-0.5, 0.5, 4)

# key -> (per-step input shape, builder, the torch function of one (B, ...) step)
CASES = {
    "sigmoid": ((6,), lambda g, x: g.sigmoid(x), torch.sigmoid),
    "tanh": ((2, 3), lambda g, x: g.tanh(x), torch.tanh),
    "gelu": ((6,), lambda g, x: g.gelu(x), F.gelu),
    "gelu_tanh": ((2, 5), lambda g, x: g.gelu(x, approximate="tanh"), lambda x: F.gelu(x, approximate="tanh")),
    "layer_norm": ((2, 3, 4), lambda g, x: g.layer_norm(x, (3, 4), weight=LN_W, bias_value=LN_B, eps=1e-3),
                   lambda x: F.layer_norm(x, (3, 4), torch.from_numpy(LN_W), torch.from_numpy(LN_B), 1e-3)),
    "layer_norm_last": ((5, 7), lambda g, x: g.layer_norm(x, 7), lambda x: F.layer_norm(x, (7,))),
    "layer_norm_plain": ((6,), lambda g, x: g.layer_norm(x, [6], elementwise_affine=False),
                         lambda x: F.layer_norm(x, (6,))),
    "layer_norm_no_bias": ((6,), lambda g, x: g.layer_norm(x, 6, bias=False, weight=LN_W.ravel()[:6]),
                           lambda x: F.layer_norm(x, (6,), torch.from_numpy(LN_W.ravel()[:6]))),
    "group_norm": ((4, 3, 3), lambda g, x: g.group_norm(x, 2, weight=GN_W, bias_value=GN_B),
                   lambda x: F.group_norm(x, 2, torch.from_numpy(GN_W), torch.from_numpy(GN_B))),
    "group_norm_1d": ((4, 5), lambda g, x: g.group_norm(x, 4, eps=1e-2, affine=False),
                      lambda x: F.group_norm(x, 4, eps=1e-2)),
    "group_norm_vector": ((4,), lambda g, x: g.group_norm(x, 1), lambda x: F.group_norm(x, 1)),
}


@pytest.mark.parametrize("key", sorted(CASES))
def test_compiled_matches_torch_per_step(key):
    shape, build, fn = CASES[key]
    assert_matches_per_step(one_node((shape,), build), fn, atol=1e-5)


@pytest.mark.parametrize("key", sorted(CASES))
def test_round_trips(key, tmp_path):
    shape, build, _ = CASES[key]
    assert_round_trips(one_node((shape,), build), tmp_path)


@pytest.mark.parametrize("key", sorted(CASES))
def test_onnx_matches_torch(key, tmp_path):
    shape, build, _ = CASES[key]
    assert_onnx_matches(one_node((shape,), build, name=key), tmp_path)


def test_norms_have_torch_modules_and_learnable_affine():
    g = one_node(((4, 3),), lambda g, x: g.group_norm(g.layer_norm(x, 3, name="ln"), 2, name="gn"))
    net = sg.compile(g)
    assert isinstance(net.get_submodule("ln"), nn.LayerNorm) and isinstance(net.get_submodule("gn"), nn.GroupNorm)
    assert {k for k, p in net.named_parameters()} == {"ln.weight", "ln.bias", "gn.weight", "gn.bias"}
    out = net(x0=torch.randn(3, 2, 4, 3))["out"]
    out.square().sum().backward()
    assert net.get_submodule("ln").weight.grad is not None


@pytest.mark.parametrize("call, message", [
    (lambda g, x: g.layer_norm(x, 5, name="ln"), "layer_norm 'ln': normalized_shape [5] must be the last dims"),
    (lambda g, x: g.layer_norm(x, (2, 3, 4, 1), name="ln"), "layer_norm 'ln': normalized_shape"),
    (lambda g, x: g.layer_norm(x, 0, name="ln"), "layer_norm 'ln': normalized_shape must be a positive int"),
    (lambda g, x: g.layer_norm(x, (), name="ln"), "layer_norm 'ln': normalized_shape must not be empty"),
    (lambda g, x: g.layer_norm(x, 4, eps=0.0, name="ln"), "layer_norm 'ln': eps must be positive"),
    (lambda g, x: g.layer_norm(x, 4, eps=float("nan"), name="ln"), "layer_norm 'ln': eps must be finite"),
    (lambda g, x: g.layer_norm(x, 4, weight=np.ones(3), name="ln"), "layer_norm 'ln' weight"),
    (lambda g, x: g.layer_norm(x, 4, elementwise_affine="yes", name="ln"), "layer_norm 'ln': elementwise_affine"),
    (lambda g, x: g.group_norm(x, 3, name="gn"), "group_norm 'gn': num_groups=3 must divide the 2 channels"),
    (lambda g, x: g.group_norm(x, 0, name="gn"), "group_norm 'gn': num_groups must be a positive int"),
    (lambda g, x: g.group_norm(x, 2, weight=np.ones(3), name="gn"), "group_norm 'gn' weight"),
    (lambda g, x: g.group_norm(x, 2, bias_value=[np.nan, 0], name="gn"), "group_norm 'gn' bias: non-finite"),
    (lambda g, x: g.gelu(x, approximate="fast", name="ge"), "gelu 'ge': approximate must be one of"),
    (lambda g, x: g.gelu(x, approximate=None, name="ge"), "gelu 'ge': approximate must be"),
    (lambda g, x: g.sigmoid("nope", name="s"), "sigmoid 's': unknown input"),
])
def test_builder_errors_name_the_node(call, message):
    g = sg.Graph()
    x = g.input("x", (2, 3, 4))
    with pytest.raises(sg.GraphError, match=message.replace("[", r"\[").replace("]", r"\]")):
        call(g, x)
    assert set(g.nodes) == {"x"}


@pytest.mark.parametrize("node, message", [
    ("layer_norm(%x, normalized_shape=(5,))", "layer_norm 'n': normalized_shape"),
    ("layer_norm(%x, normalized_shape=(4,), eps=-1.0)", "layer_norm 'n': eps must be positive"),
    ("group_norm(%x, num_groups=2, num_channels=3)", "group_norm 'n': num_groups=2 must be positive and divide"),
    ("group_norm(%x, num_groups=1, num_channels=3)", "group_norm 'n': expects 3 channels"),
    ('gelu(%x, approximate="erf")', "gelu 'n': approximate must be one of"),
])
def test_parsed_nodes_are_checked(node, message):
    src = f"graph g\n  %x = input(shape=(2, 3, 4)) : f32[2,3,4]\n  %n = {node} : f32[2,3,4]\n  output out = %n\nend\n"
    with pytest.raises(sg.GraphError, match=message):
        sg.parse(src)


def lif():
    return snn.Leaky(beta=0.8, init_hidden=True)


class _Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.ln_weight = nn.Parameter(torch.rand(6) + 0.5)
        self.lif = lif()

    def forward(self, x):
        h = F.layer_norm(self.fc(x), (6,), self.ln_weight, None, 1e-4)
        h = torch.sigmoid(h) + torch.tanh(h) + F.gelu(h, approximate="tanh") + h.sigmoid()
        return self.lif(h)


TRACE_CASES = {
    "modules_1d": (lambda: nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.GELU(), nn.Linear(8, 4), nn.Sigmoid(),
                                         nn.Tanh(), lif()), (6,)),
    "modules_2d": (lambda: nn.Sequential(nn.Conv2d(1, 4, 3), nn.GroupNorm(2, 4), nn.GELU("tanh"),
                                         nn.LayerNorm((4, 4), elementwise_affine=False), lif()), (1, 6, 6)),
    "layer_norm_no_bias": (lambda: nn.Sequential(nn.Linear(6, 5), nn.LayerNorm(5, bias=False), lif()), (6,)),
    "group_norm_no_affine": (lambda: nn.Sequential(nn.Conv1d(2, 4, 3), nn.GroupNorm(4, 4, affine=False), lif()),
                             (2, 7)),
}


@pytest.mark.parametrize("case", sorted(TRACE_CASES))
def test_trace_matches_model(case):
    build, shape = TRACE_CASES[case]
    torch.manual_seed(0)
    assert_trace_matches(build(), *shape)


def test_trace_maps_to_the_node_kinds():
    """Functional forms; the layer norm's weight is a bare parameter of the model (``layer_norm.weight``)."""
    torch.manual_seed(0)
    g = assert_trace_matches(_Functional(), 6, grads=False)
    ops = sorted(n.op for n in g.nodes.values())
    assert ops.count("sigmoid") == 2 and "layer_norm" in ops and "tanh" in ops and "gelu" in ops
    assert g.nodes["layer_norm"].bias is None and g.nodes["layer_norm"].weight.learnable


def test_trace_frozen_layer_norm_weight_stays_fixed():
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), lif())
    model[1].weight.requires_grad_(False)
    g = sg.trace(model, torch.zeros(2, 4))
    assert not g.nodes["_1"].weight.learnable and g.nodes["_1"].bias.learnable


def test_trace_group_norm_channel_mismatch_is_reported():
    model = nn.Sequential(nn.GroupNorm(2, 4), lif())
    with pytest.raises(sg.GraphError, match="GroupNorm"):
        sg.trace(model, torch.zeros(2, 6, 3))
