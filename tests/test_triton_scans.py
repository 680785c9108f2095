"""The Triton scans (``runtimes/torch/triton``) in Triton's interpreter on CPU tensors against the torch
scans: every model and option, spikes exact, states and gradients within 1e-5 relative (float32);
float16/bfloat16 state against float32; ``sg.compile(kernels="triton")`` trains like ``"torch"``.

Run with ``make test-triton`` (installs triton, sets ``TRITON_INTERPRET=1``); skipped otherwise.
"""

import pytest
import torch

from snngraph.runtimes.torch.triton import available, interpreting

pytestmark = [
    pytest.mark.skipif(not available(), reason="triton is not installed (make test-triton installs it)"),
    pytest.mark.skipif(not interpreting(), reason="needs TRITON_INTERPRET=1 (make test-triton)"),
]

from triton_cases import (  # noqa: E402 (after the skips: the cases import nothing of triton themselves)
    ATAN,
    LEAKY,
    LSTM,
    RECURRENT,
    SPIKINGJELLY,
    SURROGATES,
    SYNAPTIC,
    check_leaky,
    check_low_precision,
    check_lstm,
    check_lstm_low_precision,
    check_recurrent,
    check_sj,
    check_sj_low_precision,
    check_synaptic,
)

CPU = torch.device("cpu")


@pytest.mark.parametrize("reset,delay,per_neuron,graded", LEAKY)
def test_leaky(reset, delay, per_neuron, graded):
    check_leaky(reset, delay, per_neuron, graded, CPU)


@pytest.mark.parametrize("surrogate", SURROGATES, ids=lambda s: s.name)
@pytest.mark.parametrize("delay", [True, False])
def test_leaky_surrogates(surrogate, delay):
    check_leaky("subtract", delay, True, 1.0, CPU, surrogate=surrogate)


@pytest.mark.parametrize("reset,delay", [("subtract", True), ("zero", False), ("none", True)])
def test_integrate_fire(reset, delay):
    check_leaky(reset, delay, True, 1.0, CPU, model="integrate_fire")


@pytest.mark.parametrize("per_neuron", [False, True])
def test_leaky_integrator(per_neuron):
    check_leaky("subtract", True, per_neuron, 1.0, CPU, model="leaky_integrator")


@pytest.mark.parametrize("reset,dense,per_neuron", RECURRENT)
def test_recurrent(reset, dense, per_neuron):
    check_recurrent(reset, dense, per_neuron, CPU)


def test_recurrent_graded_and_surrogate():
    check_recurrent("zero", True, True, CPU, surrogate=SURROGATES[1], graded=1.5)


@pytest.mark.parametrize("reset,per_neuron,graded", SYNAPTIC)
def test_synaptic(reset, per_neuron, graded):
    check_synaptic(reset, per_neuron, graded, CPU)


def test_synaptic_surrogate():
    check_synaptic("subtract", True, 1.0, CPU, surrogate=SURROGATES[2])


@pytest.mark.parametrize("model,reset,detach,decay_input", SPIKINGJELLY)
def test_spikingjelly(model, reset, detach, decay_input):
    check_sj(model, reset, detach, decay_input, CPU)


@pytest.mark.parametrize("surrogate", SURROGATES, ids=lambda s: s.name)
def test_spikingjelly_surrogates(surrogate):
    check_sj("sj_lif", "hard", False, True, CPU, surrogate=surrogate)


@pytest.mark.parametrize("model,reset,detach,decay_input", [SPIKINGJELLY[0], SPIKINGJELLY[-1]])
def test_spikingjelly_scalar_parameters_and_scratch(model, reset, detach, decay_input):
    check_sj(model, reset, detach, decay_input, CPU, per_neuron=False)
    check_sj(model, reset, detach, decay_input, CPU, scratch=True)


@pytest.mark.parametrize("case", sorted(LSTM))
def test_lstm(case):
    check_lstm(case, CPU)
    check_lstm(case, CPU, surrogate=SURROGATES[1], scratch=True)


def test_lstm_tanh():
    """The kernels' ``tanh`` (from ``tl.exp``: the interpreter has no libdevice) within 2 float32 eps of the
    exact value, relative, over both of its branches, and 1 at large arguments (no overflow)."""
    from triton_tanh_kernel import apply_tanh

    x = torch.cat([torch.randn(4000, generator=torch.Generator().manual_seed(0)) * 3, torch.linspace(-1, 1, 4001),
                   torch.tensor([0.0, 1e-30, 0.625, -0.625, 30.0, -100.0])])
    out = torch.empty_like(x)
    apply_tanh[(-(-x.numel() // 256),)](x, out, x.numel(), BLOCK=256)
    exact = torch.tanh(x.double())
    assert ((out.double() - exact).abs() <= 2 * torch.finfo(torch.float32).eps * exact.abs()).all()
    assert out[-2:].tolist() == [1.0, -1.0]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_state(dtype):
    check_low_precision(dtype, CPU)
    check_sj_low_precision(dtype, CPU)
    check_lstm_low_precision(dtype, CPU)


def test_atan_is_the_default_case():
    assert ATAN.name == "atan"
