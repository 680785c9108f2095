"""``snngraph.nn`` against snnTorch 1.0.0, float64, 20 steps of random input that spikes often.

For each case both modules are built with the same arguments, snnTorch's state dict is loaded
into ours (so recurrent weights match and state-dict keys must agree), and both run step by
step. Spikes must be equal, states within 1e-9 and the gradients of a random loss over every
output with respect to the inputs and every parameter (weights, beta, threshold, ...) within
1e-9. Both sides use the same ``sg.surrogate`` spec, which keeps snnTorch's arithmetic in float64
(its own surrogates return float32 spikes; they are checked against ours in test_surrogate.py
and, through a neuron, in ``test_snntorch_default_and_own_surrogates``).

Covered (neuron: options):

* Leaky: default; reset zero; reset none; reset_delay=False with subtract and with zero;
  per-neuron tensor beta and threshold; learn_beta + learn_threshold (per-neuron); graded spikes;
  learnable graded spikes with reset_delay=False; surrogates fast_sigmoid, sigmoid, triangular,
  spike_rate_escape, SFS, straight-through, heaviside, custom; surrogate_disable.
* Synaptic: default; zero; none; reset_delay=False subtract and zero; per-neuron alpha, beta,
  threshold; learn_alpha + learn_beta + learn_threshold.
* Alpha: default (zero reset); subtract; none; per-neuron alpha and beta; learn_beta +
  learn_threshold; learn_alpha (snnTorch patched: its own learn_alpha raises).
* Lapicque: via beta; via R and C; beta and R; beta and C; time_step=0.5; zero; none;
  learn_threshold; per-neuron threshold; learn_beta.
* RLeaky: all_to_all Linear with bias; learn_recurrent=False; one-to-one scalar V; one-to-one
  per-neuron learnable V; zero; none; reset_delay=False subtract and zero; learn_beta +
  learn_threshold; Conv2d recurrence.
* RSynaptic: all_to_all Linear with bias; one-to-one V; zero; none; learn_alpha + learn_beta;
  Conv2d recurrence (reset_delay=False is broken in snnTorch: see test_nn_modules.py).
* IntegrateFire vs snnTorch Leaky(beta=1): default; zero; reset_delay=False; graded spikes.
* LeakyIntegrator vs the membrane of snnTorch Leaky(reset_mechanism="none").
* init_hidden=True inside nn.Sequential, output False and True, for all six snnTorch neurons.
"""

from __future__ import annotations

import pytest
import snntorch as snn
import torch
from torch import nn

import snngraph as sg

ATAN = sg.surrogate.atan()
T, N = 20, 6
STATES = {
    "Leaky": ("mem",),
    "IntegrateFire": ("mem",),
    "Synaptic": ("syn", "mem"),
    "Alpha": ("syn_exc", "syn_inh", "mem"),
    "Lapicque": ("mem",),
    "RLeaky": ("spk", "mem"),
    "RSynaptic": ("spk", "syn", "mem"),
}


@pytest.fixture(autouse=True)
def _float64_and_clean_snntorch():
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    snn.SpikingNeuron.instances.clear()
    yield
    torch.set_default_dtype(default)
    snn.SpikingNeuron.instances.clear()


def vec(*values):
    return torch.tensor(values, dtype=torch.float64)


def _fresh(kwargs):
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}


def _random(shape, seed, scale=1.0, shift=0.0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=torch.float64) * scale + shift


