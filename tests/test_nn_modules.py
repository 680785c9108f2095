"""Behaviour of the ``snngraph.nn`` modules beyond snnTorch parity: per-instance state, garbage
collection, state handling and errors, dtype/device moves, the ALIF module, and the snnTorch bugs
snngraph fixes (RSynaptic reset_delay=False, Lapicque per-neuron and learnable beta).
"""

from __future__ import annotations

import gc
import weakref

import pytest
import snntorch as snn
import torch
from torch import nn

import snngraph as sg
from snngraph import GraphError
from snngraph.runtimes.torch.kernels import adaptive_leaky_step, leaky_step

ATAN = sg.surrogate.atan()
ALL = {
    "Leaky": {"beta": 0.8},
    "Synaptic": {"alpha": 0.6, "beta": 0.7},
    "Alpha": {"alpha": 0.9, "beta": 0.8},
    "Lapicque": {"R": 3.0, "C": 0.5},
    "RLeaky": {"beta": 0.8, "linear_features": 4},
    "RSynaptic": {"alpha": 0.6, "beta": 0.7, "all_to_all": False, "V": 0.5},
    "IntegrateFire": {},
    "LeakyIntegrator": {"beta": 0.8},
    "AdaptiveLeaky": {"beta": 0.8, "rho": 0.9, "adaptation": 0.5},
}


@pytest.fixture(autouse=True)
def _clean_snntorch():
    yield
    snn.SpikingNeuron.instances.clear()


def _x(*shape, seed=0, scale=2.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale + 0.5


def make(name, **extra):
    return getattr(sg.nn, name)(**ALL[name], **extra)


def test_no_class_level_instance_registry():
    make("Leaky")
    assert not any(hasattr(cls, "instances") for cls in (sg.nn.SpikingNeuron, sg.nn.Leaky, sg.nn.RLeaky))


@pytest.mark.parametrize("name", ALL)
def test_dropped_instance_is_garbage_collected(name):
    neuron = make(name, init_hidden=True)
    out = neuron(_x(3, 4).requires_grad_(True))
    out.sum().backward()
    ref = weakref.ref(neuron)
    del neuron, out
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("name", ALL)
def test_instances_do_not_share_hidden_state(name):
    a, b, alone = make(name, init_hidden=True), make(name, init_hidden=True), make(name, init_hidden=True)
    alone.load_state_dict(a.state_dict())
    b.load_state_dict(a.state_dict())
    for t in range(5):
        a(_x(3, 4, seed=t))
        b(_x(3, 4, seed=100 + t) * 3)
        alone(_x(3, 4, seed=t))
    for state in a.state_names:
        assert torch.equal(getattr(a, state), getattr(alone, state))
    assert not torch.equal(a.mem, b.mem)
    b.reset_hidden()
    assert torch.count_nonzero(b.mem) == 0 and torch.count_nonzero(a.mem) > 0


@pytest.mark.parametrize("name", ALL)
def test_explicit_state_is_zero_when_omitted_and_not_kept(name):
    neuron = make(name)
    x = _x(3, 4)
    first = neuron(x)
    again = neuron(x)
    assert all(torch.equal(u, v) for u, v in zip(first, again, strict=True))
    zeros = [torch.zeros(3, 4) for _ in neuron.state_names]
    explicit = neuron(x, *zeros)
    assert all(torch.equal(u, v) for u, v in zip(first, explicit, strict=True))
    assert all(getattr(neuron, s).numel() == 0 for s in neuron.state_names)


def test_snntorch_init_idiom_with_empty_state():
    lif = sg.nn.Leaky(beta=0.9)
    mem = lif.init_leaky()
    assert mem.numel() == 0
    spk, mem = lif(_x(2, 3), mem)
    assert mem.shape == (2, 3)
    syn, mem = sg.nn.Synaptic(alpha=0.5, beta=0.9).init_synaptic()
    assert syn.numel() == 0 and mem.numel() == 0


def test_hidden_state_detach_reset_and_shape_change():
    lif = sg.nn.Leaky(beta=0.9, init_hidden=True)
    x = _x(2, 3).requires_grad_(True)
    lif(x)
    assert lif.mem.requires_grad
    lif.detach_hidden()
    assert not lif.mem.requires_grad and torch.count_nonzero(lif.mem) > 0
    assert lif.reset_mem().shape == (2, 3) and torch.count_nonzero(lif.mem) == 0
    lif(x)
    spk = lif(_x(5, 3))  # a new batch size restarts from zero, as in snnTorch
    assert spk.shape == (5, 3) and lif.mem.shape == (5, 3)


def test_init_hidden_returns_state_only_with_output():
    assert isinstance(make("Synaptic", init_hidden=True)(_x(2, 4)), torch.Tensor)
    spk, syn, mem = make("Synaptic", init_hidden=True, output=True)(_x(2, 4))
    assert spk.shape == syn.shape == mem.shape == (2, 4)
    mem_only = make("LeakyIntegrator", init_hidden=True)(_x(2, 4))
    assert isinstance(mem_only, torch.Tensor)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: sg.nn.Leaky(beta=0.9, reset_mechanism="clip"), "Leaky: reset_mechanism must be one of"),
        (lambda: sg.nn.DeltaLeaky(beta=0.9, inhibition=True), "DeltaLeaky: inhibition is not supported"),
        (lambda: sg.nn.AdaptiveLeaky(0.9, state_quant=lambda m: m), "AdaptiveLeaky: state_quant is not supported"),
        (lambda: sg.nn.Synaptic(0.5, 0.9, state_quant=3), "Synaptic: state_quant must be a quantiser"),
        (lambda: sg.nn.Leaky(0.5, inhibition="yes"), "Leaky: inhibition must be a bool"),
        (lambda: sg.nn.Leaky(beta=0.9, spike_grad="atan"), "Leaky: spike_grad must be callable"),
        (lambda: sg.nn.Alpha(alpha=0.8, beta=0.9), "Alpha: alpha must be greater than beta"),
        (lambda: sg.nn.Alpha(alpha=1.0, beta=1.0), "Alpha: alpha must be greater"),
        (lambda: sg.nn.Lapicque(), "lapicque: give beta"),
        (lambda: sg.nn.Lapicque(R=2.0), "lapicque: give beta"),
        (lambda: sg.nn.Lapicque(beta=0.9, R=2.0, C=3.0), "lapicque: give beta"),
        (lambda: sg.nn.Lapicque(R=2.0, C=3.0, learn_beta=True), "Lapicque: learn_beta needs beta"),
        (lambda: sg.nn.RLeaky(beta=0.9), "RLeaky: all_to_all=True needs linear_features"),
        (lambda: sg.nn.RLeaky(beta=0.9, conv2d_channels=2), "RLeaky: all_to_all=True needs"),
        (lambda: sg.nn.RLeaky(beta=0.9, linear_features=3, kernel_size=3), "RLeaky: linear_features cannot"),
        (lambda: sg.nn.RSynaptic(0.5, 0.9, all_to_all=False, linear_features=3), "RSynaptic: with all_to_all"),
    ],
)
def test_bad_construction_raises_graph_error_naming_the_neuron(build, match):
    with pytest.raises(GraphError, match=match):
        build()


