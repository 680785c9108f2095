"""``lean_max_pool2d`` (the max pooling of the compiled nets' ``MaxPool1d``/``MaxPool2d`` modules when the windows
tile the input) equals torch's max pooling bit for bit, values and gradients, ties and NaNs included, keeping one
byte per output for its backward; other poolings are torch's own. On CUDA too where there is one."""

import pytest
import torch
from torch import nn

import snngraph as sg
from snngraph.runtimes.torch import layers
from snngraph.runtimes.torch.lean_max_pool import lean_max_pool2d

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
CASES = {"2": (2, (5, 3, 8, 8)), "3_uneven": (3, (4, 2, 10, 11)), "2x3": ((2, 3), (3, 2, 7, 9)),
         "4x1": ((4, 1), (2, 2, 9, 5)), "unbatched": (2, (3, 6, 6))}


def _input(shape, dtype, device):
    x = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(0))
    x.view(-1, *shape[-2:])[0, :2, :2] = 1.0  # a window of ties
    x.view(-1, *shape[-2:])[-1, 0, :2] = float("nan")  # two NaNs in a window (torch keeps the last)
    return x.to(device).requires_grad_()


def _same(pool_a, pool_b, x):
    a, b = pool_a(x), pool_b(x)
    grad = torch.randn(a.shape, dtype=a.dtype, generator=torch.Generator().manual_seed(1)).to(a.device)
    ga, gb = torch.autograd.grad(a, x, grad)[0], torch.autograd.grad(b, x, grad)[0]
    assert torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0)) and a.isnan().any()
    assert torch.equal(ga, gb) and ga.stride() == gb.stride()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_equals_torch_max_pool2d_bit_for_bit(case, dtype, device):
    kernel, shape = CASES[case]
    x = _input(shape, dtype, device)
    out = layers.MaxPool2d(kernel)(x)
    assert type(out.grad_fn).__name__ == "_LeanMaxPool2dBackward"
    assert [t.dtype for t in out.grad_fn.saved_tensors] == [torch.uint8]  # one byte an output, no input
    _same(layers.MaxPool2d(kernel), nn.MaxPool2d(kernel), x)


@pytest.mark.parametrize("device", DEVICES)
def test_max_pool1d_and_channels_last(device):
    x = _input((4, 3, 17), torch.float32, device)
    _same(layers.MaxPool1d(4), nn.MaxPool1d(4), x)
    y = _input((2, 3, 8, 8), torch.float32, device).detach().to(memory_format=torch.channels_last).requires_grad_()
    _same(layers.MaxPool2d(2), nn.MaxPool2d(2), y)


@pytest.mark.parametrize("kwargs", [dict(stride=1), dict(padding=1), dict(dilation=2), dict(ceil_mode=True)])
def test_windows_that_do_not_tile_keep_torch_s_pooling(kwargs):
    x = _input((2, 3, 9, 9), torch.float64, "cpu")
    assert type(layers.MaxPool2d(3, **kwargs)(x).grad_fn).__name__ == "MaxPool2DWithIndicesBackward0"
    _same(layers.MaxPool2d(3, **kwargs), nn.MaxPool2d(3, **kwargs), x)


def test_without_autograd_it_is_torch_s_pooling():
    x = torch.randn(2, 3, 8, 8)
    assert lean_max_pool2d(x, 2).grad_fn is None
    assert torch.equal(lean_max_pool2d(x, 2), nn.functional.max_pool2d(x, 2))


def test_compiled_conv_net_trains_exactly_as_with_torch_s_pooling(monkeypatch):
    """conv -> max pool -> Leaky twice: the compiled net (its pooling lean, so the convolutions' outputs are not kept)
    gives the gradients of torch's pooling bit for bit."""
    g = sg.Graph("conv")
    h = g.leaky(g.max_pool2d(g.conv2d(g.input("x", (1, 12, 12)), 4, 3, name="conv1"), 2), 0.9, name="lif1")
    o = g.leaky(g.linear(g.flatten(g.max_pool2d(g.conv2d(h, 6, 3, name="conv2"), 3)), 3, name="fc"), 0.8, name="lif2")
    g.output("spk", o)
    g.output("mem", o.mem)
    x = torch.rand(9, 4, 1, 12, 12, dtype=torch.float64) * 2
    grads = []
    for lean in (True, False):
        torch.manual_seed(0)
        net = sg.compile(g).double()
        if not lean:
            monkeypatch.setattr(layers.MaxPool2d, "forward", nn.MaxPool2d.forward)
        out = net(x)
        (out["mem"].sum() + out["spk"].sum()).backward()
        grads.append([p.grad for p in net.parameters()])
    for a, b in zip(*grads, strict=True):
        assert torch.equal(a, b)
