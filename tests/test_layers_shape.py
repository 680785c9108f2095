"""transpose, permute and reshape of per-step values (dims exclude the batch): compiled graphs against
torch stepped per time step (float64, forward and gradients), round trips, ONNX (sequence and step
modes), builder and parser errors, and sg.trace of x.transpose / x.permute / torch.transpose /
view / reshape (a batch dim that would move raises GraphError naming the op and the line)."""

from __future__ import annotations

import math

import pytest
import snntorch as snn
import torch
from layer_helpers import assert_round_trips, assert_trace_matches, one_node
from onnx_helpers import compare
from spatial_helpers import assert_matches_stepped
from test_fx_helpers import B
from torch import nn

import snngraph as sg

# key -> (per-step input shape, builder, the torch function of one (B, ...) step)
CASES = {
    "transpose_last_two": ((2, 3, 4), lambda g, x: g.transpose(x, 1, 2), lambda x: x.transpose(2, 3)),
    "transpose_negative": ((2, 3, 4), lambda g, x: g.transpose(x, -3, -1), lambda x: x.transpose(1, 3)),
    "transpose_matrix": ((3, 5), lambda g, x: g.transpose(x, 0, 1), lambda x: x.transpose(1, 2)),
    "transpose_same_dim": ((3, 5), lambda g, x: g.transpose(x, 1, -1), lambda x: x),
    "permute_3d": ((2, 3, 4), lambda g, x: g.permute(x, (2, 0, 1)), lambda x: x.permute(0, 3, 1, 2)),
    "permute_negative": ((2, 3, 4), lambda g, x: g.permute(x, (-1, -2, 0)), lambda x: x.permute(0, 3, 2, 1)),
    "permute_identity_1d": ((6,), lambda g, x: g.permute(x, [0]), lambda x: x),
    "reshape_split": ((12,), lambda g, x: g.reshape(x, (3, 4)), lambda x: x.reshape(-1, 3, 4)),
    "reshape_minus_one": ((2, 3, 4), lambda g, x: g.reshape(x, (4, -1)), lambda x: x.reshape(x.shape[0], 4, 6)),
    "reshape_after_transpose": ((2, 3, 4), lambda g, x: g.reshape(g.transpose(x, 0, 2), (-1,)),
                                lambda x: x.transpose(1, 3).reshape(x.shape[0], -1)),
    "heads": ((5, 8), lambda g, x: g.permute(g.reshape(x, (5, 2, 4)), (1, 0, 2)),
              lambda x: x.reshape(x.shape[0], 5, 2, 4).permute(0, 2, 1, 3)),
}


@pytest.mark.parametrize("key", sorted(CASES))
def test_compiled_matches_torch_stepped(key):
    shape, build, fn = CASES[key]
    assert_matches_stepped(one_node((shape,), build), fn)


def test_shape_ops_keep_spikes_and_feed_neurons():
    g = one_node(((2, 3, 4),), lambda g, x: g.leaky(g.reshape(g.permute(g.transpose(g.leaky(x, 0.9, name="a"), 0, 1),
                                                                        (2, 1, 0)), (-1,)), 0.9, name="b"))
    types = g.types()
    assert all(types[r].spike for n, node in g.nodes.items() for r in types if r.node == n
               and node.op in ("transpose", "permute", "reshape"))
    x = torch.rand(6, 2, 2, 3, 4) * 2
    net = sg.compile(g)
    seq = net(x)["out"]
    state, steps = net.init_state(2), []
    for t in range(6):
        out, state = net.step(x[t], state=state)
        steps.append(out["out"])
    torch.testing.assert_close(seq, torch.stack(steps), atol=0, rtol=0)


@pytest.mark.parametrize("key", sorted(CASES))
def test_round_trips(key, tmp_path):
    shape, build, _ = CASES[key]
    assert_round_trips(one_node((shape,), build), tmp_path)


@pytest.mark.parametrize("key", sorted(CASES))
def test_onnx_matches_compiled_sequence_and_step(key, tmp_path):
    shape, build, _ = CASES[key]

    def with_neuron(g, x):
        s = g.leaky(g.scale(build(g, x), 1.5), 0.8, threshold=0.3137, name="lif")
        g.output("mem", s.mem)
        return s

    g = one_node((shape,), with_neuron, name=key)
    compare(g, tmp_path, ((1, 1), (5, 3)))
    compare(g, tmp_path, ((4, 2),), mode="step")