def test_bad_state_raises_graph_error():
    with pytest.raises(GraphError, match="Leaky: do not pass mem when init_hidden=True"):
        sg.nn.Leaky(beta=0.9, init_hidden=True)(_x(2, 3), torch.zeros(2, 3))
    with pytest.raises(GraphError, match=r"Synaptic: state 'mem' has shape \(3,\) but the input has shape \(2, 3\)"):
        sg.nn.Synaptic(0.5, 0.9)(_x(2, 3), None, torch.zeros(3))


def test_hyper_parameters_are_snntorch_attributes():
    rsyn = sg.nn.RSynaptic(alpha=0.5, beta=0.9, linear_features=3, threshold=0.7, reset_delay=False)
    for name, value in {"alpha": 0.5, "beta": 0.9, "threshold": 0.7, "graded_spikes_factor": 1.0}.items():
        assert float(getattr(rsyn, name)) == pytest.approx(value)
    assert rsyn.reset_mechanism == "subtract" and rsyn.reset_delay is False and rsyn.all_to_all
    assert isinstance(rsyn.recurrent, nn.Linear) and rsyn.spike_grad == ATAN
    lap = sg.nn.Lapicque(beta=0.9, time_step=0.5)
    assert {"R", "C", "time_step", "beta"} <= set(dict(lap.named_buffers()))
    assert isinstance(sg.nn.Leaky(beta=0.9, learn_beta=True).beta, nn.Parameter)


def test_reset_mechanism_follows_setter_and_loaded_state():
    lif = sg.nn.Leaky(beta=0.9)
    lif.reset_mechanism = "none"
    assert int(lif.reset_mechanism_val) == 2
    lif.load_state_dict(snn.Leaky(beta=0.9, reset_mechanism="zero").state_dict())
    assert lif.reset_mechanism == "zero"


def test_dtype_follows_input_and_module_moves():
    lif = sg.nn.RLeaky(beta=0.9, all_to_all=False, V=torch.tensor([0.5, 1.0, 2.0]), learn_recurrent=False)
    spk, mem = lif(_x(2, 3))
    assert spk.dtype == mem.dtype == torch.float32
    lif.double()
    assert lif.recurrent.V is lif.V and lif.V.dtype == torch.float64
    spk, mem = lif(_x(2, 3).double(), spk.double(), mem.double())
    assert spk.dtype == mem.dtype == torch.float64
    learnable = sg.nn.RLeaky(beta=0.9, all_to_all=False, V=0.5).double()
    assert learnable.recurrent.V is learnable.V and isinstance(learnable.V, nn.Parameter)


