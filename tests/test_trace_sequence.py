"""Sequence-level tracing (``snngraph/frontends/fx_seqops.py``): a multi-step SpikingJelly model whose
``forward`` reshapes, transposes, splits, concatenates and averages whole ``(T, B, ...)`` sequences,
against SpikingJelly running it (float64, forward, gradients, ONNX); the ops that would mix time or
batch with other dims raise GraphError naming the op and the line; the ``slice`` node."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import snngraph as sg

pytest.importorskip("spikingjelly.activation_based")
from spikingjelly.activation_based import functional, neuron  # noqa: E402

from tests.onnx_helpers import compare, quantise  # noqa: E402
from tests.sj_helpers import only  # noqa: E402

T, B, C, L = 5, 3, 6, 5


class Mixer(nn.Module):
    """Every sequence-level op the translation maps, in one multi-step model."""

    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(L)
        self.proj = nn.Conv1d(C, 2 * C, 1)
        self.bn = nn.BatchNorm1d(2 * C)
        self.lif = neuron.LIFNode(tau=2.0, step_mode="m")
        self.lif2 = neuron.IFNode(v_threshold=0.5, v_reset=None, step_mode="m")
        self.head = nn.Linear(2 * L, 3)

    def forward(self, x):
        if x.ndim != 4:
            raise ValueError("expected (T, B, C, L)")
        t, b, c, n = x.shape
        y = self.norm(x)
        y = self.bn(self.proj(y.flatten(0, 1))).reshape(t, b, 2 * c, n)
        s = self.lif(y * 2.0)
        first, second = s.split([c, c], dim=2)
        att = first.transpose(-2, -1) @ second
        z = torch.cat([att, att.permute(0, 1, 3, 2)], dim=-1)
        u = self.lif2(z.unsqueeze(2).squeeze(2) * 0.25)
        return self.head(u.mean(dim=2))


def _mixer() -> nn.Module:
    torch.manual_seed(0)
    model = Mixer().double()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.2, 0.2)
        model.bn.running_var.uniform_(0.05, 0.2)
    return model.eval()


def _sequence(seed: int = 0) -> torch.Tensor:
    return torch.rand(T, B, C, L, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * 2


def test_sequence_ops_forward_and_gradients():
    model = _mixer()
    x = _sequence()
    g = sg.trace(model, x)
    ops = [n.op for n in g.nodes.values()]
    for op in ("layer_norm", "conv1d", "batch_norm", "slice", "transpose", "matmul", "permute", "concat",
               "adaptive_avg_pool1d", "linear"):
        assert op in ops, op
    net = sg.compile(g).double().eval()
    assert set(net.state_dict()) == set(model.state_dict())
    x_want, x_got = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    functional.reset_net(model)
    rates = []
    hooks = [n.register_forward_hook(lambda mod, i, o: rates.append(float(o.detach().mean())))
             for n in (model.lif, model.lif2)]
    want = model(x_want)
    for h in hooks:
        h.remove()
    assert all(0 < r < 1 for r in rates), rates
    got = only(net(x_got))
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    weights = torch.randn_like(want)
    (want * weights).sum().backward()
    (got * weights).sum().backward()
    assert x_want.grad.abs().sum() > 0
    torch.testing.assert_close(x_got.grad, x_want.grad, rtol=1e-8, atol=1e-10)
    ours = dict(net.named_parameters())
    for key, p in model.named_parameters():
        torch.testing.assert_close(ours[key].grad, p.grad, rtol=1e-8, atol=1e-10, msg=key)
    # other sequence lengths and batch sizes: the graph is per step
    x2 = _sequence(1)[:3, :2]
    functional.reset_net(model)
    with torch.no_grad():
        torch.testing.assert_close(only(net(x2)), model(x2), rtol=1e-9, atol=1e-9)


def test_sequence_ops_export_to_onnx(tmp_path):
    g = quantise(sg.trace(_mixer().float(), torch.zeros(T, B, C, L)))
    out = compare(g, tmp_path, shapes=((T, B), (2, 4)), scale=1.0)
    assert np.abs(next(iter(out.values()))).sum() > 0


class _Bad(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body
        self.lif = neuron.IFNode(step_mode="m")
        self.conv = nn.Conv1d(C, C, 1)

    def forward(self, x):
        return self.body(self, x)


BAD = {
    "transpose": (lambda m, x: m.lif(x.transpose(0, 1)), r"Tensor\.transpose.*dim 0 is the T dim"),
    "reshape": (lambda m, x: m.lif(x.reshape(x.shape[0], x.shape[1] * C, L)),
                r"Tensor\.reshape.*result \(T, B\*6, 5\) does not keep T and B"),
    "flatten": (lambda m, x: m.lif(x.flatten(1)), r"Tensor\.flatten.*dim 1 is the B dim"),
    "mean": (lambda m, x: m.lif(x.mean(0)), r"Tensor\.mean.*dim 0 is the T dim"),
    "index": (lambda m, x: m.lif(x[0]), r"operator\.getitem.*indexing or slicing sequence value"),
    "conv": (lambda m, x: m.lif(m.conv(x)), r"module conv fails on the \(T, B, \.\.\.\) sequence: .*input of size: "
             r"\[T, B, 6, 5\]"),
    "merged neuron": (lambda m, x: m.lif(x.flatten(0, 1)), r"a spiking neuron steps through a \(T, B, \.\.\.\)"),
    "merged output": (lambda m, x: m.lif(x).flatten(0, 1), r"reshape it to \(T, B, \.\.\.\)"),
    "permute": (lambda m, x: m.lif(x.permute(1, 0, 2, 3)), r"permute \(1, 0, 2, 3\) moves the T or B dim"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_ops_that_mix_time_or_batch_name_the_op_and_line(case):
    body, message = BAD[case]
    with pytest.raises(sg.GraphError, match=message) as info:
        sg.trace(_Bad(body), torch.zeros(T, B, C, L))
    assert "test_trace_sequence.py:" in str(info.value)


def test_slice_node():
    g = sg.Graph("s")
    x = g.input("x", (4, 6))
    with pytest.raises(sg.GraphError, match=r"slice 'bad': start 3, stop 2 must satisfy 0 <= start < stop <= 6"):
        g.slice(x, 1, 3, 2, name="bad")
    with pytest.raises(sg.GraphError, match=r"slice 'far': dim 2 out of range"):
        g.slice(x, 2, 0, 1, name="far")
    h = g.slice(x, -1, 1, 4, name="cut")
    assert h.shape == (4, 3)
    g.output("y", g.leaky(h, 0.5))
    assert sg.parse(str(g)) == g
    xs = torch.randn(3, 2, 4, 6)
    net = sg.compile(g)
    ref = sg.compile(sg.parse(str(g)))
    torch.testing.assert_close(net(xs)["y"], ref(xs)["y"])
    mem = sg.Graph("m")
    v = mem.input("x", (4, 6))
    mem.output("y", mem.slice(v, 0, 2, 4))
    torch.testing.assert_close(sg.compile(mem)(xs)["y"], xs[:, :, 2:4])


def test_a_neuron_in_a_multi_step_container():
    """``MultiStepContainer(IFNode())`` steps its single-step neuron through the sequence; the key is kept."""
    from spikingjelly.activation_based import layer

    torch.manual_seed(3)
    model = nn.Sequential(layer.SeqToANNContainer(nn.Linear(L, 4)),
                          layer.MultiStepContainer(neuron.ParametricLIFNode(init_tau=3.0, v_threshold=0.3))).double()
    x = _sequence(2)
    net = sg.compile(sg.trace(model, x)).double()
    assert set(net.state_dict()) == set(model.state_dict()) and "1.0.w" in net.state_dict()
    functional.reset_net(model)
    want = model(x)
    assert 0 < want.mean() < 1
    torch.testing.assert_close(only(net(x)), want, rtol=0, atol=0)
