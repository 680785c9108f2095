"""The fused Synaptic scan equals the ``synaptic_step`` loop: forward bit for bit (spikes,
synaptic current, membrane) and gradients of the input, initial state, alpha, beta, threshold
and graded factor to 1e-12 (float64), for reset subtract/zero/none, scalar and per-neuron
parameters, and losses on all outputs, on the spikes only and on the membrane only."""

import itertools

import pytest
import torch

from snngraph.ir.surrogate import Surrogate
from snngraph.runtimes.torch.kernels import synaptic_step
from snngraph.runtimes.torch.scan_synaptic import SynapticScanConfig, synaptic_scan

ATAN = Surrogate("atan", (("alpha", 2.0),))
T, B, N = 9, 3, 5


@pytest.mark.parametrize("reset,per_neuron,loss_on",
                         list(itertools.product(["subtract", "zero", "none"], [False, True], ["all", "spk", "mem"])))
def test_synaptic_scan_matches_step_loop(reset, per_neuron, loss_on):
    torch.manual_seed(0)
    f64 = torch.float64
    x = torch.rand(T, B, N, dtype=f64).requires_grad_()
    syn0, mem0 = torch.rand(B, N, dtype=f64).requires_grad_(), torch.rand(B, N, dtype=f64).requires_grad_()
    alpha = (torch.rand(N) if per_neuron else torch.tensor(0.6)).double().requires_grad_()
    beta = (torch.rand(N) if per_neuron else torch.tensor(0.8)).double().requires_grad_()
    thr = (torch.rand(N) + 0.5 if per_neuron else torch.tensor(1.0)).double().requires_grad_()
    graded = torch.tensor(1.5, dtype=f64).requires_grad_()
    spk, syn, mem = synaptic_scan(x, syn0, mem0, alpha, beta, thr, graded, SynapticScanConfig(reset, ATAN))
    s, m, ref = syn0, mem0, ([], [], [])
    for t in range(T):
        out = synaptic_step(x[t], s, m, alpha=alpha, beta=beta, threshold=thr, spike_grad=ATAN,
                            reset_mechanism=reset, graded_spikes_factor=graded)
        _, s, m = out
        for seq, v in zip(ref, out, strict=True):
            seq.append(v)
    ref_spk, ref_syn, ref_mem = (torch.stack(seq) for seq in ref)
    assert torch.equal(spk, ref_spk) and torch.equal(syn, ref_syn) and torch.equal(mem, ref_mem)
    assert 0 < ref_spk.count_nonzero() < ref_spk.numel()
    w = [torch.rand_like(spk) for _ in range(3)]

    def loss(a, b, c):
        parts = {"spk": (a * w[0]).sum(), "syn": (b * w[1]).sum(), "mem": (c * w[2]).sum()}
        return sum(parts.values()) if loss_on == "all" else parts[loss_on]

    leaves = [x, syn0, mem0, alpha, beta, thr, graded]
    got = torch.autograd.grad(loss(spk, syn, mem), leaves, allow_unused=True)
    want = torch.autograd.grad(loss(ref_spk, ref_syn, ref_mem), leaves, allow_unused=True)
    names = ["x", "syn0", "mem0", "alpha", "beta", "threshold", "graded"]
    for name, a, b in zip(names, got, want, strict=True):
        a = torch.zeros_like(leaves[names.index(name)]) if a is None else a
        b = torch.zeros_like(a) if b is None else b
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=lambda m, n=name: f"{n}: {m}")
