"""Surrogates against snnTorch 1.0.0: signatures and defaults, forward spikes, backward gradients.

Gradients are compared bit for bit in float64. snnTorch returns float32 spikes, so the gradient
it receives is rounded to float32 and some formulas multiply it in float32 (``grad * slope``);
the upstream gradients here are dyadic numbers that survive both roundings exactly.
"""

from __future__ import annotations

import inspect
import types

import pytest
import snntorch.surrogate as snn_sg
import torch

import snngraph as sg
from snngraph import GraphError
from snngraph.ir.surrogate import SPIKINGJELLY_SURROGATES
from snngraph.runtimes.torch.surrogates import apply_surrogate
from snngraph.surrogate import SURROGATES, Surrogate, from_spec

NON_DEFAULT = {
    "atan": {"alpha": 3.5},
    "fast_sigmoid": {"slope": 10},
    "sigmoid": {"slope": 5},
    "triangular": {"threshold": 0.5},
    "heaviside": {},
    "straight_through_estimator": {},
    "spike_rate_escape": {"beta": 2, "slope": 3},
    "SSO": {"mean": 0.25, "variance": 0.5},
    "SFS": {"slope": 10, "B": 0.5},
}
RUNNABLE = sorted(NON_DEFAULT)  # every snnTorch surrogate but LSO, which raises in snnTorch


def _inputs(seed: int = 0) -> torch.Tensor:
    """Random float64 membrane shifts, with exact zeros, tiny values and the SRE/SFS kinks."""
    gen = torch.Generator().manual_seed(seed)
    special = torch.tensor([0.0, -0.0, 1e-300, -1e-300, 1e-12, -1e-12, 1.0, 0.5, -0.5, 5e-324])
    return torch.cat([torch.randn(300, generator=gen, dtype=torch.float64) * 2, special])


