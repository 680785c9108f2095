"""functional.SpikeTime, functional.StateQuant and backprop.RTRL against snnTorch 1.0.0 directly."""

from __future__ import annotations

import warnings

import pytest
import snntorch as snn
import snntorch.functional as SF
import torch
from snntorch.functional import quant as snn_quant
from snntorch.functional.loss import SpikeTime as RefSpikeTime
from torch import nn

import snngraph as sg

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from snntorch import backprop as snn_backprop

T, B, N = 8, 3, 4


def _spikes(*shape: int, seed: int, p: float = 0.3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g, dtype=torch.float64) < p).double()


def _both(module_kw: dict, spk: torch.Tensor, targets: torch.Tensor):
    """(ours, snnTorch's) spike times, targets and the gradient of one weighted sum of the times."""
    out = []
    for cls in (sg.functional.SpikeTime, RefSpikeTime):
        x = spk.clone().requires_grad_(True)
        times, target = cls(**module_kw)(x, targets.clone())
        weight = torch.arange(times.numel(), dtype=torch.float64).reshape(times.shape) - 3
        (grad,) = torch.autograd.grad((times * weight).sum(), x)
        out.append((times.detach(), target, grad))
    return out


@pytest.mark.parametrize("tolerance", [0, 2])
def test_spike_times_of_given_times_match_snntorch(tolerance):
    spk = _spikes(T, B, N, seed=1)
    spk[:, 0, 0] = 0  # an output that never fires: T - 1
    targets = torch.tensor([[0.0, 3.0, -1.0, 5.0]] * B, dtype=torch.float64)  # -1: the last step
    ours, theirs = _both({"target_is_time": True, "tolerance": tolerance}, spk, targets)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b.to(a.dtype), rtol=0, atol=0)
    assert ours[0][0, 0] == T - 1 and ours[1][0, 2] == T - 1


def test_spike_times_of_labels_match_snntorch_for_nonnegative_targets():
    spk = _spikes(T, B, N, seed=2)
    labels = torch.tensor([0, 3, 1])
    ours, theirs = _both({"on_target": 1, "off_target": 6}, spk, labels)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b.to(a.dtype), rtol=0, atol=0)


def test_off_target_minus_one_is_the_last_step():
    times, target = sg.functional.SpikeTime()(_spikes(T, B, N, seed=3), torch.tensor([0, 1, 2]))
    assert set(target.unique().tolist()) == {0.0, T - 1.0} and times.shape == (B, N)


def test_multi_spike_matches_snntorch_on_a_single_output():
    """snnTorch removes each found spike by zeroing its whole step for every output; with one output
    (B = N = 1) that is the output's own spike, which is what snngraph removes."""
    spk = _spikes(T, 1, 1, seed=4, p=0.5)
    targets = torch.tensor([[[1.0]], [[4.0]], [[-1.0]]], dtype=torch.float64)
    ours, theirs = _both({"target_is_time": True, "multi_spike": True}, spk, targets)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b.to(a.dtype), rtol=0, atol=0)


def test_spike_time_leaves_targets_alone_and_checks_arguments():
    targets = torch.full((B, N), -1.0, dtype=torch.float64)
    sg.functional.SpikeTime(target_is_time=True)(_spikes(T, B, N, seed=5), targets)
    assert (targets == -1).all()  # snnTorch rewrites it in place
    with pytest.raises(ValueError):
        sg.functional.SpikeTime(multi_spike=True, on_target=(0, 1), off_target=(2,))


def test_state_quant_function_matches_snntorch():
    for kwargs in ({"num_bits": 3}, {"num_bits": 4, "uniform": False}, {"num_bits": 5, "thr_centered": False,
                                                                          "uniform": False}):
        levels = sg.functional.state_quant(**kwargs).levels.double()
        x = torch.cat([torch.linspace(-2, 2, 301, dtype=torch.float64), levels,  # values, levels, midpoints
                       (levels[1:] + levels[:-1]) / 2]).reshape(-1, 1).requires_grad_(True)
        ours = sg.functional.StateQuant.apply(x, levels)
        ref = snn_quant.StateQuant.apply(x, levels)
        assert torch.equal(ours, ref) and ours.dtype == x.dtype
        (grad,) = torch.autograd.grad((ours * x.detach()).sum(), x)
        assert torch.equal(grad, x.detach())  # straight through


def _nets():
    torch.manual_seed(0)
    theirs = nn.Sequential(nn.Linear(6, 8), snn.Leaky(beta=0.8, init_hidden=True), nn.Linear(8, 3),
                           snn.Leaky(beta=0.8, init_hidden=True, output=True))
    ours = nn.Sequential(nn.Linear(6, 8), sg.nn.Leaky(beta=0.8, init_hidden=True), nn.Linear(8, 3),
                         sg.nn.Leaky(beta=0.8, init_hidden=True, output=True))
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


def test_rtrl_is_snntorchs_one_step_tbptt():
    theirs, ours = _nets()
    start = [p.detach().clone() for p in ours.parameters()]
    gen = torch.Generator().manual_seed(1)
    loader = [(torch.rand(2, 6, generator=gen) * 2, torch.randint(0, 3, (2,), generator=gen)) for _ in range(3)]
    a = snn_backprop.RTRL(theirs, loader, torch.optim.SGD(theirs.parameters(), lr=0.5), SF.ce_rate_loss(),
                          num_steps=5, time_var=False)
    b = sg.backprop.RTRL(ours, loader, torch.optim.SGD(ours.parameters(), lr=0.5),
                         sg.functional.ce_rate_loss(), num_steps=5, time_var=False)
    torch.testing.assert_close(b, a.detach().reshape(()), rtol=1e-6, atol=0)
    for p, q in zip(theirs.parameters(), ours.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-6, atol=1e-7)
    assert any(not torch.equal(q, s) for q, s in zip(ours.parameters(), start, strict=True))


def test_rtrl_runs_time_varying_data_and_equals_tbptt_k1():
    _, ours = _nets()
    twin = _nets()[1]
    gen = torch.Generator().manual_seed(2)
    loader = [(torch.rand(5, 2, 6, generator=gen) * 2, torch.randint(0, 3, (2,), generator=gen))]
    a = sg.backprop.RTRL(ours, loader, torch.optim.SGD(ours.parameters(), lr=0.5), sg.functional.ce_rate_loss())
    b = sg.backprop.TBPTT(twin, loader, torch.optim.SGD(twin.parameters(), lr=0.5), sg.functional.ce_rate_loss(),
                          K=1)
    assert torch.equal(a, b)
    for p, q in zip(ours.parameters(), twin.parameters(), strict=True):
        assert torch.equal(p, q)