def test_rsynaptic_reset_delay_false_resets_in_the_spiking_step():
    with pytest.raises(TypeError):  # snnTorch's branch divides the omitted spk argument
        snn.RSynaptic(alpha=0.5, beta=0.9, linear_features=4, reset_delay=False)(_x(2, 4))
    for reset in ("subtract", "zero"):
        ours = sg.nn.RSynaptic(0.6, 0.7, linear_features=4, reset_delay=False, reset_mechanism=reset, spike_grad=ATAN)
        spk, syn, mem = (torch.zeros(3, 4) for _ in range(3))
        rspk, rsyn, rmem = (torch.zeros(3, 4) for _ in range(3))
        fired = 0
        for t in range(15):
            x = _x(3, 4, seed=t)
            spk, syn, mem = ours(x, spk, syn, mem)
            reset_prev = (rmem - 1.0 > 0).float()
            rsyn = 0.6 * rsyn + x + ours.recurrent(rspk)
            rmem = 0.7 * rmem + rsyn
            rmem = rmem - reset_prev * 1.0 if reset == "subtract" else rmem - rmem * reset_prev
            rspk = (rmem - 1.0 > 0).float()
            do_reset = rspk - reset_prev
            rmem = rmem - do_reset * 1.0 if reset == "subtract" else rmem - do_reset * rmem
            assert torch.equal(spk, rspk)
            torch.testing.assert_close(mem, rmem, rtol=0, atol=1e-6)
            fired += int(spk.sum())
        assert fired > 0


def test_lapicque_per_neuron_and_learnable_beta_work_where_snntorch_fails():
    with pytest.raises(RuntimeError):
        snn.Lapicque(beta=torch.tensor([0.8, 0.9]))
    lap = sg.nn.Lapicque(beta=torch.tensor([0.8, 0.9]))
    torch.testing.assert_close(lap.C, 1 / torch.log(1 / torch.tensor([0.8, 0.9])))
    learn = sg.nn.Lapicque(beta=0.9, learn_beta=True)
    for _ in range(2):  # snnTorch derives C once and fails on the second backward
        spk, mem = learn(_x(2, 2), None)
        mem.sum().backward()
    assert learn.beta.grad is not None and learn.beta.grad != 0
    with torch.no_grad():
        learn.beta.fill_(0.5)
    learn(_x(2, 2))
    torch.testing.assert_close(learn.C, 1 / torch.log(torch.tensor(2.0)))


def test_adaptive_leaky_module_runs_the_kernel():
    alif = sg.nn.ALIF(beta=0.9, rho=0.8, adaptation=0.5, spike_grad=ATAN, learn_adaptation=True)
    mem = b = None
    kmem, kb = torch.zeros(3, 4), torch.zeros(3, 4)
    for t in range(10):
        x = _x(3, 4, seed=t)
        spk, mem, b = alif(x, mem, b)
        hyper = {"beta": alif.beta, "rho": alif.rho, "adaptation": alif.adaptation.detach()}
        kspk, kmem, kb = adaptive_leaky_step(x, kmem, kb, spike_grad=ATAN, **hyper)
        assert torch.equal(spk, kspk) and torch.equal(mem, kmem) and torch.equal(b, kb)
    (spk.sum() + mem.sum()).backward()
    assert alif.adaptation.grad is not None
    assert sg.nn.IF is sg.nn.IntegrateFire and sg.nn.LI is sg.nn.LeakyIntegrator


def test_surrogate_disable_spikes_without_gradient():
    lif = sg.nn.Leaky(beta=0.9, surrogate_disable=True)
    x = _x(2, 3).requires_grad_(True)
    spk, mem = lif(x)
    assert not spk.requires_grad and mem.requires_grad
    expected, _ = leaky_step(x.detach(), torch.zeros(2, 3), beta=0.9)
    assert torch.equal(spk, expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_modules_and_surrogates_run_on_cuda():
    rlif = sg.nn.RLeaky(beta=0.9, all_to_all=False, V=torch.tensor([0.5, 1.0, 2.0]), learn_recurrent=False)
    rlif.reset_mechanism = "zero"
    seq = nn.Sequential(nn.Linear(3, 3), sg.nn.Leaky(beta=0.9, init_hidden=True), rlif).to("cuda")
    assert rlif.recurrent.V is rlif.V and rlif.V.device.type == "cuda"
    rlif.init_hidden = True
    x = _x(2, 3).cuda().requires_grad_(True)
    out = sum(seq(x + t).sum() for t in range(3))
    out.backward()
    assert x.grad.device.type == "cuda" and seq[1].mem.device.type == "cuda"
    cpu = sg.surrogate.sigmoid()(_x(50).requires_grad_(True))
    assert torch.equal(sg.surrogate.sigmoid()(_x(50).cuda()).cpu(), cpu.detach())