def _dyadic(shape, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(-8, 9, shape, generator=gen).to(torch.float64) / 4


def run(module, xs, state_names, hidden=False):
    """Step ``module`` over ``xs``; return the per-step results as tuples of tensors."""
    outputs = ("spk", *(n for n in state_names if n != "spk"))
    state = dict.fromkeys(state_names)
    trace = []
    for x in xs:
        result = module(x) if hidden else module(x, *state.values())
        result = result if isinstance(result, tuple) else (result,)
        trace.append(result)
        state.update((k, v) for k, v in zip(outputs, result, strict=False) if k in state)
    return trace


def assert_same_run(theirs, ours, xs, state_names, hidden=False, params_of=None):
    """Run both; compare spikes, states and the gradients of one random loss."""
    xa, xb = xs.clone().requires_grad_(True), xs.clone().requires_grad_(True)
    ta, tb = run(theirs, xa, state_names, hidden), run(ours, xb, state_names, hidden)
    losses = [0, 0]
    for t, (ra, rb) in enumerate(zip(ta, tb, strict=True)):
        assert len(ra) == len(rb)
        assert torch.equal(ra[0].to(rb[0].dtype), rb[0]), f"spikes differ at step {t}"
        for a, b in zip(ra[1:], rb[1:], strict=True):
            torch.testing.assert_close(b, a, rtol=0, atol=1e-9)
        for i, (a, b) in enumerate(zip(ra, rb, strict=True)):
            w = _dyadic(a.shape, seed=1000 * t + i)
            losses[0], losses[1] = losses[0] + (a * w).sum(), losses[1] + (b * w).sum()
    rate = torch.stack([r[0] for r in tb]).ne(0).double().mean()
    assert 0.03 < rate < 0.97, f"spike rate {rate:.3f}: the case does not exercise spiking"
    pa = dict((params_of or (lambda m: m))(theirs).named_parameters())
    pb = dict((params_of or (lambda m: m))(ours).named_parameters())
    assert sorted(pa) == sorted(pb)
    names = sorted(k for k in pa if pa[k].requires_grad)
    ga = torch.autograd.grad(losses[0], [xa, *(pa[k] for k in names)], allow_unused=True)
    gb = torch.autograd.grad(losses[1], [xb, *(pb[k] for k in names)], allow_unused=True)
    for name, a, b in zip(["input", *names], ga, gb, strict=True):
        a = torch.zeros_like(b) if a is None else a
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-9, msg=lambda m, n=name: f"grad of {n}: {m}")


def check(neuron, kwargs, shape=(4, N), scale=2.0, shift=0.5, ours=None, theirs_patch=None):
    kwargs = {"spike_grad": ATAN, **kwargs}
    theirs = getattr(snn, neuron)(**_fresh(kwargs))
    if theirs_patch:
        theirs_patch(theirs)
    mine = getattr(sg.nn, ours or neuron)(**_fresh(kwargs if ours is None else _drop_beta(kwargs)))
    mine.load_state_dict(theirs.state_dict(), strict=ours is None)
    xs = _random((T, *shape), seed=len(str(kwargs)), scale=scale, shift=shift)
    assert_same_run(theirs, mine, xs, STATES[ours or neuron])


def _drop_beta(kwargs):
    return {k: v for k, v in kwargs.items() if k != "beta"}


def _custom_fast_sigmoid(input_, grad_input, spikes):
    return grad_input / (10 * torch.abs(input_) + 1.0) ** 2


LEAKY = {
    "default": {},
    "zero": {"reset_mechanism": "zero"},
    "none": {"reset_mechanism": "none"},
    "no_delay_subtract": {"reset_delay": False},
    "no_delay_zero": {"reset_delay": False, "reset_mechanism": "zero"},
    "per_neuron": {"beta": vec(0.5, 0.6, 0.7, 0.8, 0.9, 0.95), "threshold": vec(0.5, 0.8, 1, 1.2, 1.5, 2)},
    "learn_beta_threshold": {
        "beta": vec(0.5, 0.6, 0.7, 0.8, 0.9, 0.95),
        "learn_beta": True,
        "threshold": 1.25,
        "learn_threshold": True,
    },
    "graded": {"graded_spikes_factor": 0.5},
    "learn_graded_no_delay": {"graded_spikes_factor": 1.5, "learn_graded_spikes_factor": True, "reset_delay": False},
    "fast_sigmoid": {"spike_grad": sg.surrogate.fast_sigmoid(slope=10)},
    "sigmoid": {"spike_grad": sg.surrogate.sigmoid(slope=5)},
    "triangular": {"spike_grad": sg.surrogate.triangular()},
    "spike_rate_escape": {"spike_grad": sg.surrogate.spike_rate_escape()},
    "SFS": {"spike_grad": sg.surrogate.SFS(B=0.2)},
    "straight_through": {"spike_grad": sg.surrogate.straight_through_estimator()},
    "heaviside": {"spike_grad": sg.surrogate.heaviside()},
    "custom": {"spike_grad": sg.surrogate.custom_surrogate(_custom_fast_sigmoid)},
    "surrogate_disable": {"surrogate_disable": True},
}


@pytest.mark.parametrize("case", LEAKY)
def test_leaky(case):
    check("Leaky", {"beta": 0.8, **LEAKY[case]})


