"""The fused Leaky/IF/LI scan kernel equals the step kernel loop, forward bit for bit and
gradients to 1e-12 (float64).

Covers: reset subtract/zero/none x reset_delay True/False x scalar/per-neuron beta and
threshold, graded spikes, learnable beta/threshold/graded factor, initial membrane, LI readout,
and several surrogates.
"""

import itertools

import pytest
import torch

from snngraph.ir.surrogate import Surrogate
from snngraph.runtimes.torch.kernels import leaky_integrator_step, leaky_step
from snngraph.runtimes.torch.scan import ScanConfig, leaky_scan

ATAN = Surrogate("atan", (("alpha", 2.0),))
FAST = Surrogate("fast_sigmoid", (("slope", 25.0),))
CASES = list(itertools.product(["subtract", "zero", "none"], [True, False], [False, True], [ATAN, FAST]))


def _inputs(per_neuron: bool, steps=9, batch=3, n=6):
    torch.manual_seed(1)
    x = (torch.rand(steps, batch, n, dtype=torch.float64) * 1.6).requires_grad_()
    mem0 = torch.rand(batch, n, dtype=torch.float64).requires_grad_()
    beta = (torch.rand(n) if per_neuron else torch.tensor(0.8)).double().requires_grad_()
    thr = (torch.rand(n) + 0.5 if per_neuron else torch.tensor(1.0)).double().requires_grad_()
    graded = torch.tensor(1.5, dtype=torch.float64).requires_grad_()
    return x, mem0, beta, thr, graded


@pytest.mark.parametrize("reset,delay,per_neuron,surrogate", CASES)
def test_leaky_scan_matches_step_loop(reset, delay, per_neuron, surrogate):
    x, mem0, beta, thr, graded = _inputs(per_neuron)
    spk, mem = leaky_scan(x, mem0, beta, thr, graded, ScanConfig(reset, delay, surrogate))
    spks, mems, m = [], [], mem0
    for t in range(x.shape[0]):
        s, m = leaky_step(x[t], m, beta=beta, threshold=thr, spike_grad=surrogate, reset_mechanism=reset,
                          reset_delay=delay, graded_spikes_factor=graded)
        spks.append(s)
        mems.append(m)
    ref_spk, ref_mem = torch.stack(spks), torch.stack(mems)
    assert torch.equal(spk, ref_spk) and torch.equal(mem, ref_mem)
    assert 0 < ref_spk.count_nonzero() < ref_spk.numel()
    w1, w2 = torch.rand_like(spk), torch.rand_like(mem)
    leaves = [x, mem0, beta, thr, graded]
    got = torch.autograd.grad((spk * w1).sum() + (mem * w2).sum(), leaves)
    want = torch.autograd.grad((ref_spk * w1).sum() + (ref_mem * w2).sum(), leaves)
    for name, a, b in zip(["x", "mem0", "beta", "threshold", "graded"], got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=f"gradient of {name}")


@pytest.mark.parametrize("per_neuron", [False, True])
def test_leaky_integrator_scan(per_neuron):
    x, mem0, beta, _, _ = _inputs(per_neuron)
    one = torch.ones((), dtype=torch.float64)
    _, mem = leaky_scan(x, mem0, beta, one, one, ScanConfig(spiking=False))
    mems, m = [], mem0
    for t in range(x.shape[0]):
        _, m = leaky_integrator_step(x[t], m, beta=beta)
        mems.append(m)
    ref = torch.stack(mems)
    assert torch.equal(mem, ref)
    w = torch.rand_like(mem)
    got = torch.autograd.grad((mem * w).sum(), [x, mem0, beta])
    want = torch.autograd.grad((ref * w).sum(), [x, mem0, beta])
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_beta_outside_unit_interval_gets_no_gradient_like_clamp():
    x, mem0, _, thr, graded = _inputs(False)
    beta = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    spk, mem = leaky_scan(x, mem0, beta, thr, graded, ScanConfig("subtract", True, ATAN))
    (grad,) = torch.autograd.grad(mem.sum() + spk.sum(), [beta])
    assert grad.item() == 0.0


def test_scan_saves_only_the_membrane():
    """Spikes of a delayed reset are H(U - theta) of the saved membrane: nothing else of size T*B*N is kept."""
    x, mem0, beta, thr, graded = _inputs(False)
    spk, mem = leaky_scan(x, mem0, beta, thr, graded, ScanConfig("subtract", True, ATAN))
    saved = mem.grad_fn.saved_tensors
    assert [t.shape == x.shape for t in saved].count(True) == 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("per_neuron", [False, True])
def test_in_place_forward_is_bit_identical_at_vector_sizes(dtype, per_neuron):
    """The in-place subtract path (mul, add, fused reset) rounds exactly like the step kernel,
    on sizes that exercise SIMD bodies and tails (no fused multiply-add sneaks in)."""
    torch.manual_seed(7)
    steps, batch, n = 30, 64, 257
    x = torch.randn(steps, batch, n, dtype=dtype) * 0.7 + 0.2
    mem0 = torch.randn(batch, n, dtype=dtype)
    beta = torch.rand(n, dtype=dtype) if per_neuron else torch.tensor(0.93, dtype=dtype)
    thr, one = torch.tensor(1.0, dtype=dtype), torch.tensor(1.0, dtype=dtype)
    with torch.no_grad():
        spk, mem = leaky_scan(x, mem0, beta, thr, one, ScanConfig("subtract", True, ATAN))
        m, mems = mem0, []
        for t in range(steps):
            _, m = leaky_step(x[t], m, beta=beta, threshold=thr, spike_grad=ATAN)
            mems.append(m)
    assert torch.equal(torch.stack(mems), mem)
