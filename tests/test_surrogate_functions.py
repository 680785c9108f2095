"""snnTorch's surrogate autograd classes (``sg.surrogate.ATan`` ...) against snnTorch 1.0.0's.

Forward spikes are compared exactly, gradients in float64 at 1e-8 relative (they agree bit for
bit). snnTorch returns float32 spikes, so its backward pass receives a float32 upstream gradient:
the upstream gradients here are dyadic numbers, exact in both dtypes.
"""

from __future__ import annotations

import types

import pytest
import snntorch.surrogate as snn_sg
import torch

import snngraph as sg
from snngraph import GraphError

CASES = {
    "ATan": (2.0,),
    "FastSigmoid": (25,),
    "Sigmoid": (5.0,),
    "Triangular": (0.5,),
    "Heaviside": (),
    "StraightThroughEstimator": (),
    "SpikeRateEscape": (2.0, 3.0),
    "StochasticSpikeOperator": (0.25, 0.5),
    "SparseFastSigmoid": (10.0, 0.5),
}


def _inputs() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    special = torch.tensor([0.0, -0.0, 1e-12, -1e-12, 1.0, 0.5, -0.5], dtype=torch.float64)
    return torch.cat([torch.randn(200, generator=gen, dtype=torch.float64) * 2, special])


def _upstream(n: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.randint(-16, 17, (n,), generator=gen).to(torch.float64) / 8


def _run(cls, x: torch.Tensor, *args):
    x = x.clone().requires_grad_(True)
    out = cls.apply(x, *args)
    torch.manual_seed(7)  # the stochastic operator draws its noise in the backward pass
    out.backward(_upstream(x.numel()).to(out.dtype))
    return out, x.grad


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b.to(a.dtype), rtol=1e-8, atol=0.0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_class_matches_snntorch(name: str) -> None:
    ours, theirs = getattr(sg.surrogate, name), getattr(snn_sg, name)
    spk, grad = _run(ours, _inputs(), *CASES[name])
    ref_spk, ref_grad = _run(theirs, _inputs(), *CASES[name])
    assert spk.dtype == torch.float64 and ref_spk.dtype == torch.float32
    assert torch.equal(spk, ref_spk.to(torch.float64))
    _close(grad, ref_grad)


@pytest.mark.parametrize("name", sorted(CASES))
def test_class_equals_the_factory(name: str) -> None:
    """``Cls.apply(x, *args)`` and the spec factory compute the same spikes and gradients."""
    factory = {"ATan": sg.surrogate.atan, "FastSigmoid": sg.surrogate.fast_sigmoid, "Sigmoid": sg.surrogate.sigmoid,
               "Triangular": sg.surrogate.triangular, "Heaviside": sg.surrogate.heaviside,
               "StraightThroughEstimator": sg.surrogate.straight_through_estimator,
               "SpikeRateEscape": sg.surrogate.spike_rate_escape, "StochasticSpikeOperator": sg.surrogate.SSO,
               "SparseFastSigmoid": sg.surrogate.SFS}[name]
    spec = factory(*CASES[name])
    spk, grad = _run(getattr(sg.surrogate, name), _inputs(), *CASES[name])
    x = _inputs().requires_grad_(True)
    out = spec(x)
    torch.manual_seed(7)
    out.backward(_upstream(x.numel()))
    assert torch.equal(spk, out)
    assert torch.equal(grad, x.grad)


def test_leaky_spike_operator_fixes_snntorchs_backward() -> None:
    """snnTorch's backward returns one gradient for two inputs; ours works and computes its formula."""
    x = _inputs().requires_grad_(True)
    with pytest.raises(RuntimeError, match="incorrect number of gradients"):
        snn_sg.LeakySpikeOperator.apply(x, 0.25).sum().backward()
    spk, grad = _run(sg.surrogate.LeakySpikeOperator, _inputs(), 0.25)
    out = snn_sg.LeakySpikeOperator.forward(types.SimpleNamespace(save_for_backward=lambda *t: None), _inputs(), 0.25)
    assert torch.equal(spk, out.to(torch.float64))
    ctx = types.SimpleNamespace(saved_tensors=(out,), slope=0.25)  # dyadic: snnTorch multiplies it by a float32 mask
    _close(grad, snn_sg.LeakySpikeOperator.backward(ctx, _upstream(out.numel())))


def test_custom_surrogate_matches_snntorch() -> None:
    seen = []

    def fn(input_, grad_input, spikes):
        seen.append(spikes.dtype)
        return grad_input * torch.exp(-input_.abs())

    spk, grad = _run(sg.surrogate.CustomSurrogate, _inputs(), fn)
    ref_spk, ref_grad = _run(snn_sg.CustomSurrogate, _inputs(), fn)
    assert torch.equal(spk, ref_spk.to(torch.float64))
    _close(grad, ref_grad)
    assert seen == [torch.float64, torch.float32]  # snngraph keeps the dtype, snnTorch does not


def test_spikes_keep_the_input_dtype_and_no_grad_needed() -> None:
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        x = torch.tensor([-1.0, 0.0, 2.0], dtype=dtype)
        out = sg.surrogate.ATan.apply(x, 2.0)
        assert out.dtype == dtype and out.tolist() == [0.0, 0.0, 1.0]


def test_usable_as_spike_grad_of_an_sg_nn_neuron() -> None:
    lif = sg.nn.Leaky(beta=0.5, spike_grad=sg.surrogate.StraightThroughEstimator.apply)
    x = torch.tensor([2.0, 0.5], requires_grad=True)
    spk, _ = lif(x)
    spk.sum().backward()
    assert spk.tolist() == [1.0, 0.0] and x.grad.tolist() == [1.0, 1.0]


def test_wrong_arguments_raise_a_type_error_that_is_a_graph_error() -> None:
    x = torch.zeros(3, requires_grad=True)
    for call in (lambda: sg.surrogate.ATan.apply(x), lambda: sg.surrogate.Heaviside.apply(x, 1.0),
                 lambda: sg.surrogate.CustomSurrogate.apply(x, 3.0)):
        with pytest.raises(TypeError) as info:
            call()
        assert isinstance(info.value, GraphError)
    with pytest.raises(AttributeError, match="NoSuchSurrogate"):
        sg.surrogate.NoSuchSurrogate  # noqa: B018


def test_every_snntorch_class_is_exposed() -> None:
    names = {n for n, v in vars(snn_sg).items() if isinstance(v, type) and issubclass(v, torch.autograd.Function)}
    assert names <= set(dir(sg.surrogate)) | set(sg.surrogate.__all__)
    assert names <= set(sg.surrogate.__all__)
