"""Rate, count and membrane losses: values and gradients equal snnTorch's (float64, 1e-9)."""

import pytest
import torch

import snngraph.functional as SG

SF = pytest.importorskip("snntorch.functional")

T, B, C = 8, 5, 6  # T a power of two: snnTorch's 1/T is exact, so gradients compare at 1e-9
REDUCTIONS = ["mean", "sum", "none"]


@pytest.fixture
def float64(monkeypatch):
    """Make snnTorch compute in float64 too (it hard-codes float32 accumulators)."""
    import snntorch.functional.loss as snn_loss
    import snntorch.spikegen as snn_gen

    monkeypatch.setattr(snn_loss, "dtype", torch.float64)
    monkeypatch.setattr(snn_gen, "dtype", torch.float64)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _inputs(seed, binary=False, shape=(T, B, C)):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=gen, dtype=torch.float64)
    if binary:
        x = (x > 0.6).double()
    targets = torch.randint(0, shape[-1], (shape[1],), generator=gen)
    return x, targets


def _value_and_grad(loss_fn, x, targets, post=None):
    x = x.clone().requires_grad_(True)
    loss = loss_fn(x, targets)
    if post is not None:
        loss = post(loss)
    loss.sum().backward()
    return loss.detach(), x.grad


def _assert_same(ref_fn, our_fn, x, targets, ref_post=None):
    ref_value, ref_grad = _value_and_grad(ref_fn, x, targets, ref_post)
    value, grad = _value_and_grad(our_fn, x, targets)
    assert value.dtype == torch.float64
    if value.dim() == 0:  # snnTorch returns shape (1,) from some losses
        assert ref_value.numel() == 1
    else:
        assert value.shape == ref_value.shape
    torch.testing.assert_close(value, ref_value.reshape(value.shape), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-12)


def _weight(n=C):
    return torch.linspace(0.5, 2.0, n, dtype=torch.float64)


def _ref_post(reduction, weighted):
    """snnTorch returns the unreduced loss for weight + 'sum'; ours sums."""
    return (lambda loss: loss.sum()) if weighted and reduction == "sum" else None


def _ref_reduction(reduction, weighted):
    return "none" if weighted and reduction == "sum" else reduction


