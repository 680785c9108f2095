"""Binary nodes (mul, sub, matmul) and adaptive average pooling: builder and shape errors, round
trips, torch runtime, ONNX export and sg.trace."""

from __future__ import annotations

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


# key -> (per-step input shapes, builder, the torch function of one (B, ...) step)
CASES = {
    "mul": (((2, 3), (2, 3)), lambda g, a, b: g.mul(a, b), torch.mul),
    "sub": (((5,), (5,)), lambda g, a, b: g.sub(a, b), torch.sub),
    "mul_self": (((4,),), lambda g, a: g.mul(a, a), lambda a: a * a),
    "matmul": (((3, 4), (4, 2)), lambda g, a, b: g.matmul(a, b), torch.matmul),
    "matmul_batched": (((2, 3, 4), (2, 4, 5)), lambda g, a, b: g.matmul(a, b), torch.matmul),
    "adaptive_avg_pool1d": (((2, 8),), lambda g, x: g.adaptive_avg_pool1d(x, 4), lambda x: F.adaptive_avg_pool1d(x, 4)),
    "adaptive_avg_pool1d_global": (((3, 5),), lambda g, x: g.adaptive_avg_pool1d(x, 1),
                                   lambda x: F.adaptive_avg_pool1d(x, 1)),
    "adaptive_avg_pool2d": (((2, 6, 4),), lambda g, x: g.adaptive_avg_pool2d(x, (3, 2)),
                            lambda x: F.adaptive_avg_pool2d(x, (3, 2))),
    "adaptive_avg_pool2d_global": (((2, 5, 3),), lambda g, x: g.adaptive_avg_pool2d(x, 1),
                                   lambda x: F.adaptive_avg_pool2d(x, 1)),
}
UNEVEN = {  # torch only: the ONNX export refuses sizes that do not divide
    "adaptive_avg_pool1d_uneven": (((2, 7),), lambda g, x: g.adaptive_avg_pool1d(x, 3),
                                   lambda x: F.adaptive_avg_pool1d(x, 3)),
    "adaptive_avg_pool2d_uneven": (((1, 5, 7),), lambda g, x: g.adaptive_avg_pool2d(x, (2, 3)),
                                   lambda x: F.adaptive_avg_pool2d(x, (2, 3))),
}


@pytest.mark.parametrize("key", sorted(CASES | UNEVEN))
def test_compiled_matches_torch_per_step(key):
    shapes, build, fn = (CASES | UNEVEN)[key]
    assert_matches_per_step(one_node(shapes, build), fn, atol=1e-5)


@pytest.mark.parametrize("key", sorted(CASES | UNEVEN))
def test_round_trips(key, tmp_path):
    shapes, build, _ = (CASES | UNEVEN)[key]
    assert_round_trips(one_node(shapes, build), tmp_path)


@pytest.mark.parametrize("key", sorted(CASES))
def test_onnx_matches_torch(key, tmp_path):
    shapes, build, _ = CASES[key]
    assert_onnx_matches(one_node(shapes, build, name=key), tmp_path)


@pytest.mark.parametrize("key", sorted(UNEVEN))
def test_onnx_refuses_uneven_adaptive_pooling(key, tmp_path):
    shapes, build, _ = UNEVEN[key]
    g = one_node(shapes, build)
    with pytest.raises(sg.GraphError, match=r"adaptive_avg_pool\dd '.*': ONNX export needs each output size"):
        sg.export_onnx(g, tmp_path / "m.onnx")


