"""The scratch-input scan (membrane written into the input current's buffer, adjoint written
over the membrane) computes exactly what the ordinary scan computes, and the compiled module
only uses it where no one else can see the buffer."""

import pytest
import torch

import snngraph as sg
from snngraph.runtimes.torch.lower import scratch_inputs
from snngraph.runtimes.torch.scan import ScanConfig, leaky_scan
from snngraph.runtimes.torch.scan_recurrent import RecurrentScanConfig, recurrent_leaky_scan
from snngraph.runtimes.torch.scan_synaptic import SynapticScanConfig, synaptic_scan
from tests.test_scan import CASES, _inputs


def _run(reset, delay, per_neuron, surrogate, scratch):
    leaf, mem0, beta, thr, graded = _inputs(per_neuron)
    x = leaf * 1.0  # a fresh non-leaf current, as a linear layer would produce
    spk, mem = leaky_scan(x, mem0, beta, thr, graded, ScanConfig(reset, delay, surrogate, True, scratch))
    weights = torch.rand_like(spk)
    grads = torch.autograd.grad((spk * weights).sum(), [leaf, mem0, beta, thr, graded])
    return spk, mem, grads, x


@pytest.mark.parametrize("reset,delay,per_neuron,surrogate", CASES)
def test_scratch_scan_equals_ordinary_scan(reset, delay, per_neuron, surrogate):
    spk, _, grads, _ = _run(reset, delay, per_neuron, surrogate, scratch=False)
    spk_s, mem_s, grads_s, _ = _run(reset, delay, per_neuron, surrogate, scratch=True)
    assert torch.equal(spk, spk_s)
    assert mem_s.numel() == 0  # the membrane is not an output of a scratch scan
    for want, got in zip(grads, grads_s, strict=True):
        assert torch.equal(want, got)


def test_scratch_scan_reuses_the_input_buffer_forward_and_backward():
    leaf, mem0, beta, thr, graded = _inputs(False)
    cfg = ScanConfig("subtract", True, CASES[0][3])
    _, mems = leaky_scan(leaf.detach(), mem0.detach(), beta.detach(), thr.detach(), graded.detach(), cfg)
    x = leaf * 1.0
    spk, _ = leaky_scan(x, mem0, beta.detach(), thr.detach(), graded.detach(), ScanConfig(**{**cfg.__dict__,
                                                                                            "scratch_input": True}))
    assert torch.equal(x.detach(), mems)  # the membrane lives in the current's buffer
    (g_x,) = torch.autograd.grad(spk.sum(), [x])
    assert g_x.data_ptr() == x.data_ptr()  # and the adjoint overwrote it in the backward


def test_scratch_scan_keeps_membranes_when_the_graph_is_retained():
    leaf, mem0, beta, thr, graded = _inputs(True)
    x = leaf * 1.0
    spk, _ = leaky_scan(x, mem0, beta, thr, graded, ScanConfig("zero", True, CASES[0][3], True, True))
    first = torch.autograd.grad(spk.sum(), [leaf, thr], retain_graph=True)
    second = torch.autograd.grad(spk.sum(), [leaf, thr])
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


def _synaptic(reset: str, learn: bool, scratch: bool):
    torch.manual_seed(3)
    f64 = torch.float64
    leaf = torch.rand(9, 3, 5, dtype=f64).requires_grad_()
    syn0, mem0 = torch.rand(3, 5, dtype=f64).requires_grad_(), torch.rand(3, 5, dtype=f64).requires_grad_()
    alpha, beta = torch.rand(5, dtype=f64).requires_grad_(learn), torch.rand(5, dtype=f64).requires_grad_(learn)
    thr = (torch.rand(5, dtype=f64) + 0.5).requires_grad_(learn)
    graded = torch.tensor(1.5, dtype=f64).requires_grad_(learn)
    x = leaf * 1.0
    spk, syn, mem = synaptic_scan(x, syn0, mem0, alpha, beta, thr, graded,
                                  SynapticScanConfig(reset, CASES[0][3], scratch))
    wrt = [leaf, syn0, mem0] + ([alpha, beta, thr, graded] if learn else [])
    return spk, syn, torch.autograd.grad((spk * torch.rand_like(spk)).sum(), wrt)


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("learn", [False, True])
def test_scratch_synaptic_scan_equals_ordinary_scan(reset, learn):
    spk, _, grads = _synaptic(reset, learn, scratch=False)
    spk_s, syn_s, grads_s = _synaptic(reset, learn, scratch=True)
    assert torch.equal(spk, spk_s) and syn_s.numel() == 0
    for want, got in zip(grads, grads_s, strict=True):
        assert torch.equal(want, got)


