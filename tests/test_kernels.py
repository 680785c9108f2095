"""Neuron kernels: registry, signatures, parameter forms, purity, Lapicque's R/C resolution, and the
adaptive LIF (not in snnTorch) against a reference written from its equations.

The kernels' agreement with snnTorch 1.0.0 is tested through the modules in test_nn_parity.py.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import snntorch as snn
import torch

import snngraph as sg
from snngraph import GraphError
from snngraph.ir.neurons import NEURON_OPS
from snngraph.runtimes.torch import kernels as K

F64 = torch.float64
ATAN = sg.surrogate.atan()
STATE_NAMES = {
    "leaky": ("mem",),
    "synaptic": ("syn", "mem"),
    "alpha": ("syn_exc", "syn_inh", "mem"),
    "lapicque": ("mem",),
    "rleaky": ("spk", "mem"),
    "rsynaptic": ("spk", "syn", "mem"),
    "integrate_fire": ("mem",),
    "leaky_integrator": ("mem",),
    "adaptive_leaky": ("mem", "b"),
    "delta_leaky": ("mem", "mem_prev"),
    "nir_lif": ("mem",),
    "state_leaky": ("mem",),
    "leaky_parallel": ("spk", "mem"),
    "norse_lif": ("v", "i"),
    "norse_lif_box": ("v",),
    "norse_li": ("v", "i"),
    "norse_lif_recurrent": ("spk", "v", "i"),
    "sj_if": ("v",),
    "sj_lif": ("v",),
    "sj_plif": ("v",),
}
FIRE = ("threshold", "spike_grad", "reset_mechanism")
SNN_OPTIONS = ("inhibition", "state_quant")  # snnTorch's fire_inhibition and state quantiser
KEYWORDS = {
    "leaky": ("beta", *FIRE, "reset_delay", "graded_spikes_factor", *SNN_OPTIONS),
    "synaptic": ("alpha", "beta", *FIRE, "reset_delay", "graded_spikes_factor", *SNN_OPTIONS),
    "alpha": ("alpha", "beta", *FIRE, "graded_spikes_factor", *SNN_OPTIONS),
    "lapicque": ("R", "C", "time_step", *FIRE, "graded_spikes_factor", *SNN_OPTIONS),
    "rleaky": ("recurrent", "beta", *FIRE, "reset_delay", "graded_spikes_factor", *SNN_OPTIONS),
    "rsynaptic": ("recurrent", "alpha", "beta", *FIRE, "reset_delay", "graded_spikes_factor", *SNN_OPTIONS),
    "integrate_fire": (*FIRE, "reset_delay", "graded_spikes_factor", *SNN_OPTIONS),
    "leaky_integrator": ("beta",),
    "adaptive_leaky": ("beta", "rho", "adaptation", *FIRE, "reset_delay", "graded_spikes_factor"),
    "delta_leaky": ("beta", "delta_threshold", "spike_grad"),
    "nir_lif": ("beta", *FIRE, "graded_spikes_factor"),
    "state_leaky": ("tau", "threshold", "spike_grad", "graded_spikes_factor"),
    "leaky_parallel": ("recurrent", "threshold", "spike_grad", "graded_spikes_factor", "bias_hh"),
    "norse_lif": ("tau_syn_inv", "tau_mem_inv", "v_leak", "v_th", "v_reset", "dt", "spike_grad"),
    "norse_lif_box": ("tau_mem_inv", "v_leak", "v_th", "v_reset", "dt", "spike_grad", "reset_method"),
    "norse_li": ("tau_syn_inv", "tau_mem_inv", "v_leak", "dt"),
    "norse_lif_recurrent": ("recurrent", "tau_syn_inv", "tau_mem_inv", "v_leak", "v_th", "v_reset", "dt",
                            "spike_grad"),
    "sj_if": ("v_threshold", "v_reset", "spike_grad", "reset", "detach_reset"),
    "sj_lif": ("tau", "v_threshold", "v_reset", "spike_grad", "reset", "detach_reset", "decay_input"),
    "sj_plif": ("w", "v_threshold", "v_reset", "spike_grad", "reset", "detach_reset", "decay_input"),
}
HYPER = {
    "leaky": {"beta": 0.8},
    "synaptic": {"alpha": 0.7, "beta": 0.8},
    "alpha": {"alpha": 0.9, "beta": 0.8},
    "lapicque": {"R": 2.0, "C": 1.5, "time_step": 0.5},
    "rleaky": {"beta": 0.8, "recurrent": lambda s: 0.5 * s},
    "rsynaptic": {"alpha": 0.7, "beta": 0.8, "recurrent": lambda s: 0.5 * s},
    "integrate_fire": {},
    "leaky_integrator": {"beta": 0.8},
    "adaptive_leaky": {"beta": 0.8, "rho": 0.9, "adaptation": 0.5},
    "delta_leaky": {"beta": 0.8, "delta_threshold": 0.3},
    "nir_lif": {"beta": 0.8},
    "state_leaky": {"tau": 5.0},
    "leaky_parallel": {"bias_hh": 0.25, "recurrent": lambda s: 0.5 * s},
    "norse_lif": {"tau_mem_inv": 100.0},
    "norse_lif_box": {"tau_mem_inv": 300.0},
    "norse_li": {"tau_mem_inv": 100.0},
    "norse_lif_recurrent": {"tau_mem_inv": 100.0, "recurrent": lambda s: 0.5 * s},
    "sj_if": {},
    "sj_lif": {"tau": 3.0},
    "sj_plif": {"w": 0.3},
}


def _rand(*shape, seed=0, scale=2.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64) * scale


def _run(op, xs, **hyper):
    kernel = K.NEURON_KERNELS[op]
    state = [torch.zeros_like(xs[0]) for _ in kernel.state_names]
    outs = []
    for x in xs:
        out, state = kernel.split(kernel.step(x, *state, **hyper))
        outs.append((out, *state))
    return outs


CELL_STATE_NAMES = {"slstm": ("syn", "mem"), "sconv2d_lstm": ("syn", "mem"),  # other shapes: tests/test_lstm.py,
                    "associative_leaky": ("S",)}  # tests/test_associative_model.py


def test_registry_covers_every_ir_neuron_with_its_state_names():
    assert set(K.NEURON_KERNELS) == set(NEURON_OPS)
    assert {op: k.state_names for op, k in K.NEURON_KERNELS.items()} == STATE_NAMES | CELL_STATE_NAMES
    assert {op for op, k in K.NEURON_KERNELS.items() if k.output_is_state} == {"rleaky", "rsynaptic", "leaky_parallel",
                                                                                    "norse_lif_recurrent"}


@pytest.mark.parametrize("op", sorted(STATE_NAMES))
def test_kernel_signature(op):
    params = inspect.signature(K.NEURON_KERNELS[op].step).parameters.values()
    positional = [p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD]
    keywords = [p.name for p in params if p.kind == p.KEYWORD_ONLY]
    assert positional == ["x", *STATE_NAMES[op]]
    assert sorted(keywords) == sorted(KEYWORDS[op])  # the declared names; order is the declaration's


@pytest.mark.parametrize("op", sorted(STATE_NAMES))
def test_kernels_are_pure_and_return_output_then_state(op):
    xs = _rand(6, 3, 4, seed=1)
    state = [_rand(3, 4, seed=2 + i, scale=0.5) for i, _ in enumerate(STATE_NAMES[op])]
    copies = [s.clone() for s in state]
    kernel = K.NEURON_KERNELS[op]
    result = kernel.step(xs[0], *state, **HYPER[op])
    assert len(result) == len(state) + (0 if kernel.output_is_state else 1)
    out, new_state = kernel.split(result)
    assert len(new_state) == len(state) and out is result[0]
    if kernel.output_is_state:
        assert new_state[0] is out
    assert all(torch.equal(a, b) for a, b in zip(state, copies, strict=True))
    assert all(r.shape == (3, 4) and r.dtype == F64 for r in result)
    assert torch.equal(_run(op, xs, **HYPER[op])[-1][0], _run(op, xs, **HYPER[op])[-1][0])


@pytest.mark.parametrize("op", sorted(STATE_NAMES))
def test_numbers_and_tensors_give_the_same_result(op):
    xs = _rand(10, 2, 5, seed=3)
    as_numbers = _run(op, xs, **HYPER[op])
    tensors = {k: torch.tensor(v, dtype=F64) if isinstance(v, float) else v for k, v in HYPER[op].items()}
    for a, b in zip(as_numbers, _run(op, xs, **tensors), strict=True):
        assert all(torch.allclose(u, v, rtol=0, atol=1e-12) for u, v in zip(a, b, strict=True))


@pytest.mark.parametrize("op", ["leaky", "synaptic", "alpha", "rleaky", "rsynaptic", "adaptive_leaky"])
def test_per_neuron_parameters_broadcast_over_last_dim(op):
    xs = _rand(12, 3, 4, seed=4)
    per_neuron = {
        **HYPER[op],
        "beta": torch.tensor([0.5, 0.6, 0.7, 0.8], dtype=F64),
        "threshold": torch.tensor([0.5, 1.0, 1.5, 2.0], dtype=F64),
    }
    outs = _run(op, xs, **per_neuron)
    for j in range(4):
        column = {**HYPER[op], "beta": float(per_neuron["beta"][j]), "threshold": float(per_neuron["threshold"][j])}
        ref = _run(op, xs[..., j : j + 1], **column)
        for a, b in zip(outs, ref, strict=True):
            assert all(torch.allclose(u[..., j : j + 1], v, rtol=0, atol=1e-12) for u, v in zip(a, b, strict=True))


@pytest.mark.parametrize("op", sorted(op for op in STATE_NAMES  # models with a reset_mechanism option
                                      if op not in ("leaky_integrator", "delta_leaky", "state_leaky", "leaky_parallel")
                                      and not op.startswith("norse")))
def test_unknown_reset_mechanism_names_the_op(op):
    x = torch.zeros(2, 3)
    state = [torch.zeros(2, 3) for _ in STATE_NAMES[op]]
    key = "reset" if op.startswith("sj_") else "reset_mechanism"  # SpikingJelly's models: reset="hard"/"soft"
    with pytest.raises(GraphError, match=rf"{op}: {key} must be one of"):
        K.NEURON_KERNELS[op].step(x, *state, **HYPER[op], **{key: "clip"})


def test_default_spike_grad_is_atan():
    x = _rand(2, 3, seed=5).requires_grad_(True)
    mem = _rand(2, 3, seed=6)
    default = K.leaky_step(x, mem, beta=0.9)
    explicit = K.leaky_step(x, mem, beta=0.9, spike_grad=ATAN)
    (ga,) = torch.autograd.grad(default[0].sum(), x)
    (gb,) = torch.autograd.grad(explicit[0].sum(), x)
    assert torch.equal(ga, gb) and torch.equal(default[1], explicit[1])


def test_integrate_fire_is_leaky_without_leak():
    xs = _rand(15, 3, 4, seed=7)
    for kw in ({}, {"reset_mechanism": "zero"}, {"reset_delay": False, "graded_spikes_factor": 0.5}):
        for a, b in zip(_run("integrate_fire", xs, **kw), _run("leaky", xs, beta=1.0, **kw), strict=True):
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_leaky_integrator_is_a_clamped_linear_filter():
    xs = _rand(8, 2, 3, seed=8)
    mem = torch.zeros(2, 3, dtype=F64)
    for x, (out, state) in zip(xs, _run("leaky_integrator", xs, beta=1.5), strict=True):
        mem = 1.0 * mem + x  # beta clamps to 1
        assert torch.equal(out, mem) and torch.equal(state, mem)


def test_learnable_hyper_parameters_receive_gradients():
    beta = torch.tensor(0.8, dtype=F64, requires_grad=True)
    threshold = torch.tensor(1.2, dtype=F64, requires_grad=True)
    outs = _run("leaky", _rand(10, 4, 5, seed=9), beta=beta, threshold=threshold, spike_grad=ATAN)
    sum(o[0].sum() + o[1].sum() for o in outs).backward()
    assert beta.grad is not None and beta.grad != 0 and threshold.grad is not None and threshold.grad != 0


# ----------------------------------------------------------------------------- adaptive LIF


def alif_reference(xs, *, beta, rho, adaptation, threshold, spike_grad, reset_mechanism, reset_delay, gsf):
    """The ALIF written from its equations, carrying the emitted spikes instead of recomputing them."""
    mem = torch.zeros_like(xs[0])
    b = torch.zeros_like(xs[0])
    z_prev = torch.zeros_like(xs[0])  # spike emitted at t-1 (unscaled)
    theta_prev = threshold + adaptation * b
    out = []
    for x in xs:
        if reset_delay:
            b = rho * b + (1 - rho) * z_prev
            r = z_prev.detach()
            theta = threshold + adaptation * b
            leak, amount = beta * mem, theta_prev
        else:
            theta = threshold + adaptation * b
            r = spike_grad(mem - theta).detach()  # snnTorch's pending reset
            leak, amount = beta * mem, theta
        if reset_mechanism == "subtract":
            mem = leak + x - r * amount
        elif reset_mechanism == "zero":
            mem = beta * ((1 - r) * mem) + x
        else:
            mem = leak + x
        z = spike_grad(mem - theta)
        if not reset_delay:
            if reset_mechanism == "subtract":
                mem = mem - (z - r) * theta
            elif reset_mechanism == "zero":
                mem = mem - (z - r) * mem
            b = rho * b + (1 - rho) * z
        out.append((z * gsf, mem, b))
        z_prev, theta_prev = z, theta
    return out


@pytest.mark.parametrize("reset_delay", [True, False])
@pytest.mark.parametrize("reset_mechanism", ["subtract", "zero", "none"])
def test_adaptive_leaky_matches_reference(reset_mechanism, reset_delay):
    xs = (_rand(25, 3, 6, seed=10, scale=1.5) + 0.6).requires_grad_(True)
    hyper = dict(
        beta=0.85,
        rho=0.8,
        adaptation=0.7,
        threshold=1.0,
        spike_grad=ATAN,
        reset_mechanism=reset_mechanism,
        reset_delay=reset_delay,
    )
    ours = _run("adaptive_leaky", xs, graded_spikes_factor=0.5, **hyper)
    ref = alif_reference(xs, gsf=0.5, **hyper)
    weights = [_rand(3, 3, 6, seed=100 + t) for t in range(25)]
    losses = [sum((torch.stack(o) * w).sum() for o, w in zip(outs, weights, strict=True)) for outs in (ours, ref)]
    for a, b in zip(ours, ref, strict=True):
        assert torch.equal(a[0], b[0])
        torch.testing.assert_close(a[1:], b[1:], rtol=0, atol=1e-12)
    spikes = torch.stack([o[0] for o in ours])
    assert 0.05 < spikes.mean() / 0.5 < 0.95
    (g_ours,) = torch.autograd.grad(losses[0], xs)
    (g_ref,) = torch.autograd.grad(losses[1], xs)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-9, atol=1e-12)


def test_adaptive_leaky_without_adaptation_is_leaky():
    xs = _rand(20, 3, 6, seed=11) + 0.5
    alif = _run("adaptive_leaky", xs, beta=0.9, rho=0.7, adaptation=0.0, spike_grad=ATAN)
    lif = _run("leaky", xs, beta=0.9, spike_grad=ATAN)
    for (s1, m1, _), (s2, m2) in zip(alif, lif, strict=True):
        assert torch.equal(s1, s2) and torch.equal(m1, m2)


def test_adaptation_raises_the_threshold_and_lowers_the_rate():
    xs = torch.full((40, 1, 1), 0.6, dtype=F64)
    alif = _run("adaptive_leaky", xs, beta=0.9, rho=0.95, adaptation=2.0, spike_grad=ATAN)
    lif = _run("leaky", xs, beta=0.9, spike_grad=ATAN)
    assert sum(o[0].item() for o in alif) < sum(o[0].item() for o in lif)
    assert max(o[2].item() for o in alif) > 0


# ----------------------------------------------------------------------------- Lapicque R, C


@pytest.mark.parametrize(
    "kwargs",
    [
        {"beta": 0.9},
        {"beta": 0.9, "time_step": 0.5},
        {"R": 2.0, "C": 3.0},
        {"beta": 0.8, "R": 2.0},
        {"beta": 0.8, "C": 3.0},
    ],
    ids=["beta", "beta_dt", "R_C", "beta_R", "beta_C"],
)
def test_lapicque_rc_reproduces_snntorch(kwargs):
    torch.set_default_dtype(F64)
    try:
        theirs = snn.Lapicque(**kwargs)
        ours = sg.nn.Lapicque(**kwargs)
    finally:
        torch.set_default_dtype(torch.float32)
        snn.SpikingNeuron.instances.clear()
    assert torch.equal(ours.R, theirs.R) and torch.equal(ours.C, theirs.C)
    R, C = K.lapicque_rc(kwargs.get("beta"), kwargs.get("R"), kwargs.get("C"), kwargs.get("time_step", 1))
    assert pytest.approx((float(theirs.R), float(theirs.C)), rel=1e-14) == (R, C)


def test_lapicque_rc_accepts_numpy_and_per_neuron_tensors():
    betas = np.array([0.5, 0.9])
    R, C = K.lapicque_rc(betas)
    assert R == 1.0 and np.allclose(C, 1.0 / np.log(1 / betas), rtol=1e-14)
    Rt, Ct = K.lapicque_rc(torch.tensor(betas), time_step=torch.tensor(2.0, dtype=F64))
    assert Rt.dtype == torch.int64 and torch.allclose(Ct, torch.tensor(2 * C), rtol=1e-14)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "give beta"),
        ({"R": 2.0}, "give beta"),
        ({"beta": False, "C": 3.0}, "give beta"),
        ({"beta": 0.9, "R": 2.0, "C": 3.0}, "give beta"),
        ({"beta": 1.0}, r"beta must be in \(0, 1\)"),
        ({"beta": torch.tensor(1.0)}, "C must be finite and positive"),
        ({"R": -1.0, "C": 3.0}, "R must be finite and positive"),
        ({"beta": 0.9, "time_step": 0.0}, "must be finite and positive"),
    ],
)
def test_lapicque_rc_rejects_what_snntorch_cannot_run(kwargs, match):
    with pytest.raises(GraphError, match=f"lapicque: .*{match}|{match}"):
        K.lapicque_rc(**kwargs)
