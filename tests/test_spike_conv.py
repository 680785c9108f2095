"""``spike_conv`` (0/1 input saved as bool) computes exactly what ``F.conv1d`` / ``F.conv2d`` compute, forward and
backward (on CUDA too where there is one), and the compiled module uses it only for convolutions fed by a
neuron's unit-amplitude spikes."""

import pytest
import torch
from test_spike_linear import _grads

import snngraph as sg
from snngraph.runtimes.torch.layers import Conv1d, Conv2d
from snngraph.runtimes.torch.lower import spike_fed_convs
from snngraph.runtimes.torch.spike_conv import spike_conv

CONVS = {  # (module, input shape)
    "2d": (lambda dt, b: Conv2d(4, 6, 3, bias=b, dtype=dt), (20, 4, 9, 8)),
    "2d_strided_padded_dilated": (lambda dt, b: Conv2d(4, 6, (3, 2), stride=2, padding=(1, 2), dilation=(2, 1),
                                                       bias=b, dtype=dt), (20, 4, 11, 9)),
    "2d_grouped": (lambda dt, b: Conv2d(4, 6, 3, groups=2, padding=1, bias=b, dtype=dt), (20, 4, 7, 7)),
    "1d": (lambda dt, b: Conv1d(3, 5, 4, stride=2, padding=1, bias=b, dtype=dt), (20, 3, 17)),
}


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
@pytest.mark.parametrize("case", sorted(CONVS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_values_and_gradients_equal_the_convolution_bit_for_bit(case, dtype, bias, device):
    torch.manual_seed(0)
    make, shape = CONVS[case]
    conv = make(dtype, bias).to(device)
    spikes = (torch.rand(shape, dtype=dtype) < 0.3).to(device, dtype).requires_grad_()
    wrt = [spikes, *conv.parameters()]
    want_out = conv(spikes)
    grad = torch.randn_like(want_out)
    want = torch.autograd.grad(want_out, wrt, grad)
    got_out = conv(spikes, unit_spikes=True)
    got = torch.autograd.grad(got_out, wrt, grad)
    assert torch.equal(got_out, want_out)
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)


def test_saves_the_spikes_as_bool_and_needs_only_the_gradients_asked_for():
    conv = Conv2d(2, 3, 3)
    spikes = (torch.rand(5, 2, 6, 6) < 0.5).float()
    out = spike_conv(spikes, conv)
    saved = out.grad_fn.saved_tensors
    assert [t.dtype for t in saved if t.shape == spikes.shape] == [torch.bool]
    conv.bias.requires_grad_(False)
    (grad_w,) = torch.autograd.grad(spike_conv(spikes, conv).sum(), [conv.weight])
    assert torch.equal(grad_w, torch.autograd.grad(conv(spikes).sum(), [conv.weight])[0])


def test_without_autograd_it_is_the_convolution():
    conv = Conv2d(2, 3, 3)
    spikes = (torch.rand(5, 2, 6, 6) < 0.5).float()
    with torch.no_grad():
        out = spike_conv(spikes, conv)
    assert out.grad_fn is None and torch.equal(out, conv(spikes))


def test_under_autocast_each_gradient_keeps_its_tensor_s_dtype():
    conv = Conv2d(2, 3, 3)
    spikes = (torch.rand(5, 2, 6, 6) < 0.5).float().requires_grad_()
    grads = []
    for unit in (False, True):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = conv(spikes, unit_spikes=unit)
        grads.append(torch.autograd.grad(out.float().square().sum(), [spikes, conv.weight, conv.bias]))
    for a, b in zip(*grads, strict=True):
        assert a.dtype == b.dtype == torch.float32 and torch.equal(a, b)


def _graph(graded=1.0, from_mem=False, pool_first=False) -> sg.Graph:
    torch.manual_seed(0)
    g = sg.Graph("spike_fed_conv")
    x = g.input("x", (1, 12, 12))
    h = g.leaky(g.max_pool2d(g.conv2d(x, 4, 3, name="conv1"), 2), 0.9, graded_spikes_factor=graded, name="lif1")
    h = h.mem if from_mem else h
    h = g.max_pool2d(h, 1) if pool_first else h
    c = g.conv2d(h, 6, 3, padding=1, name="conv2")
    o = g.leaky(g.linear(g.flatten(g.max_pool2d(c, 5)), 3, name="fc"), 0.8, name="lif2")
    g.output("spk", o)
    g.output("mem", o.mem)
    return g


@pytest.mark.parametrize("kwargs,chosen", [({}, {"conv2": "lif1"}), ({"from_mem": True}, {}),
                                           ({"pool_first": True}, {})])
def test_only_convolutions_reading_spikes_are_chosen(kwargs, chosen):
    assert spike_fed_convs(sg.compile(_graph(**kwargs)).graph) == chosen


@pytest.mark.parametrize("graded", [1.0, 2.0])
def test_compiled_net_matches_plain_convolutions_exactly(monkeypatch, graded):
    g = _graph(graded)
    x = torch.rand(9, 4, 1, 12, 12, dtype=torch.float64) * 2
    net, plain = sg.compile(g).double(), sg.compile(g).double()
    plain._spike_fed_convs = {}
    calls = []
    original = Conv2d.forward
    monkeypatch.setattr(Conv2d, "forward", lambda self, r, unit_spikes=False: calls.append(unit_spikes) or
                        original(self, r, unit_spikes))
    torch.testing.assert_close(_grads(net, x), _grads(plain, x), rtol=0, atol=0)
    assert (True in calls) == (graded == 1.0)  # a graded factor other than 1: plain convolutions
