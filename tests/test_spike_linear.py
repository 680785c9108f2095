"""``spike_linear`` (0/1 input saved as bool) computes exactly what ``F.linear`` computes, and the
compiled module uses it only for linears fed by a neuron's unit-amplitude spikes."""

import pytest
import torch
import torch.nn.functional as F

import snngraph as sg
from snngraph.runtimes.torch.lower import spike_fed_linears
from snngraph.runtimes.torch.spike_linear import spike_linear


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_values_and_gradients_equal_f_linear_bit_for_bit(dtype, bias):
    torch.manual_seed(0)
    spikes = (torch.rand(700, 67, dtype=dtype) < 0.3).to(dtype).requires_grad_()
    weight = torch.randn(19, 67, dtype=dtype, requires_grad=True)
    b = torch.randn(19, dtype=dtype, requires_grad=True) if bias else None
    grad = torch.randn(700, 19, dtype=dtype)
    wrt = [spikes, weight] + ([b] if bias else [])
    want_out = F.linear(spikes, weight, b)
    want = torch.autograd.grad(want_out, wrt, grad)
    got_out = spike_linear(spikes, weight, b)
    got = torch.autograd.grad(got_out, wrt, grad)
    assert torch.equal(got_out, want_out)
    for a, c in zip(got, want, strict=True):
        assert torch.equal(a, c)


def test_leading_dimensions_fold_like_f_linear():
    spikes = (torch.rand(5, 3, 2, 6, dtype=torch.float64) < 0.5).double().requires_grad_()
    weight = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(5, 3, 2, 4, dtype=torch.float64)
    want = torch.autograd.grad(F.linear(spikes, weight), [spikes, weight], grad)
    got_out = spike_linear(spikes, weight, None)
    assert torch.equal(got_out, F.linear(spikes, weight))
    for a, c in zip(torch.autograd.grad(got_out, [spikes, weight], grad), want, strict=True):
        assert torch.equal(a, c)


def test_saves_the_spikes_as_bool():
    spikes = (torch.rand(50, 8) < 0.5).float()
    weight = torch.randn(3, 8, requires_grad=True)
    out = spike_linear(spikes, weight, None)
    saved = out.grad_fn.saved_tensors
    assert [t.dtype for t in saved if t.shape == spikes.shape] == [torch.bool]


def test_without_autograd_it_is_plain_linear():
    spikes, weight = (torch.rand(5, 4) < 0.5).float(), torch.randn(3, 4)
    assert spike_linear(spikes, weight, None).grad_fn is None
    with torch.no_grad():
        assert torch.equal(spike_linear(spikes, weight.requires_grad_(), None), F.linear(spikes, weight))


def _graph(graded=1.0, learn_graded=False, spike_grad=None, from_mem=False) -> sg.Graph:
    torch.manual_seed(0)
    g = sg.Graph("spike_fed")
    x = g.input("x", (6,))
    kwargs = {"spike_grad": spike_grad} if spike_grad is not None else {}
    h = g.leaky(g.linear(x, 8, name="fc1"), 0.9, graded_spikes_factor=graded, learn_graded_spikes_factor=learn_graded,
                name="lif1", **kwargs)
    o = g.leaky(g.linear(h.mem if from_mem else h, 3, name="fc2"), 0.8, name="lif2")
    g.output("spk", o)
    g.output("mem", o.mem)
    return g


@pytest.mark.parametrize("kwargs,chosen", [({}, {"fc2": "lif1"}), ({"from_mem": True}, {}),
                                           ({"spike_grad": lambda u: torch.sigmoid(u)}, {})])
def test_only_linears_reading_spikes_are_chosen(kwargs, chosen):
    assert spike_fed_linears(sg.compile(_graph(**kwargs)).graph) == chosen


def _grads(net, x):
    out = net(x)
    (out["mem"].sum() + out["spk"].sum()).backward()
    return [p.grad.clone() for p in net.parameters()]


@pytest.mark.parametrize("graded,learn", [(1.0, False), (1.0, True), (2.0, False)])
def test_compiled_net_matches_plain_linears_exactly(graded, learn):
    g = _graph(graded, learn)
    x = torch.rand(12, 4, 6, dtype=torch.float64)
    net, plain = sg.compile(g).double(), sg.compile(g).double()
    plain._spike_fed = {}
    torch.testing.assert_close(_grads(net, x), _grads(plain, x), rtol=0, atol=0)


def test_a_graded_factor_learnt_away_from_one_falls_back_to_plain_linear():
    net = sg.compile(_graph(1.0, learn_graded=True))
    with torch.no_grad():
        net.lif1.graded_spikes_factor.fill_(1.5)
    assert not net._unit_spikes("lif1")
    plain = sg.compile(_graph(1.0, learn_graded=True))
    plain.load_state_dict(net.state_dict())
    plain._spike_fed = {}
    x = torch.rand(12, 4, 6)
    torch.testing.assert_close(_grads(net, x), _grads(plain, x), rtol=0, atol=0)
