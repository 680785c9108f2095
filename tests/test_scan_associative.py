"""The fused ``associative_leaky`` scan (``runtimes/torch/scan_associative.py``) equals the derived step loop in
float64: outputs and states bit for bit, gradients of the input, the four projections, threshold and graded
factor and the initial state to 1e-12; ``sg.nn.AssociativeLeaky`` runs it (a plain-callable spike function keeps
the loop); the op ``snngraph::decay_scan`` passes ``opcheck`` and runs under ``torch.func``. (The registry tests
cover the compiled graph; ``test_cuda_scans.py`` the device and ``torch.compile``.)"""

import pytest
import torch

import snngraph as sg
from snngraph.ir.model import get_model
from snngraph.runtimes.torch import scan_associative
from snngraph.runtimes.torch.cell import projected
from snngraph.runtimes.torch.sequence import step_over_time

T, B, D = 11, 3, 6


def _neuron(use_q: bool) -> sg.nn.AssociativeLeaky:
    torch.manual_seed(0)
    neuron = sg.nn.AssociativeLeaky(D, 3, 4, 12, use_q_projection=use_q).double()
    neuron.threshold = torch.nn.Parameter(torch.tensor(0.4, dtype=torch.float64))
    neuron.graded_spikes_factor = torch.nn.Parameter(torch.tensor(1.5, dtype=torch.float64))
    return neuron


@pytest.mark.parametrize("use_q", [True, False])
def test_scan_equals_the_derived_step_loop(use_q):
    neuron = _neuron(use_q)
    x = (torch.randn(T, B, D, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 1.5)
    s0 = (torch.randn(B, 3, 4, dtype=torch.float64) * 0.3).requires_grad_()
    results = []
    for fused in (True, False):
        xs = x.clone().requires_grad_()
        kwargs = neuron._kernel_kwargs()
        if fused:
            z, kw = projected(xs, kwargs)
            out, states = scan_associative.associative_scan(z, s0, kw)
        else:
            ports = step_over_time(get_model("associative_leaky"), xs, (s0,), kwargs)
            out, states = ports["spk"], ports["S"]
        weights = torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view_as(out)
        loss = (out * weights).sum() + states.square().sum()
        leaves = [xs, s0, *neuron.parameters()]
        results.append((out.detach(), states.detach(), torch.autograd.grad(loss, leaves)))
    (out_a, s_a, g_a), (out_b, s_b, g_b) = results
    assert torch.equal(out_a, out_b) and torch.equal(s_a, s_b)
    assert out_a.abs().sum() > 0  # some spikes
    for a, b in zip(g_a, g_b, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_the_module_runs_the_scan_and_a_callable_spike_function_the_loop(monkeypatch):
    calls = []
    original = scan_associative.associative_scan
    monkeypatch.setattr(scan_associative, "associative_scan", lambda *a: calls.append(1) or original(*a))
    monkeypatch.setattr("snngraph.nn.associative_leaky.associative_scan", scan_associative.associative_scan)
    x = torch.randn(T, B, D)
    torch.manual_seed(0)
    fused = sg.nn.AssociativeLeaky(D, 3, 4, 12)
    want = fused(x)
    assert calls == [1]
    plain = sg.nn.AssociativeLeaky(D, 3, 4, 12)
    plain.load_state_dict(fused.state_dict())
    plain.spike_grad = lambda v: sg.surrogate.atan()(v)  # a plain callable: the step loop
    assert torch.equal(plain(x), want) and calls == [1]


def _decay_inputs():
    gen = torch.Generator().manual_seed(2)
    s0 = torch.randn(B, 3, 4, dtype=torch.float64, generator=gen).requires_grad_()
    decay = torch.rand(T, B, 1, 4, dtype=torch.float64, generator=gen).requires_grad_()
    u = torch.randn(T, B, 3, 4, dtype=torch.float64, generator=gen).requires_grad_()
    return s0, decay, u


def test_decay_scan_op_passes_opcheck_and_gradcheck():
    s0, decay, u = _decay_inputs()
    torch.library.opcheck(torch.ops.snngraph.decay_scan.default, (s0, decay, u),
                          test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))
    assert torch.autograd.gradcheck(scan_associative.decay_scan, (s0, decay, u))


def test_decay_scan_under_torch_func_equals_autograd():
    s0, decay, u = _decay_inputs()
    weights = torch.randn(u.shape, dtype=torch.float64)

    def loss(s0, decay, u):
        return (scan_associative.decay_scan(s0, decay, u) * weights).sum()

    want = torch.autograd.grad(loss(s0, decay, u), [s0, decay, u])
    got = torch.func.grad(loss, argnums=(0, 1, 2))(s0.detach(), decay.detach(), u.detach())
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