@pytest.mark.parametrize("cls", ["ce_rate_loss", "ce_count_loss", "ce_max_membrane_loss"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_losses_equal_snntorch(float64, cls, reduction, weighted):
    x, targets = _inputs(1)
    weight = _weight() if weighted else None
    ref = getattr(SF, cls)(reduction=_ref_reduction(reduction, weighted), weight=weight)
    ours = getattr(SG, cls)(reduction=reduction, weight=weight)
    _assert_same(ref, ours, x, targets, _ref_post(reduction, weighted))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_ce_count_population_code_equals_snntorch(float64, reduction, weighted):
    x, _ = _inputs(2, binary=True, shape=(T, B, 12))
    targets = torch.tensor([0, 2, 1, 1, 0])
    weight = _weight(3) if weighted else None
    ref = SF.ce_count_loss(
        population_code=True, num_classes=3, reduction=_ref_reduction(reduction, weighted), weight=weight
    )
    ours = SG.ce_count_loss(population_code=True, num_classes=3, reduction=reduction, weight=weight)
    _assert_same(ref, ours, x, targets, _ref_post(reduction, weighted))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_ce_rate_population_code_counts_groups_per_step(reduction):
    x, _ = _inputs(3, shape=(T, B, 12))
    targets = torch.tensor([0, 2, 1, 1, 0])
    with pytest.raises(TypeError):
        SF.ce_rate_loss(population_code=True, num_classes=3)(x, targets)  # snnTorch: needs weight
    groups = x.reshape(T, B, 3, 4).sum(-1)
    expected = SG.ce_rate_loss(reduction=reduction)(groups, targets)
    got = SG.ce_rate_loss(population_code=True, num_classes=3, reduction=reduction)(x, targets)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("rates", [(1, 0), (0.75, 0.25), (0.5, 0.5), (0.25, 0.75)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("population", [False, True])
def test_mse_count_loss_equals_snntorch(float64, rates, reduction, population):
    kw = dict(correct_rate=rates[0], incorrect_rate=rates[1], reduction=reduction)
    if population:
        kw.update(population_code=True, num_classes=3)
    x, targets = _inputs(4, binary=True)
    targets = targets % 3
    _assert_same(SF.mse_count_loss(**kw), SG.mse_count_loss(**kw), x, targets)


@pytest.mark.parametrize("on,off", [(1, 0), (1.25, 0.5), (0.5, 1.0), (2, 2)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_membrane_loss_equals_snntorch(float64, on, off, reduction):
    kw = dict(on_target=on, off_target=off, reduction=reduction)
    x, targets = _inputs(5)
    _assert_same(SF.mse_membrane_loss(**kw), SG.mse_membrane_loss(**kw), x, targets)


@pytest.mark.parametrize("cls", ["mse_count_loss", "mse_membrane_loss"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_weight_scales_each_sample_by_its_class(float64, cls, reduction):
    x, targets = _inputs(6)
    weight = _weight()
    with pytest.raises(RuntimeError):  # snnTorch multiplies (B, C) by (B,)
        getattr(SF, cls)(weight=weight)(x, targets)
    unweighted = getattr(SG, cls)(reduction="none")(x, targets)
    expected = unweighted * weight[targets][:, None]
    expected = {"mean": expected.mean(), "sum": expected.sum(), "none": expected}[reduction]
    got = getattr(SG, cls)(reduction=reduction, weight=weight)(x, targets)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)


def test_mse_membrane_negative_off_target_is_kept(float64):
    x, targets = _inputs(7)
    ours = SG.mse_membrane_loss(on_target=1, off_target=-1, reduction="none")(x, targets)
    target = torch.where(torch.nn.functional.one_hot(targets, C).bool(), 1.0, -1.0)
    torch.testing.assert_close(ours, ((x - target) ** 2).mean(0), rtol=1e-12, atol=0)
    snn = SF.mse_membrane_loss(on_target=1, off_target=-1, reduction="none")(x, targets)
    snn_target_zero = torch.where(torch.nn.functional.one_hot(targets, C).bool(), 1.0, 0.0)
    torch.testing.assert_close(snn, ((x - snn_target_zero) ** 2).mean(0), rtol=1e-12, atol=0)


def test_mse_membrane_time_varying_targets():
    x, _ = _inputs(8)
    target = torch.rand(T, B, C, dtype=torch.float64)
    got = SG.mse_membrane_loss(time_var_targets=True)(x, target)
    torch.testing.assert_close(got, ((x - target) ** 2).mean(), rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="targets"):
        SG.mse_membrane_loss(time_var_targets=True)(x, torch.tensor([0, 1, 2, 3, 4]))
    with pytest.raises(ValueError, match="weight"):
        SG.mse_membrane_loss(time_var_targets=True, weight=_weight())


def test_mse_count_target_is_not_lost_to_rounding():
    spk = torch.zeros(100, 1, 2)
    spk[:29, 0, 0] = 1  # 29 spikes = 100 * 0.29 on the correct class
    loss = SG.mse_count_loss(correct_rate=0.29, incorrect_rate=0)(spk, torch.tensor([0]))
    assert loss.item() == 0
    assert SF.mse_count_loss(correct_rate=0.29, incorrect_rate=0)(spk, torch.tensor([0])) > 0


def test_losses_return_scalars_in_input_dtype():
    x, targets = _inputs(9)
    for loss_fn in (SG.ce_rate_loss(), SG.mse_membrane_loss(), SG.ce_count_loss()):
        loss = loss_fn(x, targets)
        assert loss.shape == () and loss.dtype == torch.float64
    assert SG.ce_rate_loss().__name__ == "ce_rate_loss"


@pytest.mark.parametrize(
    "make,args,error,match",
    [
        (lambda: SG.ce_rate_loss(reduction="avg"), (), ValueError, "reduction"),
        (lambda: SG.ce_count_loss(weight=[1.0, 2.0]), (), TypeError, "weight"),
        (lambda: SG.ce_count_loss(population_code=True), (), ValueError, "num_classes"),
        (lambda: SG.mse_count_loss(correct_rate=1.5), (), ValueError, "correct_rate"),
        (lambda: SG.ce_rate_loss(), (torch.rand(B, C), torch.zeros(B).long()), ValueError, "spk_out"),
        (lambda: SG.ce_rate_loss(), (torch.rand(T, B, C), torch.zeros(B + 1).long()), ValueError, "targets"),
        (lambda: SG.ce_count_loss(), (torch.rand(T, B, C), torch.full((B,), C)), ValueError, "targets"),
        (
            lambda: SG.ce_count_loss(weight=torch.ones(3)),
            (torch.rand(T, B, C), torch.zeros(B).long()),
            ValueError,
            "weight",
        ),
        (
            lambda: SG.ce_count_loss(population_code=True, num_classes=4),
            (torch.rand(T, B, C), torch.zeros(B).long()),
            ValueError,
            "num_classes",
        ),
        (lambda: SG.ce_max_membrane_loss(), ([1.0], torch.zeros(B).long()), TypeError, "mem_out"),
    ],
)
def test_bad_arguments_raise_naming_them(make, args, error, match):
    with pytest.raises(error, match=match):
        make()(*args)
