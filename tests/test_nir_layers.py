"""sg.to_nir of the layers NIR has no primitive for (conv_transpose2d, upsample, transpose, permute,
reshape, and layer_norm, group_norm, adaptive pooling, activations, mul, sub, matmul): a GraphError
naming the node and its kind. dropout2d, identity at inference like dropout, passes its input on."""

from __future__ import annotations

import pytest

import snngraph as sg
from snngraph.testing import node_kind_graphs

KINDS = node_kind_graphs()


def _sub() -> sg.Graph:
    g = sg.Graph("sub")  # node_kind_graphs' sub reads a relu, which NIR lacks too
    x = g.input("x", (4,))
    g.output("spk", g.leaky(g.sub(x, g.scale(x, 2.0), name="diff"), 0.9))
    return g


KINDS["sub"] = _sub()
NO_NIR = {  # node-kind graph -> (node name, op)
    "conv_transpose2d": ("deconv", "conv_transpose2d"), "upsample": ("up", "upsample"),
    "upsample_bilinear": ("up", "upsample"), "transpose": ("tr", "transpose"), "permute": ("perm", "permute"),
    "reshape": ("rs", "reshape"), "layer_norm": ("ln", "layer_norm"), "layer_norm_2d": ("ln", "layer_norm"),
    "group_norm": ("gn", "group_norm"), "adaptive_avg_pool1d": ("pool", "adaptive_avg_pool1d"),
    "adaptive_avg_pool2d": ("pool", "adaptive_avg_pool2d"), "sigmoid": ("act", "sigmoid"), "tanh": ("act", "tanh"),
    "gelu": ("act", "gelu"), "gelu_tanh": ("act", "gelu"), "mul": ("prod", "mul"), "sub": ("diff", "sub"),
    "matmul": ("mm", "matmul"), "slice": ("sl", "slice"),
}


@pytest.mark.parametrize("key", sorted(NO_NIR))
def test_to_nir_names_the_node_without_a_counterpart(key):
    name, op = NO_NIR[key]
    assert KINDS[key].nodes[name].op == op
    with pytest.raises(sg.GraphError, match=rf"^{op} '{name}': has no NIR counterpart \(supported: "):
        sg.to_nir(KINDS[key], dt=1e-3)


def test_dropout2d_passes_through():
    g = sg.Graph("drop")
    x = g.input("x", (2, 3, 3))
    s = g.leaky(g.conv2d(g.dropout2d(x, 0.5, name="drop"), 2, 3, name="conv"), 0.9, name="lif")
    g.output("spk", s)
    nir_graph = sg.to_nir(g, dt=1e-3)
    assert "drop" not in nir_graph.nodes and ("x", "conv") in nir_graph.edges
    back = sg.from_nir(nir_graph, dt=1e-3)
    assert [n.op for n in back.nodes.values()] == ["input", "conv2d", "leaky"]