def _recurrent(reset: str, dense: bool, learn: bool, scratch: bool):
    torch.manual_seed(5)
    f64 = torch.float64
    leaf = (torch.rand(9, 3, 5, dtype=f64) * 1.2).requires_grad_()
    spk0, mem0 = (torch.rand(3, 5, dtype=f64) < 0.3).to(f64), torch.rand(3, 5, dtype=f64).requires_grad_()
    beta, thr = torch.rand(5, dtype=f64).requires_grad_(learn), (torch.rand(5, dtype=f64) + 0.5).requires_grad_(learn)
    graded = torch.tensor(1.0, dtype=f64)
    weight = (torch.randn(5, 5, dtype=f64) * 0.5 if dense else torch.rand(5, dtype=f64)).requires_grad_()
    bias = (torch.randn(5, dtype=f64) * 0.1).requires_grad_() if dense else None
    x = leaf * 1.0
    spk, mem = recurrent_leaky_scan(x, spk0, mem0, beta, thr, graded, weight, bias,
                                    RecurrentScanConfig(reset, CASES[0][3], dense, scratch))
    wrt = [leaf, mem0, weight] + ([bias] if dense else []) + ([beta, thr] if learn else [])
    return spk, mem, torch.autograd.grad((spk * torch.rand_like(spk)).sum(), wrt)


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize("learn", [False, True])
def test_scratch_recurrent_scan_equals_ordinary_scan(reset, dense, learn):
    spk, _, grads = _recurrent(reset, dense, learn, scratch=False)
    spk_s, mem_s, grads_s = _recurrent(reset, dense, learn, scratch=True)
    assert torch.equal(spk, spk_s) and mem_s.numel() == 0
    for want, got in zip(grads, grads_s, strict=True):
        assert torch.equal(want, got)


def _graph(variant: str) -> sg.Graph:
    torch.manual_seed(0)
    g = sg.Graph(variant)
    x = g.input("x", (6,))
    cur = g.relu(x, name="act") if variant == "relu" else g.linear(x, 5, name="fc")
    if variant == "pool":
        cur = g.max_pool1d(g.conv1d(g.input("y", (2, 6)), 3, 3, name="conv"), 2, name="pool")
    if variant.startswith("syn"):
        lif = g.synaptic(cur, 0.7, 0.9, name="lif")
    elif variant == "rleaky":
        lif = g.rleaky(cur, 0.9, name="lif")
    else:
        lif = g.leaky(cur, 0.9, name="lif")
    g.output("spk", lif)
    if variant == "mem_out":
        g.output("mem", lif.mem)
    if variant == "syn_current_out":
        g.output("syn", lif.syn)
    if variant == "current_out":
        g.output("cur", cur)
    if variant == "two_readers":
        g.output("other", g.leaky(cur, 0.8, name="lif2"))
    return g


@pytest.mark.parametrize("variant,chosen", [("plain", {"lif"}), ("mem_out", set()), ("current_out", set()),
                                            ("two_readers", set()), ("relu", set()), ("pool", {"lif"}),
                                            ("syn", {"lif"}), ("syn_current_out", set()),
                                            ("rleaky", {"lif"})])
def test_scratch_only_where_the_buffer_is_private(variant, chosen):
    net = sg.compile(_graph(variant))
    assert set(scratch_inputs(net.graph)) == chosen
    x = {"x": torch.rand(7, 3, 6)} if variant != "pool" else {"x": torch.rand(7, 3, 6), "y": torch.rand(7, 3, 2, 6)}
    unfused = sg.compile(_graph(variant), passes=[sg.passes.eliminate_dead_nodes, sg.passes.unroll_time,
                                                  sg.passes.insert_surrogates])
    unfused.load_state_dict(net.state_dict())
    got, want = net(**x), unfused(**x)
    assert got.keys() == want.keys()
    for key in got:
        assert torch.equal(got[key], want[key]), key


@pytest.mark.parametrize("variant", ["plain", "syn", "rleaky"])
def test_scratch_training_step_matches_unfused_gradients(variant):
    g = _graph(variant)
    net = sg.compile(g).double()
    unfused = sg.compile(g, passes=[sg.passes.unroll_time, sg.passes.insert_surrogates]).double()
    unfused.load_state_dict(net.state_dict())
    x = torch.rand(9, 4, 6, dtype=torch.float64)
    for model in (net, unfused):
        model(x)["spk"].pow(2).sum().backward()
    for (name, a), (_, b) in zip(net.named_parameters(), unfused.named_parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-12, msg=name)


@pytest.mark.parametrize("kind", ["synaptic", "rleaky"])
def test_scratch_state_survives_a_retained_backward(kind):
    torch.manual_seed(2)
    f64 = torch.float64
    leaf = (torch.rand(7, 2, 4, dtype=f64) * 1.5).requires_grad_()
    x = leaf * 1.0
    zeros, half = torch.zeros(2, 4, dtype=f64), torch.tensor(0.5, dtype=f64)
    thr, one = torch.tensor(1.0, dtype=f64), torch.tensor(1.0, dtype=f64)
    if kind == "synaptic":
        spk = synaptic_scan(x, zeros, zeros, half, half, thr, one, SynapticScanConfig("subtract", CASES[0][3], True))[0]
    else:
        weight = torch.randn(4, 4, dtype=f64, requires_grad=True)
        spk = recurrent_leaky_scan(x, zeros, zeros, half, thr, one, weight, None,
                                   RecurrentScanConfig("subtract", CASES[0][3], True, True))[0]
    first = torch.autograd.grad(spk.sum(), [leaf], retain_graph=True)
    second = torch.autograd.grad(spk.sum(), [leaf])
    assert torch.equal(first[0], second[0])