SYNAPTIC = {
    "default": {},
    "zero": {"reset_mechanism": "zero"},
    "none": {"reset_mechanism": "none"},
    "no_delay_subtract": {"reset_delay": False},
    "no_delay_zero": {"reset_delay": False, "reset_mechanism": "zero"},
    "per_neuron": {
        "alpha": vec(0.3, 0.5, 0.6, 0.7, 0.8, 0.9),
        "beta": vec(0.9, 0.8, 0.7, 0.6, 0.5, 0.4),
        "threshold": vec(1, 1.5, 2, 1, 1.5, 2),
    },
    "learn_all": {"learn_alpha": True, "learn_beta": True, "learn_threshold": True},
}


@pytest.mark.parametrize("case", SYNAPTIC)
def test_synaptic(case):
    check("Synaptic", {"alpha": 0.6, "beta": 0.7, **SYNAPTIC[case]}, scale=1.5, shift=0.1)


ALPHA = {
    "default_zero": {},
    "subtract": {"reset_mechanism": "subtract"},
    "none": {"reset_mechanism": "none"},
    "per_neuron": {"alpha": vec(0.95, 0.9, 0.85, 0.9, 0.8, 0.7), "beta": vec(0.9, 0.8, 0.7, 0.6, 0.5, 0.4)},
    "learn_beta_threshold": {"learn_beta": True, "learn_threshold": True},
}


@pytest.mark.parametrize("case", ALPHA)
def test_alpha(case):
    check("Alpha", {"alpha": 0.9, "beta": 0.8, **ALPHA[case]}, scale=0.5, shift=0.1)


def _learnable_alpha(module):
    value = module.alpha.detach().clone()
    del module._buffers["alpha"]
    module.alpha = nn.Parameter(value)


def test_alpha_learn_alpha_against_patched_snntorch():
    with pytest.raises(TypeError):
        snn.Alpha(alpha=0.9, beta=0.8, learn_alpha=True)
    theirs = snn.Alpha(alpha=0.9, beta=0.8, spike_grad=ATAN)
    _learnable_alpha(theirs)
    ours = sg.nn.Alpha(alpha=0.9, beta=0.8, spike_grad=ATAN, learn_alpha=True)
    ours.load_state_dict(theirs.state_dict())
    assert_same_run(theirs, ours, _random((T, 4, N), seed=3, scale=0.8, shift=0.2), STATES["Alpha"])


LAPICQUE = {
    "beta": {"beta": 0.9},
    "R_C": {"R": 2.0, "C": 3.0},
    "beta_R": {"beta": 0.8, "R": 2.0},
    "beta_C": {"beta": 0.8, "C": 3.0},
    "time_step": {"beta": 0.9, "time_step": 0.5},
    "zero": {"beta": 0.9, "reset_mechanism": "zero"},
    "none": {"beta": 0.9, "reset_mechanism": "none", "threshold": 1.5},
    "learn_threshold": {"beta": 0.9, "learn_threshold": True},
    "per_neuron_threshold": {"beta": 0.9, "threshold": vec(0.5, 0.8, 1, 1.2, 1.5, 2)},
    "learn_beta": {"beta": 0.9, "learn_beta": True},
}


@pytest.mark.parametrize("case", LAPICQUE)
def test_lapicque(case):
    check("Lapicque", LAPICQUE[case], scale=3.0, shift=1.0)


RLEAKY = {
    "all_to_all": {"linear_features": N},
    "frozen_recurrent": {"linear_features": N, "learn_recurrent": False},
    "one_to_one": {"all_to_all": False, "V": 0.5, "learn_recurrent": False},
    "one_to_one_per_neuron": {"all_to_all": False, "V": vec(0.1, -0.2, 0.3, -0.4, 0.5, 0.6)},
    "zero": {"linear_features": N, "reset_mechanism": "zero"},
    "none": {"linear_features": N, "reset_mechanism": "none"},
    "no_delay_subtract": {"linear_features": N, "reset_delay": False},
    "no_delay_zero": {"linear_features": N, "reset_delay": False, "reset_mechanism": "zero"},
    "learn_beta_threshold": {"linear_features": N, "learn_beta": True, "learn_threshold": True},
}


@pytest.mark.parametrize("case", RLEAKY)
def test_rleaky(case):
    check("RLeaky", {"beta": 0.8, **RLEAKY[case]})


def test_rleaky_conv2d():
    check("RLeaky", {"beta": 0.8, "conv2d_channels": 2, "kernel_size": 3}, shape=(2, 2, 5, 5))


RSYNAPTIC = {
    "all_to_all": {"linear_features": N},
    "one_to_one": {"all_to_all": False, "V": 0.5},
    "zero": {"linear_features": N, "reset_mechanism": "zero"},
    "none": {"linear_features": N, "reset_mechanism": "none"},
    "learn_alpha_beta": {"linear_features": N, "learn_alpha": True, "learn_beta": True},
}


