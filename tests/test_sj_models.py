"""SpikingJelly 2.0 models traced with sg.trace, against SpikingJelly stepping the original: layer.*
wrappers, containers and step modes, the zoo's SEW-ResNet-18 (ADD / IAND / AND) and spiking VGG,
ONNX export of a traced model, and the errors for what cannot be traced. Float64; 32x32, T=4, B=2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import snngraph as sg

pytest.importorskip("spikingjelly.activation_based")
from spikingjelly.activation_based import functional, layer, neuron, surrogate  # noqa: E402

from tests.onnx_helpers import compare, quantise  # noqa: E402
from tests.sj_helpers import only, step_sj, zoo  # noqa: E402

T, B = 4, 2


def _images(seed: int = 0, shape=(3, 32, 32)) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(T, B, *shape, generator=gen, dtype=torch.float64)


def _conv_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        layer.Conv2d(3, 8, 3, padding=1, bias=False), layer.BatchNorm2d(8),
        neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(), detach_reset=True),
        layer.MaxPool2d(2), layer.Conv2d(8, 8, 3, padding=1), neuron.IFNode(v_threshold=0.2, v_reset=None),
        layer.AvgPool2d(2), layer.Flatten(), layer.Dropout(0.3), layer.Linear(8 * 8 * 8, 10),
        neuron.ParametricLIFNode(init_tau=2.0, v_threshold=0.05, surrogate_function=surrogate.Sigmoid()),
    ).double()


def _grads(module: nn.Module, out: torch.Tensor, weights: torch.Tensor) -> dict[str, torch.Tensor]:
    module.zero_grad()
    (out * weights).sum().backward()
    return {k: p.grad.clone() for k, p in module.named_parameters()}


def _assert_same_grads(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert set(got) == set(want)
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, rtol=1e-8, atol=1e-10, msg=key)


def test_single_step_conv_net_forward_and_gradients():
    """Training mode (batch norm with per-step statistics, as SpikingJelly's single-step mode has them);
    dropout is set to p=0 for the gradient run since masks are random."""
    model = _conv_net()
    model[8].p = 0.0
    x = _images()
    g = sg.trace(model, x[0])
    net = sg.compile(g).double()
    assert set(net.state_dict()) == set(model.state_dict())
    want = step_sj(model, x)
    got = only(net(x))
    assert 0 < want.sum() < want.numel()
    assert torch.equal(got, want)
    weights = torch.randn_like(want)
    _assert_same_grads(_grads(net, got, weights), _grads(model, want, weights))


def test_multi_step_model_with_containers():
    torch.manual_seed(1)
    model = nn.Sequential(
        layer.SeqToANNContainer(nn.Conv2d(3, 6, 3, stride=2), nn.BatchNorm2d(6)),
        neuron.LIFNode(tau=3.0, decay_input=False, v_reset=None),
        layer.MultiStepContainer(nn.Flatten(), nn.Linear(6 * 15 * 15, 12)),
        neuron.IFNode(surrogate_function=surrogate.Erf()),
        layer.Linear(12, 5),
    ).double().eval()
    functional.set_step_mode(model, "m")
    x = _images(1).requires_grad_(True)
    g = sg.trace(model, x.detach())  # a multi-step model is traced from the (T, B, ...) it takes
    assert type(model[0]).__name__ == "SeqToANNContainer" and model[1].step_mode == "m"  # left as it was
    net = sg.compile(g).double().eval()
    want = step_sj(model, x, multi_step=True)
    x_got = x.detach().clone().requires_grad_(True)
    got = only(net(x_got))
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    (gx_want,) = torch.autograd.grad(want.square().sum(), x)
    (gx_got,) = torch.autograd.grad(got.square().sum(), x_got)
    assert gx_want.abs().sum() > 0
    torch.testing.assert_close(gx_got, gx_want, rtol=1e-8, atol=1e-10)
    net.load_state_dict(model.state_dict())  # the same keys both ways
    model.load_state_dict(net.state_dict())


@pytest.mark.parametrize("cnf", ["ADD", "IAND", "AND"])
def test_sew_resnet18_multi_step(cnf):
    sew = zoo("sew_resnet")
    torch.manual_seed(2)
    model = sew.sew_resnet18(cnf=cnf, num_classes=10, spiking_neuron=neuron.IFNode,
                             surrogate_function=surrogate.ATan(), detach_reset=True).double().eval()
    functional.set_step_mode(model, "m")
    x = _images(2)
    net = sg.compile(sg.trace(model, x)).double().eval()
    with torch.no_grad():
        want = step_sj(model, x, multi_step=True)
        got = only(net(x))
    assert want.abs().sum() > 0
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.slow
def test_sew_resnet18_single_step_training_gradients():
    """Single-step mode in training mode: batch statistics per step in both; every parameter's gradient."""
    sew = zoo("sew_resnet")
    torch.manual_seed(3)
    model = sew.sew_resnet18(cnf="IAND", num_classes=10, spiking_neuron=neuron.LIFNode, tau=2.0,
                             surrogate_function=surrogate.Sigmoid(), detach_reset=True).double()
    x = _images(3)
    net = sg.compile(sg.trace(model, x[0])).double()
    want = step_sj(model, x)
    got = only(net(x))
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    weights = torch.randn_like(want)
    _assert_same_grads(_grads(net, got, weights), _grads(model, want, weights))


def _small_vgg() -> nn.Module:
    vgg = zoo("spiking_vgg")
    torch.manual_seed(4)
    model = vgg.SpikingVGG(cfg=[8, "M", 16, "M"], batch_norm=True, num_classes=10, spiking_neuron=neuron.LIFNode,
                           surrogate_function=surrogate.ATan())
    # the zoo's classifier is 512*7*7 -> 4096 -> 4096 wide; a narrow one of the same structure keeps the test fast
    model.classifier = nn.Sequential(layer.Linear(16 * 7 * 7, 32), neuron.LIFNode(surrogate_function=surrogate.ATan()),
                                     layer.Dropout(), layer.Linear(32, 10))
    return model.double().eval()


@pytest.mark.parametrize("mode", ["s", "m"])
def test_spiking_vgg_features(mode):
    model = _small_vgg()
    functional.set_step_mode(model, mode)
    x = _images(4)
    net = sg.compile(sg.trace(model, x if mode == "m" else x[0])).double().eval()
    with torch.no_grad():
        want = step_sj(model, x, multi_step=mode == "m")
        got = only(net(x))
    assert want.abs().sum() > 0
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.slow
def test_spiking_vgg11_bn_unmodified():
    vgg = zoo("spiking_vgg")
    torch.manual_seed(5)
    model = vgg.spiking_vgg11_bn(num_classes=10, spiking_neuron=neuron.IFNode,
                                 surrogate_function=surrogate.ATan()).eval()
    functional.set_step_mode(model, "m")
    x = _images(5).float()
    net = sg.compile(sg.trace(model, x)).eval()
    with torch.no_grad():
        want = step_sj(model, x, multi_step=True)
        got = only(net(x))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_traced_sew_resnet_exports_to_onnx(tmp_path):
    sew = zoo("sew_resnet")
    torch.manual_seed(6)
    model = sew.sew_resnet18(cnf="ADD", num_classes=10, spiking_neuron=neuron.LIFNode,
                             surrogate_function=surrogate.ATan()).eval()
    functional.set_step_mode(model, "m")
    g = quantise(sg.trace(model, torch.zeros(T, B, 3, 32, 32)))
    out = compare(g, tmp_path, shapes=((T, B),), scale=1.0)
    assert np.abs(next(iter(out.values()))).sum() > 0


def test_unsupported_modules_name_the_op_and_line():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = layer.Linear(4, 4)
            self.filt = layer.SynapseFilter(tau=2.0)
            self.sn = neuron.LIFNode()

        def forward(self, x):
            return self.sn(self.filt(self.fc(x)))

    with pytest.raises(sg.GraphError, match=r"module 'filt' \(SynapseFilter\).*test_sj_models.py:\d+"):
        sg.trace(Net(), torch.zeros(2, 4))
    ws = nn.Sequential(layer.WSConv2d(3, 4, 3), neuron.IFNode())
    with pytest.raises(sg.GraphError, match="WSConv2d"):
        sg.trace(ws, torch.zeros(2, 3, 8, 8))
    multi = nn.Sequential(layer.Linear(4, 4), neuron.IFNode())
    functional.set_step_mode(multi, "m")
    with pytest.raises(sg.GraphError, match=r"multi-step mode: give the example it takes, \(T, B, ...\)"):
        sg.trace(multi, torch.zeros(2, 4))


def test_a_number_minus_a_tensor_only_as_a_factor():
    """IAND's ``x * (1.0 - y)`` traces (as ``x - x * y``); ``1.0 - y`` used otherwise is named."""
    class Inv(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = layer.Linear(3, 3)
            self.sn = neuron.IFNode()

        def forward(self, x):
            return 1.0 - self.sn(self.fc(x))

    with pytest.raises(sg.GraphError, match=r"1.0 - 'sn' \(a number minus a tensor can only multiply a tensor\)"):
        sg.trace(Inv(), torch.zeros(2, 3))
