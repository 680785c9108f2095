"""SpikingJelly's multi-step batch norm in training mode: statistics pooled over the T*B rows
(``batch_norm(stats="sequence")``). Traced SEW-ResNets (ADD / IAND / AND) and a spiking VGG against
SpikingJelly in training mode: outputs, every parameter's gradient, the running statistics and batch
counters after the step; containers that pool or step. Float64; 32x32, T=4, B=3."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import snngraph as sg

pytest.importorskip("spikingjelly.activation_based")
from spikingjelly.activation_based import functional, layer, neuron, surrogate  # noqa: E402

from tests.sj_helpers import only, step_sj, zoo  # noqa: E402

T, B = 4, 3


def _images(seed: int, shape=(3, 32, 32)) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(T, B, *shape, generator=gen, dtype=torch.float64)


def _stats(g: sg.Graph) -> dict[str, str]:
    return {name: node.stats for name, node in g.nodes.items() if node.op == "batch_norm"}


def _check_training_step(model: nn.Module, x: torch.Tensor, multi_step: bool = True) -> sg.CompiledNet:
    """Trace ``model`` (training mode), run both once on ``x``; outputs, gradients and buffers must agree."""
    g = sg.trace(model, x if multi_step else x[0])
    net = sg.compile(g).double()
    assert set(net.state_dict()) == set(model.state_dict())
    want = step_sj(model, x, multi_step=multi_step)
    got = only(net(x))
    assert want.abs().sum() > 0
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    weights = torch.randn(want.shape, generator=torch.Generator().manual_seed(1), dtype=want.dtype)
    model.zero_grad()
    net.zero_grad()
    (want * weights).sum().backward()
    (got * weights).sum().backward()
    grads = dict(net.named_parameters())
    for key, p in model.named_parameters():
        torch.testing.assert_close(grads[key].grad, p.grad, rtol=1e-8, atol=1e-10, msg=key)
    mine = net.state_dict()
    for key, value in model.state_dict().items():  # running statistics and num_batches_tracked
        torch.testing.assert_close(mine[key], value, rtol=1e-9, atol=1e-12, msg=key)
    return net


def _sew_net(cnf: str) -> nn.Module:
    """A small SEW-ResNet of the zoo's BasicBlock: a stem, a block, a strided block with its downsampling."""
    sew = zoo("sew_resnet")
    torch.manual_seed(7)
    lif = dict(tau=2.0, detach_reset=True, surrogate_function=surrogate.ATan())
    down = nn.Sequential(layer.Conv2d(8, 16, 1, stride=2, bias=False), layer.BatchNorm2d(16))
    model = nn.Sequential(
        layer.Conv2d(3, 8, 3, padding=1, bias=False), layer.BatchNorm2d(8), neuron.LIFNode(**lif),
        sew.BasicBlock(8, 8, cnf=cnf, spiking_neuron=neuron.LIFNode, **lif),
        sew.BasicBlock(8, 16, stride=2, downsample=down, cnf=cnf, spiking_neuron=neuron.LIFNode, **lif),
        layer.AdaptiveAvgPool2d((1, 1)), layer.Flatten(), layer.Linear(16, 10)).double()
    functional.set_step_mode(model, "m")
    return model


@pytest.mark.parametrize("cnf", ["ADD", "IAND", "AND"])
def test_sew_resnet_training_step(cnf):
    model = _sew_net(cnf)
    net = _check_training_step(model, _images(0))
    assert set(_stats(net.source).values()) == {"sequence"} and len(_stats(net.source)) == 6


def test_sew_resnet_single_step_keeps_per_step_statistics():
    model = _sew_net("ADD")
    functional.set_step_mode(model, "s")
    net = _check_training_step(model, _images(1), multi_step=False)
    assert set(_stats(net.source).values()) == {"step"}


def test_spiking_vgg_training_step():
    vgg = zoo("spiking_vgg")
    torch.manual_seed(8)
    model = vgg.SpikingVGG(cfg=[8, "M", 16, "M"], batch_norm=True, num_classes=10, spiking_neuron=neuron.LIFNode,
                           surrogate_function=surrogate.ATan())
    model.classifier = nn.Sequential(layer.Linear(16 * 7 * 7, 32), neuron.LIFNode(surrogate_function=surrogate.ATan()),
                                     layer.Linear(32, 10))
    model = model.double()
    functional.set_step_mode(model, "m")
    net = _check_training_step(model, _images(2))
    assert set(_stats(net.source).values()) == {"sequence"} and len(_stats(net.source)) == 2


def test_containers_pool_or_step():
    """``SeqToANNContainer`` and a stateless multi-step ``StepModeContainer`` pool the T*B rows; a
    ``MultiStepContainer`` and a stateful ``StepModeContainer`` step each time step by itself."""
    torch.manual_seed(9)
    model = nn.Sequential(
        layer.SeqToANNContainer(nn.Conv2d(3, 4, 3, stride=2), nn.BatchNorm2d(4)),
        neuron.LIFNode(tau=3.0, v_reset=None, surrogate_function=surrogate.ATan()),
        layer.MultiStepContainer(nn.BatchNorm2d(4)),
        neuron.IFNode(surrogate_function=surrogate.Sigmoid()),
        layer.StepModeContainer(False, "m", nn.Flatten(), nn.Linear(4 * 7 * 7, 12), nn.BatchNorm1d(12)),
        neuron.LIFNode(surrogate_function=surrogate.ATan()),
        layer.StepModeContainer(True, "m", nn.Linear(12, 6), nn.BatchNorm1d(6)),
        neuron.IFNode(surrogate_function=surrogate.ATan(), v_threshold=0.5),
    ).double()
    functional.set_step_mode(model, "m")
    net = _check_training_step(model, _images(3, (3, 16, 16)))
    stats = _stats(net.source)
    assert list(stats.values()) == ["sequence", "step", "sequence", "step"], stats


@pytest.mark.slow
def test_sew_resnet18_training_step():
    sew = zoo("sew_resnet")
    torch.manual_seed(10)
    model = sew.sew_resnet18(cnf="IAND", num_classes=10, spiking_neuron=neuron.LIFNode, tau=2.0,
                             surrogate_function=surrogate.Sigmoid(), detach_reset=True).double()
    functional.set_step_mode(model, "m")
    _check_training_step(model, _images(4))