@pytest.mark.parametrize("call, message", [
    (lambda g, v: g.mul(v["a"], v["b"], name="m"), r"mul 'm': shapes differ: \[2, 3\] and \[3, 2\]"),
    (lambda g, v: g.sub(v["a"], v["v"], name="s"), r"sub 's': shapes differ"),
    (lambda g, v: g.mul(v["a"], "nope", name="m"), r"mul 'm': unknown input 'nope'"),
    (lambda g, v: g.matmul(v["a"], v["a"], name="mm"), r"matmul 'mm': expects per-step shapes \(\.\.\., n, k\)"),
    (lambda g, v: g.matmul(v["v"], v["v"], name="mm"), r"matmul 'mm': expects"),
    (lambda g, v: g.matmul(v["a"], v["c"], name="mm"), r"matmul 'mm': expects"),
    (lambda g, v: g.adaptive_avg_pool1d(v["v"], 2, name="p"), r"adaptive_avg_pool1d 'p': expects \(C, L\)"),
    (lambda g, v: g.adaptive_avg_pool2d(v["a"], 1, name="p"), r"adaptive_avg_pool2d 'p': expects \(C, L, L\)"),
    (lambda g, v: g.adaptive_avg_pool2d(v["c"], 0, name="p"), r"adaptive_avg_pool2d 'p' output_size"),
    (lambda g, v: g.adaptive_avg_pool2d(v["c"], (2, None), name="p"), r"adaptive_avg_pool2d 'p': output_size None"),
    (lambda g, v: g.adaptive_avg_pool1d(v["a"], (1, 2), name="p"), r"adaptive_avg_pool1d 'p' output_size"),
])
def test_builder_errors_name_the_node(call, message):
    g = sg.Graph()
    v = {"a": g.input("a", (2, 3)), "b": g.input("b", (3, 2)), "v": g.input("v", (5,)),
         "c": g.input("c", (2, 4, 2, 3))}
    before = set(g.nodes)
    with pytest.raises(sg.GraphError, match=message):
        call(g, v)
    assert set(g.nodes) == before


@pytest.mark.parametrize("node, message", [
    ("mul(%x)", "mul 'n'"),
    ("sub(%x, %x, %x)", "sub 'n'"),
    ("adaptive_avg_pool2d(%x, output_size=(2,))", "adaptive_avg_pool2d 'n': output_size must be 2 positive ints"),
    ("adaptive_avg_pool1d(%x, output_size=(0,))", "adaptive_avg_pool1d 'n': output_size must be 1 positive ints"),
])
def test_parsed_nodes_are_checked(node, message):
    src = f"graph g\n  %x = input(shape=(2, 3)) : f32[2,3]\n  %n = {node} : f32[2,3]\n  output out = %n\nend\n"
    with pytest.raises(sg.GraphError, match=message):
        sg.parse(src)


def lif():
    return snn.Leaky(beta=0.8, init_hidden=True)


TRACE_CASES = {
    "adaptive_modules": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d((2, 3)), nn.Flatten(),
                                               nn.Linear(12, 4), lif()), (1, 7, 8)),
    "adaptive_1d_uneven": (lambda: nn.Sequential(nn.Conv1d(1, 2, 3), nn.AdaptiveAvgPool1d(3), lif()), (1, 9)),
}


@pytest.mark.parametrize("case", sorted(TRACE_CASES))
def test_trace_matches_model(case):
    build, shape = TRACE_CASES[case]
    assert_trace_matches(build(), *shape)


class Products(nn.Module):
    """``x * y``, ``x - y`` (``torch.sub`` with alpha), ``@``, ``torch.matmul``, ``bmm``, ``F.adaptive_avg_pool1d``
    on per-step (4, 4) matrices."""

    def __init__(self):
        super().__init__()
        self.fa, self.fb = nn.Linear(4, 4), nn.Linear(4, 4)
        self.lif = lif()

    def forward(self, x):
        a, b = self.fa(x), self.fb(x)
        h = torch.sigmoid(a) * b - torch.sub(a, b, alpha=0.5)
        p = torch.bmm(h, b) + h @ a + torch.matmul(a, b)
        return self.lif(F.adaptive_avg_pool1d(p, 2).flatten(1))


def test_trace_products_match_model():
    g = assert_trace_matches(Products(), 4, 4)
    ops = [n.op for n in g.nodes.values()]
    assert ops.count("matmul") == 3 and "mul" in ops and ops.count("sub") == 2 and "adaptive_avg_pool1d" in ops


def test_trace_mul_of_different_shapes_is_refused():
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.fa, self.fb = nn.Linear(6, 4), nn.Linear(6, 1)

        def forward(self, x):
            return self.fa(x) * self.fb(x)

    with pytest.raises(sg.GraphError, match="shapes differ"):
        sg.trace(Bad(), torch.zeros(2, 6))