@pytest.mark.parametrize("call, message", [
    (lambda g, x: g.transpose(x, 0, 3, name="t"), r"transpose 't': dims 0, 3 out of range for per-step shape"),
    (lambda g, x: g.transpose(x, -4, 0, name="t"), r"transpose 't': dims -4, 0 out of range"),
    (lambda g, x: g.transpose(x, 0.5, 1, name="t"), r"transpose 't': dim0 must be an int"),
    (lambda g, x: g.permute(x, (0, 1), name="p"), r"permute 'p': dims \[0, 1\] must be a permutation of 0..2"),
    (lambda g, x: g.permute(x, (0, 1, 1), name="p"), r"permute 'p': dims \[0, 1, 1\] must be a permutation"),
    (lambda g, x: g.permute(x, (0, 1, 3), name="p"), r"permute 'p': dims"),
    (lambda g, x: g.permute(x, 2, name="p"), r"permute 'p': dims must be a tuple of ints"),
    (lambda g, x: g.permute(x, (0, "1", 2), name="p"), r"permute 'p': dims must be an int"),
    (lambda g, x: g.reshape(x, (5, 5), name="r"), r"reshape 'r': cannot reshape per-step shape \[2, 3, 4\] \(24 "
                                                  r"elements\) to \[5, 5\] \(25 elements\)"),
    (lambda g, x: g.reshape(x, (-1, -1), name="r"), r"reshape 'r': shape must be positive ints with at most one -1"),
    (lambda g, x: g.reshape(x, (0, 24), name="r"), r"reshape 'r': shape must be positive"),
    (lambda g, x: g.reshape(x, (-2, 12), name="r"), r"reshape 'r': shape must be an int >= -1"),
    (lambda g, x: g.reshape(x, (5, -1), name="r"), r"reshape 'r': cannot reshape per-step shape \[2, 3, 4\] to"),
    (lambda g, x: g.reshape(x, (), name="r"), r"reshape 'r': shape must be positive ints"),
    (lambda g, x: g.reshape(x, (2.0, 12), name="r"), r"reshape 'r': shape must be an int"),
])
def test_builder_errors_name_the_node(call, message):
    g = sg.Graph()
    x = g.input("x", (2, 3, 4))
    with pytest.raises(sg.GraphError, match=message):
        call(g, x)
    assert set(g.nodes) == {"x"}


@pytest.mark.parametrize("node, message", [
    ("transpose(%x, dim0=0, dim1=2)", r"transpose 'n': dims 0, 2 out of range"),
    ("transpose(%x, dim0=0)", r"transpose 'n' is missing \['dim1'\]"),
    ("permute(%x, dims=(1, 1))", r"permute 'n': dims \[1, 1\] must be a permutation"),
    ("reshape(%x, shape=(4, 2))", r"reshape 'n': cannot reshape per-step shape \[2, 3\]"),
    ("reshape(%x, shape=(-1, 2))", r"reshape 'n': shape must be a non-empty tuple of positive ints"),
])
def test_parsed_nodes_are_checked(node, message):
    src = f"graph g\n  %x = input(shape=(2, 3)) : f32[2,3]\n  %n = {node} : f32[2,3]\n  output out = %n\nend\n"
    with pytest.raises(sg.GraphError, match=message):
        sg.parse(src)


def lif(library=snn):
    return library.Leaky(beta=0.8, init_hidden=True)


