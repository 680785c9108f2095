"""The fused RLeaky scan equals the ``rleaky_step`` loop: forward bit for bit, gradients of the
input, initial spikes and membrane, beta, threshold, graded factor, recurrent weight/bias or V
to 1e-12 (float64). Covers reset subtract/zero/none x dense/one-to-one x scalar/per-neuron."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from snngraph.ir.surrogate import Surrogate
from snngraph.runtimes.torch.kernels import rleaky_step
from snngraph.runtimes.torch.scan_recurrent import RecurrentScanConfig, recurrent_leaky_scan

ATAN = Surrogate("atan", (("alpha", 2.0),))
T, B, N = 8, 3, 5


CASES = [(*case, 1.5, "all") for case in itertools.product(["subtract", "zero", "none"], [True, False], [False, True])]
UNIT = [(reset, True, True, 1.0, loss) for reset in ("subtract", "zero") for loss in ("all", "spk")]


@pytest.mark.parametrize("reset,dense,per_neuron,graded,loss_on", CASES + UNIT)
def test_recurrent_scan_matches_step_loop(reset, dense, per_neuron, graded, loss_on):
    torch.manual_seed(0)
    f64 = torch.float64
    x = (torch.rand(T, B, N, dtype=f64) * 1.2).requires_grad_()
    spk0 = (torch.rand(B, N, dtype=f64) < 0.3).to(f64).requires_grad_()
    mem0 = torch.rand(B, N, dtype=f64).requires_grad_()
    beta = (torch.rand(N) if per_neuron else torch.tensor(0.8)).double().requires_grad_()
    thr = (torch.rand(N) + 0.5 if per_neuron else torch.tensor(1.0)).double().requires_grad_()
    graded = torch.tensor(graded, dtype=f64).requires_grad_(loss_on == "all")
    weight = (torch.randn(N, N, dtype=f64) * 0.5 if dense else torch.rand(N, dtype=f64)).requires_grad_()
    bias = (torch.randn(N, dtype=f64) * 0.1).requires_grad_() if dense else None
    spk, mem = recurrent_leaky_scan(x, spk0, mem0, beta, thr, graded, weight, bias,
                                    RecurrentScanConfig(reset, ATAN, dense))

    def recurrent(s):
        return F.linear(s, weight, bias) if dense else weight * s

    s, m, spks, mems = spk0, mem0, [], []
    for t in range(T):
        s, m = rleaky_step(x[t], s, m, recurrent=recurrent, beta=beta, threshold=thr, spike_grad=ATAN,
                           reset_mechanism=reset, graded_spikes_factor=graded)
        spks.append(s)
        mems.append(m)
    ref_spk, ref_mem = torch.stack(spks), torch.stack(mems)
    assert torch.equal(spk, ref_spk) and torch.equal(mem, ref_mem)
    assert 0 < ref_spk.count_nonzero() < ref_spk.numel()
    w1, w2 = torch.rand_like(spk), torch.rand_like(mem) * (loss_on == "all")
    learnt_graded = [graded] if graded.requires_grad else []
    leaves = [x, spk0, mem0, beta, thr, *learnt_graded, weight] + ([bias] if dense else [])
    got = torch.autograd.grad((spk * w1).sum() + (mem * w2).sum(), leaves)
    want = torch.autograd.grad((ref_spk * w1).sum() + (ref_mem * w2).sum(), leaves)
    names = ["x", "spk0", "mem0", "beta", "threshold", *(["graded"] if learnt_graded else []), "weight", "bias"]
    for name, a, b in zip(names, got, want, strict=False):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=lambda m, n=name: f"{n}: {m}")