@pytest.mark.parametrize("case", RSYNAPTIC)
def test_rsynaptic(case):
    check("RSynaptic", {"alpha": 0.6, "beta": 0.7, **RSYNAPTIC[case]}, scale=1.5, shift=0.1)


def test_rsynaptic_conv2d():
    kwargs = {"alpha": 0.6, "beta": 0.7, "conv2d_channels": 2, "kernel_size": (3, 1)}
    check("RSynaptic", kwargs, shape=(2, 2, 5, 4), scale=1.5, shift=0.1)


IF_CASES = {
    "default": {},
    "zero": {"reset_mechanism": "zero"},
    "no_delay": {"reset_delay": False},
    "graded": {"graded_spikes_factor": 0.25},
}


@pytest.mark.parametrize("case", IF_CASES)
def test_integrate_fire_is_snntorch_leaky_with_beta_one(case):
    check("Leaky", {"beta": 1.0, **IF_CASES[case]}, ours="IntegrateFire", scale=1.0, shift=0.2)


def test_leaky_integrator_is_the_membrane_of_a_non_resetting_leaky():
    theirs = snn.Leaky(beta=vec(0.5, 0.6, 0.7, 0.8, 0.9, 1.0), reset_mechanism="none", learn_beta=True)
    ours = sg.nn.LeakyIntegrator(beta=vec(0.5, 0.6, 0.7, 0.8, 0.9, 1.0), learn_beta=True)
    xs = _random((T, 3, N), seed=5, shift=0.3)
    xa, xb = xs.clone().requires_grad_(True), xs.clone().requires_grad_(True)
    mem_a, mem_b, loss_a, loss_b = None, None, 0, 0
    for t in range(T):
        _, mem_a = theirs(xa[t], mem_a)
        out, mem_b = ours(xb[t], mem_b)
        assert out is mem_b and torch.equal(mem_a, mem_b)
        w = _dyadic(mem_a.shape, seed=t)
        loss_a, loss_b = loss_a + (mem_a * w).sum(), loss_b + (mem_b * w).sum()
    ga = torch.autograd.grad(loss_a, [xa, theirs.beta])
    gb = torch.autograd.grad(loss_b, [xb, ours.beta])
    for a, b in zip(ga, gb, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-9)


HIDDEN = {
    "Leaky": {"beta": 0.8},
    "Synaptic": {"alpha": 0.6, "beta": 0.7},
    "Alpha": {"alpha": 0.9, "beta": 0.8},
    "Lapicque": {"R": 3.0, "C": 0.5},
    "RLeaky": {"beta": 0.8, "linear_features": N},
    "RSynaptic": {"alpha": 0.6, "beta": 0.7, "linear_features": N},
}


@pytest.mark.parametrize("output", [False, True], ids=["spk_only", "output"])
@pytest.mark.parametrize("neuron", HIDDEN)
def test_init_hidden_in_sequential(neuron, output):
    kwargs = {"spike_grad": ATAN, "init_hidden": True, "output": output, **HIDDEN[neuron]}
    torch.manual_seed(0)
    theirs = nn.Sequential(nn.Linear(5, N), getattr(snn, neuron)(**kwargs))
    ours = nn.Sequential(nn.Linear(5, N), getattr(sg.nn, neuron)(**kwargs))
    ours.load_state_dict(theirs.state_dict())
    xs = _random((T, 4, 5), seed=6, scale=2.0, shift=0.5)
    assert_same_run(theirs, ours, xs, STATES[neuron], hidden=True)
    for name in STATES[neuron]:
        torch.testing.assert_close(getattr(ours[1], name), getattr(theirs[1], name), rtol=0, atol=1e-9)


def test_snntorch_default_and_own_surrogates():
    """Default spike_grad (atan) on both sides, and an snnTorch surrogate in our module.

    snnTorch's spikes are float32 here; the loss weights are dyadic, so no gradient is rounded.
    """
    for spike_grad in (None, snn.surrogate.fast_sigmoid(slope=10)):
        theirs = snn.Leaky(beta=0.8, spike_grad=spike_grad)
        ours = sg.nn.Leaky(beta=0.8, spike_grad=spike_grad)
        assert_same_run(theirs, ours, _random((T, 4, N), seed=7, scale=2.0, shift=0.5), ("mem",))
    assert ours.spike_grad is spike_grad and sg.nn.Leaky(beta=0.8).spike_grad == sg.surrogate.atan()
