"""state_quant: the same levels and the same quantised states as snnTorch, STE gradient."""

import itertools

import pytest
import torch

from snngraph.functional import quant as SQ
from snngraph.functional import state_quant

snn_quant = pytest.importorskip("snntorch.functional.quant")

OPTIONS = dict(
    num_bits=[1, 2, 3, 4, 5, 6, 7, 8],
    uniform=[True, False],
    thr_centered=[True, False],
    threshold=[0.5, 5],
    lower_limit=[0, 0.5],
    upper_limit=[0, 0.2],
    multiplier=[None, 0.8],
)


def _probe_values(levels):
    """Random states, the levels themselves, midpoints (ties) and values out of range."""
    mid = (levels[1:] + levels[:-1]) / 2 if levels.numel() > 1 else levels
    spread = float(levels.max() - levels.min()) + 1.0
    rand = (torch.rand(200, generator=torch.Generator().manual_seed(0)) - 0.5) * 3 * spread
    return torch.cat((rand, levels, mid, levels + 1e-7, levels - 1e-7, torch.tensor([-1e3, 1e3])))


def test_levels_and_quantised_states_equal_snntorch_for_every_option():
    for combo in itertools.product(*OPTIONS.values()):
        kw = dict(zip(OPTIONS, combo, strict=True))
        if kw["uniform"] and (kw["thr_centered"] or kw["multiplier"]):
            continue  # uniform levels ignore both
        ours = state_quant(**kw)
        ref = snn_quant.state_quant(**kw)
        ref_levels = ref.__closure__[0].cell_contents
        assert torch.equal(ours.levels, ref_levels), kw
        x = _probe_values(ours.levels).reshape(1, -1)
        assert torch.equal(ours(x), ref(x)), kw


def test_quantiser_keeps_dtype_and_passes_gradient_straight_through():
    q = state_quant(num_bits=4, threshold=2)
    x = torch.linspace(-3, 3, 40, dtype=torch.float64).reshape(4, 10).requires_grad_(True)
    y = q(x)
    assert y.dtype == torch.float64 and y.shape == x.shape
    assert torch.equal(y.detach(), snn_quant.state_quant(num_bits=4, threshold=2)(x).double())
    (y * torch.arange(40.0, dtype=torch.float64).reshape(4, 10)).sum().backward()
    assert torch.equal(x.grad, torch.arange(40.0, dtype=torch.float64).reshape(4, 10))
    assert set(y.detach().unique().tolist()) <= set(q.levels.double().tolist())


def test_quantiser_works_as_an_snntorch_state_quant():
    snn = pytest.importorskip("snntorch")
    lif = snn.Leaky(beta=0.5, threshold=1.0, state_quant=state_quant(num_bits=3))
    _, mem = lif(torch.rand(2, 5), torch.zeros(2, 5))
    assert set(mem.unique().tolist()) <= set(lif.state_quant.levels.tolist())


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(num_bits=0), ValueError, "num_bits"),
        (dict(num_bits=2.5), TypeError, "num_bits"),
        (dict(threshold=0), ValueError, "threshold"),
        (dict(upper_limit=-0.1), ValueError, "upper_limit"),
        (dict(uniform=False, multiplier=0), ValueError, "multiplier"),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, error, match):
    with pytest.raises(error, match=match):
        state_quant(**kwargs)
    with pytest.raises(TypeError, match="Tensor"):
        SQ.state_quant()([0.5])
