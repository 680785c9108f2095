"""``fire(mem)`` and ``mem_reset(mem)`` of the sg.nn neurons against snnTorch 1.0.0's
``SpikingNeuron`` methods, float64: spikes and resets exact, gradients 1e-12 relative."""

from __future__ import annotations

import pytest
import snntorch as snn
import torch

import snngraph as sg

N = 3
CLASSES = {
    "Leaky": dict(beta=0.8),
    "Synaptic": dict(alpha=0.7, beta=0.8),
    "Alpha": dict(alpha=0.8, beta=0.7),
    "Lapicque": dict(beta=0.8),
    "RLeaky": dict(beta=0.8, linear_features=N),
    "RSynaptic": dict(alpha=0.7, beta=0.8, linear_features=N),
}
OPTIONS = {
    "default": {},
    "tensor_threshold_graded": dict(threshold=torch.tensor([0.5, 1.0, 1.5], dtype=torch.float64),
                                    graded_spikes_factor=torch.tensor(2.5, dtype=torch.float64)),
    "learnable": dict(learn_threshold=True, learn_graded_spikes_factor=True, graded_spikes_factor=0.5),
    "fast_sigmoid": dict(spike_grad=sg.surrogate.fast_sigmoid(slope=10)),
}


def _mem() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return (torch.randn(4, N, generator=gen, dtype=torch.float64) + 1).requires_grad_(True)


def _pair(cls: str, opts: dict):
    kw = CLASSES[cls] | opts
    kw.setdefault("spike_grad", sg.surrogate.atan())  # the same float64 spec on both sides
    ours = getattr(sg.nn, cls)(**kw).double()
    if cls != "Leaky":  # snnTorch's other neurons fix the factor to 1 in their constructor: set it after
        kw = {k: v for k, v in kw.items() if "graded" not in k}
    theirs = getattr(snn, cls)(**kw).double()
    if cls != "Leaky":
        factor = ours.graded_spikes_factor
        del theirs.graded_spikes_factor
        theirs.graded_spikes_factor = torch.nn.Parameter(factor.detach().clone()) if factor.requires_grad else factor
    return ours, theirs


@pytest.mark.parametrize("opts", sorted(OPTIONS))
@pytest.mark.parametrize("cls", sorted(CLASSES))
def test_fire_and_mem_reset_equal_snntorch(cls: str, opts: str) -> None:
    ours, theirs = _pair(cls, OPTIONS[opts])
    results = []
    for neuron in (ours, theirs):
        mem = _mem()
        spk = neuron.fire(mem)
        reset = neuron.mem_reset(mem)
        assert not reset.requires_grad and reset.dtype == torch.float64
        weights = torch.linspace(-1, 2, spk.numel(), dtype=torch.float64).view_as(spk)
        params = [p for p in neuron.parameters() if p.requires_grad and p.dim() <= 1]
        grads = torch.autograd.grad((spk * weights).sum(), [mem, *params], allow_unused=True)
        results.append((spk, reset, grads))
    (spk, reset, grads), (ref_spk, ref_reset, ref_grads) = results
    assert torch.equal(spk, ref_spk) and torch.equal(reset, ref_reset)
    assert len(grads) == len(ref_grads)
    for a, b in zip(grads, ref_grads, strict=True):
        if a is None or b is None:
            assert a is None and b is None
        else:
            torch.testing.assert_close(a, b, rtol=1e-12, atol=0)


def test_fire_with_snntorchs_own_surrogate_and_the_default() -> None:
    """snnTorch's surrogate closures (float32 spikes) and each library's default atan agree in value."""
    mem = _mem().detach()
    for kw in (dict(spike_grad=snn.surrogate.fast_sigmoid()), {}):
        kw |= dict(beta=0.5, graded_spikes_factor=3.0)
        ours, theirs = sg.nn.Leaky(**kw), snn.Leaky(**kw)
        assert torch.equal(ours.fire(mem).double(), theirs.fire(mem).double())
        assert torch.equal(ours.mem_reset(mem).double(), theirs.mem_reset(mem).double())


def test_fire_matches_the_neurons_own_spikes() -> None:
    """The spike a step emits is ``fire`` of the membrane it compares (reset_delay: before reset)."""
    lif = sg.nn.Leaky(beta=0.9, threshold=0.7, graded_spikes_factor=2.0, reset_delay=True)
    x = torch.rand(6, N, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2
    mem = torch.zeros(N, dtype=torch.float64)
    for t in range(6):
        prev = mem
        spk, mem = lif(x[t], mem)
        # membrane before this step's reset: beta * prev + x - reset(prev) * threshold
        pre = 0.9 * prev + x[t] - lif.mem_reset(prev) * 0.7
        assert torch.equal(spk, lif.fire(pre))
    ifn = sg.nn.IntegrateFire(threshold=0.5)
    assert ifn.fire(torch.tensor([0.4, 0.6])).tolist() == [0.0, 1.0]
    assert not hasattr(sg.nn.LeakyIntegrator(beta=0.5), "fire")  # it does not spike