class Attention(nn.Module):
    """Spikformer-style self-attention on (B, N, D) tokens: heads by reshape + permute, ``q @ k^T``
    with ``k.transpose(-2, -1)``, heads merged back with ``transpose(1, 2)`` and ``reshape(B, N, D)``."""

    def __init__(self, n: int = 4, d: int = 8, heads: int = 2, library=snn):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.q_lif, self.k_lif, self.v_lif, self.out_lif = (lif(library) for _ in range(4))
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        b, n, d = x.shape
        h = self.heads
        q = self.q_lif(self.q(x)).reshape(b, n, h, d // h).permute(0, 2, 1, 3)
        k = self.k_lif(self.k(x)).reshape(b, n, h, d // h).permute(0, 2, 1, 3)
        v = self.v_lif(self.v(x)).view(x.shape[0], n, h, -1).transpose(1, 2)
        attn = (q @ k.transpose(-2, -1)) * 0.125
        y = (attn @ v).transpose(1, 2).reshape(b, n, d)
        return self.out_lif(self.proj(y))


class Shapes(nn.Module):
    """torch.transpose, x.permute(0, 2, 1), torch.permute, swapaxes, view with -1, x.reshape(x.shape[0], -1),
    flatten(start_dim) and a reshape by the example's batch size."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 6)
        self.lif = lif()
        self.out = nn.Linear(24, 5)
        self.lif2 = lif()

    def forward(self, x):  # x: (B, 4, 3)
        h = self.lif(self.fc(x))  # (B, 4, 6)
        a = torch.transpose(h, 1, 2).permute(0, 2, 1)  # (B, 4, 6)
        c = torch.permute(a, (0, 2, 1)).swapaxes(2, 1).view(-1, 2, 12)  # (B, 2, 12)
        d = c.reshape(B, 3, 8).flatten(1) + c.reshape(x.shape[0], -1) + h.reshape(x.size(0), 24)
        return self.lif2(self.out(d))


@pytest.mark.parametrize("model, shape", [(Attention, (4, 8)), (Shapes, (4, 3))])
def test_trace_matches_model_stepped(model, shape):
    g = assert_trace_matches(model(), *shape)
    ops = {n.op for n in g.nodes.values()}
    assert {"transpose", "permute", "reshape"} & ops


def test_trace_maps_to_the_node_kinds():
    g = sg.trace(Attention(), torch.zeros(2, 4, 8))
    ops = [n.op for n in g.nodes.values()]
    assert ops.count("matmul") == 2 and "permute" in ops and ops.count("transpose") >= 2 and "reshape" in ops
    g = sg.trace(Shapes(), torch.zeros(B, 4, 3))
    flat = [n for n in g.nodes.values() if n.op == "flatten"]
    assert flat and all(n.start_dim == 0 for n in flat)  # flattening reshapes stay flatten nodes


def test_trace_attention_float64_exact_spikes():
    """With sg.nn's Leaky (snnTorch's semantics; snnTorch's own returns float32 spikes from float64 membranes)."""
    torch.manual_seed(0)
    model = Attention(library=sg.nn).double()
    x = torch.rand(12, 2, 4, 8, dtype=torch.float64) * 6
    net = sg.compile(sg.trace(model, x[0]))
    sg.utils.reset(model)
    want = torch.stack([model(x[t]) for t in range(12)])
    (got,) = net(x).values()
    assert torch.equal(got, want) and got.sum() > 0


def test_trace_unsqueeze_and_squeeze_are_reshapes():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 6)
            self.lif = lif()

        def forward(self, x):  # (B, 4) -> (B, 1, 6) -> (B, 6, 1) -> (B, 6)
            h = self.fc(x).unsqueeze(1)
            return self.lif(torch.unsqueeze(h.squeeze(1), -1).squeeze(-1).squeeze(1))

    g = assert_trace_matches(Net(), 4)
    assert [n.op for n in g.nodes.values()].count("reshape") == 4  # the last squeeze(1) of a size-6 dim: none


def _forward(body):
    ns = {}
    exec(f"def forward(self, x):\n    return {body}\n", {"torch": torch}, ns)  # noqa: S102 (a test-local model)
    return type("Net", (nn.Module,), {"forward": ns["forward"]})()


@pytest.mark.parametrize("body, op, message", [
    ("x.transpose(0, 1)", "Tensor.transpose", "operations along the batch dim"),
    ("torch.transpose(x, 2, 0)", "torch.transpose", "operations along the batch dim"),
    ("x.swapaxes(0, 1)", "Tensor.swapaxes", "operations along the batch dim"),
    ("x.permute(1, 0, 2)", "Tensor.permute", r"permute \(1, 0, 2\) moves the batch dim"),
    ("torch.permute(x, (2, 1, 0))", "torch.permute", "moves the batch dim"),
    ("x.permute(0, 1)", "Tensor.permute", "must be a permutation of 0..2"),
    ("x.reshape(-1, 4)", "Tensor.reshape", "would merge the batch dim"),
    ("x.view(3, -1)", "Tensor.view", "the first dim must stay the batch"),
    ("x.reshape(x.shape[0] * 3, 4)", "operator.mul", "only multiplication"),
    ("x.reshape(x.shape[1], x.shape[0], 4)", "Tensor.reshape", "the first dim must stay the batch"),
    ("x.reshape(x.shape[0], 4, x.shape[0])", "Tensor.reshape", "per-step dims must be ints"),
    ("x.flatten()", "Tensor.flatten", "operations along the batch dim"),
    ("x.unsqueeze(0)", "Tensor.unsqueeze", "before the batch dim"),
    ("x.squeeze()", "Tensor.squeeze", "give the dim"),
    ("x.squeeze(0)", "Tensor.squeeze", "operations along the batch dim"),
])
def test_trace_moving_the_batch_dim_names_the_op_and_line(body, op, message):
    # forward is compiled from a string, so the source line is exec's: the message names the op and
    # 'forward'; test_trace_error_names_the_source_line checks a real file line
    with pytest.raises(sg.GraphError, match=f"sg.trace: {op}.*{message}"):
        sg.trace(_forward(body), torch.zeros(2, 3, 4))


class BatchFirst(nn.Module):
    def forward(self, x):
        return x.permute(2, 1, 0)


def test_trace_error_names_the_source_line():
    with pytest.raises(sg.GraphError, match=r"Tensor\.permute at test_layers_shape\.py:\d+ in forward "
                                            r"`return x\.permute\(2, 1, 0\)`: permute \(2, 1, 0\) moves the batch"):
        sg.trace(BatchFirst(), torch.zeros(2, 3, 4))


def test_reshape_dims_are_per_step():
    """The IR's reshape shape excludes the batch: the per-step element count is kept."""
    g = sg.trace(_forward("x.reshape(x.shape[0], 2, -1)"), torch.zeros(5, 3, 4))
    (node,) = [n for n in g.nodes.values() if n.op == "reshape"]
    assert node.shape == (2, 6) and math.prod(node.shape) == 12
