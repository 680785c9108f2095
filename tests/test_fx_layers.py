"""sg.trace of torch layers and tensor functions: each compiled graph equals the model run step by step."""

from __future__ import annotations

import pytest
import snntorch as snn
import torch
import torch.nn.functional as F
from test_fx_helpers import B, check_equivalent, inputs, run_hidden
from torch import nn

import snngraph as sg


def lif(**kw):
    return snn.Leaky(beta=0.8, init_hidden=True, **kw)


LAYER_CASES = {
    "linear": (lambda: nn.Sequential(nn.Linear(6, 5), lif()), (6,)),
    "linear_nobias": (lambda: nn.Sequential(nn.Linear(6, 5, bias=False), lif()), (6,)),
    "conv1d": (lambda: nn.Sequential(nn.Conv1d(2, 3, 3, stride=2, padding=1), lif()), (2, 9)),
    "conv2d": (lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding="same", groups=2), lif()), (2, 6, 6)),
    "conv2d_dilated": (lambda: nn.Sequential(nn.Conv2d(1, 2, (3, 2), stride=(1, 2), dilation=(2, 1)), lif()),
                       (1, 8, 8)),
    "max_pool1d": (lambda: nn.Sequential(nn.Conv1d(1, 2, 3), nn.MaxPool1d(2), lif()), (1, 10)),
    "max_pool2d": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2, stride=1, padding=1), lif()),
                   (1, 6, 6)),
    "avg_pool1d": (lambda: nn.Sequential(nn.Conv1d(1, 2, 3), nn.AvgPool1d(3, padding=1), lif()), (1, 10)),
    "avg_pool2d": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.AvgPool2d(2), lif()), (1, 7, 7)),
    "flatten": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(32, 4), lif()), (1, 6, 6)),
    "flatten_partial": (lambda: nn.Sequential(nn.Flatten(2), nn.Conv1d(2, 2, 3), lif()), (2, 3, 3)),
    "relu_identity": (lambda: nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Identity(), nn.Linear(4, 3), lif()),
                      (4,)),
    "dropout_eval": (lambda: nn.Sequential(nn.Linear(4, 5), nn.Dropout(0.3), lif()).eval(), (4,)),
    "batch_norm1d_eval": (lambda: _bn(nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), lif())).eval(), (4,)),
    "batch_norm1d_train": (lambda: nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), lif()), (4,)),
    "batch_norm2d_train": (lambda: nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), lif()), (1, 5, 5)),
    "batch_norm2d_eval": (lambda: _bn(nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), lif())).eval(),
                          (1, 5, 5)),
}


def _bn(model: nn.Module) -> nn.Module:
    """Give BatchNorm non-trivial running statistics and affine parameters."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_matches_model(case):
    torch.manual_seed(0)
    build, shape = LAYER_CASES[case]
    model = build()
    xs = inputs(*shape)
    check_equivalent(model, xs[0], xs, lambda: run_hidden(model, xs))


def test_batch_norm_train_updates_running_stats_like_torch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), lif())
    xs = inputs(4)
    net = sg.compile(sg.trace(model, xs[0]))
    net(xs)
    run_hidden(model, xs)
    torch.testing.assert_close(net.state_dict()["1.running_mean"], model[1].running_mean)
    torch.testing.assert_close(net.state_dict()["1.running_var"], model[1].running_var)


def test_dropout_train_semantics_kept():
    model = nn.Sequential(nn.Dropout(0.25))
    g = sg.trace(model, torch.zeros(B, 400))
    assert g.nodes["_0"].op == "dropout" and g.nodes["_0"].p == 0.25
    net = sg.compile(g)
    x = torch.ones(2, 50, 400)
    y = net.train()(x)["out"]
    torch.testing.assert_close(y[y != 0], torch.full_like(y[y != 0], 1 / 0.75))
    assert abs((y == 0).float().mean().item() - 0.25) < 0.02
    torch.testing.assert_close(net.eval()(x)["out"], x)


class Functional(nn.Module):
    """Residual add, torch.cat on features, view/flatten and arithmetic on the functional API."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.lif1 = lif()
        self.fc_a = nn.Linear(2 * 16, 6)
        self.fc_b = nn.Linear(2 * 16, 6)
        self.lif2 = lif()

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.conv(x)), 2, 1, 1)
        h = F.avg_pool2d(h, kernel_size=2)
        s = self.lif1(h)
        flat = s.view(s.size(0), -1)
        flat2 = torch.flatten(s, 1)
        a = self.fc_a(flat)
        b = self.fc_b(flat2)
        r = a + b * 0.5 - a / 4
        y = torch.cat([r, -b], dim=1)
        return self.lif2(F.dropout(y, 0.2, self.training))


def test_functional_ops_match_model():
    torch.manual_seed(0)
    model = Functional().eval()
    xs = inputs(1, 8, 8)
    g = check_equivalent(model, xs[0], xs, lambda: run_hidden(model, xs))
    ops = {node.op for node in g.nodes.values()}
    assert {"add", "concat", "scale", "flatten", "max_pool2d", "avg_pool2d", "relu", "dropout"} <= ops


def test_reshape_with_literal_batch_and_minus_one():
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(12, 3)
            self.lif = lif()

        def forward(self, x):
            return self.lif(self.fc(x.reshape(B, -1)))

    model = Net()
    xs = inputs(3, 4)
    g = check_equivalent(model, xs[0], xs, lambda: run_hidden(model, xs))
    assert g.nodes["reshape"].op == "flatten"


def test_parameters_carry_over_exactly_and_frozen_stay_fixed():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), lif(), nn.Linear(5, 2), lif())
    model[2].weight.requires_grad_(False)
    g = sg.trace(model, torch.zeros(2, 4))
    assert (g.nodes["_0"].weight.value == model[0].weight.detach().numpy()).all()
    assert (g.nodes["_0"].bias.value == model[0].bias.detach().numpy()).all()
    assert g.nodes["_0"].weight.learnable and not g.nodes["_2"].weight.learnable and g.nodes["_2"].bias.learnable
    net = sg.compile(g)
    assert "0.weight" in dict(net.named_parameters()) and "2.weight" not in dict(net.named_parameters())
    assert torch.equal(net.state_dict()["2.weight"], model[2].weight)


def test_float64_model_traces_as_float64():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), lif()).double()
    g = sg.trace(model, torch.zeros(2, 3, dtype=torch.float64))
    assert list(g.inputs) == ["input"] and g.inputs["input"].dtype == "float64"
    assert g.nodes["_0"].weight.dtype == "float64"