def _dyadic_grad(n: int, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(-16, 17, (n,), generator=gen).to(torch.float64) / 8


def _forward_backward(fn, x: torch.Tensor, g: torch.Tensor, seed: int = 7):
    x = x.clone().requires_grad_(True)
    out = fn(x)
    torch.manual_seed(seed)
    out.backward(g.to(out.dtype))
    return out.detach(), x.grad


@pytest.mark.parametrize("name", sorted(set(SURROGATES) - set(SPIKINGJELLY_SURROGATES)))
def test_factory_signature_matches_snntorch(name):
    ours, theirs = inspect.signature(SURROGATES[name]), inspect.signature(getattr(snn_sg, name))
    assert [(p.name, p.default) for p in ours.parameters.values()] == [
        (p.name, p.default) for p in theirs.parameters.values()
    ]


def test_custom_surrogate_signature_matches_snntorch():
    ours = inspect.signature(sg.surrogate.custom_surrogate).parameters
    assert list(ours) == list(inspect.signature(snn_sg.custom_surrogate).parameters)


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_spec_holds_factory_arguments_in_order(name):
    spec = SURROGATES[name]()
    defaults = [(p.name, float(p.default)) for p in inspect.signature(SURROGATES[name]).parameters.values()]
    assert spec == Surrogate(name, tuple(defaults))
    assert from_spec(name, spec.params) == spec


@pytest.mark.parametrize("kwargs", [{}, "non_default"], ids=["defaults", "non_default"])
@pytest.mark.parametrize("name", RUNNABLE)
def test_forward_and_backward_equal_snntorch(name, kwargs):
    kwargs = NON_DEFAULT[name] if kwargs == "non_default" else kwargs
    x = _inputs()
    g = _dyadic_grad(x.numel())
    out, grad = _forward_backward(SURROGATES[name](**kwargs), x, g)
    ref_out, ref_grad = _forward_backward(getattr(snn_sg, name)(**kwargs), x, g)
    assert out.dtype == torch.float64
    assert torch.equal(out, ref_out.to(torch.float64))
    assert out.sum() > 0 and (out == 0).sum() > 0
    assert torch.equal(grad, ref_grad)


def test_sso_noise_follows_torch_seed():
    x, g = _inputs(), _dyadic_grad(310)
    _, a = _forward_backward(sg.surrogate.SSO(), x, g, seed=1)
    _, b = _forward_backward(sg.surrogate.SSO(), x, g, seed=2)
    below = x <= 0
    assert not torch.equal(a[below], b[below])
    assert torch.equal(a[~below], b[~below])


def test_lso_is_broken_in_snntorch_and_works_here():
    with pytest.raises(TypeError):
        snn_sg.LSO()(torch.ones(2, requires_grad=True))
    x, g = _inputs(), _dyadic_grad(310)
    out, grad = _forward_backward(sg.surrogate.LSO(slope=0.25), x, g)
    spikes = (x > 0).to(torch.float64)
    # snnTorch's LeakySpikeOperator.backward formula, called directly with its context
    ctx = types.SimpleNamespace(saved_tensors=(spikes,), slope=0.25)
    assert torch.equal(grad, snn_sg.LeakySpikeOperator.backward(ctx, g))
    assert torch.equal(out, spikes)
    assert torch.equal(grad, torch.where(x > 0, g, 0.25 * g))


def test_custom_surrogate_calling_convention_matches_snntorch():
    calls = []

    def fast_sigmoid_grad(input_, grad_input, spikes):
        calls.append((input_, grad_input, spikes))
        return grad_input / (25 * torch.abs(input_) + 1.0) ** 2

    x, g = _inputs(), _dyadic_grad(310)
    out, grad = _forward_backward(sg.surrogate.custom_surrogate(fast_sigmoid_grad), x, g)
    ref_out, ref_grad = _forward_backward(snn_sg.custom_surrogate(fast_sigmoid_grad), x, g)
    assert torch.equal(out, ref_out.to(torch.float64)) and torch.equal(grad, ref_grad)
    (ours_x, ours_g, ours_s), (theirs_x, theirs_g, theirs_s) = calls
    assert torch.equal(ours_x, theirs_x) and torch.equal(ours_g, theirs_g.to(torch.float64))
    assert torch.equal(ours_s, theirs_s.to(torch.float64))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_spike_keeps_input_dtype_with_and_without_grad(dtype):
    x = torch.tensor([-1.0, 0.0, 0.5, 2.0], dtype=dtype)
    with_grad = sg.surrogate.atan()(x.clone().requires_grad_(True))
    assert with_grad.dtype == dtype and with_grad.requires_grad
    plain = sg.surrogate.atan()(x)
    assert plain.dtype == dtype and not plain.requires_grad
    assert torch.equal(plain, with_grad.detach())
    assert plain.tolist() == [0.0, 0.0, 1.0, 1.0]


def test_no_grad_mode_skips_autograd():
    x = torch.randn(5, requires_grad=True)
    with torch.no_grad():
        out = sg.surrogate.sigmoid()(x)
    assert not out.requires_grad and torch.equal(out, (x > 0).to(x.dtype))


def test_text_form_and_equality():
    assert str(sg.surrogate.atan()) == "atan(alpha=2.0)"
    assert str(sg.surrogate.SFS(slope=5)) == "SFS(slope=5.0, B=1.0)"
    assert sg.surrogate.fast_sigmoid(25) == sg.surrogate.fast_sigmoid(slope=25.0)
    assert sg.surrogate.fast_sigmoid(10) != sg.surrogate.fast_sigmoid()
    assert hash(sg.surrogate.atan()) == hash(sg.surrogate.atan())


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("tanh", (), "unknown surrogate 'tanh'"),
        ("custom", (), "custom"),
        ("atan", (("slope", 2.0),), "atan"),
    ],
)
def test_from_spec_errors_name_the_surrogate(name, params, match):
    with pytest.raises(GraphError, match=match):
        from_spec(name, params)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "steep", None])
def test_non_numeric_or_non_finite_parameters_are_rejected(bad):
    with pytest.raises(GraphError, match="surrogate fast_sigmoid: slope"):
        sg.surrogate.fast_sigmoid(slope=bad)


def test_custom_needs_a_callable():
    with pytest.raises(GraphError, match="custom_surrogate"):
        sg.surrogate.custom_surrogate(3)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (Surrogate("erfc"), "unknown surrogate 'erfc'"),
        (Surrogate("atan", (("slope", 2.0),)), "'atan' takes parameters"),
        (Surrogate("custom"), "custom"),
    ],
)
def test_apply_rejects_malformed_specs(spec, match):
    with pytest.raises(GraphError, match=match):
        apply_surrogate(spec, torch.zeros(3))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sigmoid_is_finite_where_snntorch_overflows_to_nan(dtype):
    """snnTorch's sigmoid gradient computes ``inf/inf`` far below threshold; here those entries are
    the derivative's value (~0) and every other entry is snnTorch's bit for bit."""
    x = torch.linspace(-40.0, 2.0, 4001, dtype=dtype)
    g = torch.ones_like(x)
    _, grad = _forward_backward(sg.surrogate.sigmoid(), x, g)
    _, ref = _forward_backward(snn_sg.sigmoid(), x, g)
    ref = ref.to(dtype)
    assert torch.isnan(ref).any()  # the snnTorch bug this works around
    assert torch.isfinite(grad).all()
    finite = ~torch.isnan(ref)
    assert torch.equal(grad[finite], ref[finite])
    slope = 25.0
    s = torch.sigmoid(slope * x[~finite])
    torch.testing.assert_close(grad[~finite], slope * s * (1 - s), rtol=0, atol=1e-30)
