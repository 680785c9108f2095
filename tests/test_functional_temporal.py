"""Spike-time losses: values and gradients equal snnTorch's where snnTorch is right, and the
documented fixes where it is not."""

import pytest
import torch

import snngraph.functional as SG
from snngraph.functional.temporal import first_spike_time

SF = pytest.importorskip("snntorch.functional")

T, B, C = 8, 5, 4
REDUCTIONS = ["mean", "sum", "none"]


@pytest.fixture
def float64(monkeypatch):
    """Make snnTorch's label-to-time targets float64 too."""
    import snntorch.spikegen as snn_gen

    monkeypatch.setattr(snn_gen, "dtype", torch.float64)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _spikes(seed, p=0.25):
    gen = torch.Generator().manual_seed(seed)
    spk = (torch.rand(T, B, C, generator=gen, dtype=torch.float64) < p).double()
    spk[:, 0, 0] = 0  # one output never fires
    targets = torch.randint(0, C, (B,), generator=gen)
    return spk, targets


def _run(loss_fn, spk, targets):
    spk = spk.clone().requires_grad_(True)
    loss = loss_fn(spk, targets.clone())
    loss.sum().backward()
    return loss.detach(), spk.grad


def _assert_same(ref_fn, our_fn, spk, targets):
    ref_value, ref_grad = _run(ref_fn, spk, targets)
    value, grad = _run(our_fn, spk, targets)
    torch.testing.assert_close(value, ref_value.to(value.dtype), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-12)


def test_first_spike_time_and_its_sign_estimator_gradient():
    spk, _ = _spikes(0)
    ref_time = SF.loss.SpikeTime.FirstSpike.apply(spk, "cpu")
    assert torch.equal(first_spike_time(spk), ref_time)
    grad_out = torch.randn(B, C, dtype=torch.float64)

    def grad(fn):
        s = spk.clone().requires_grad_(True)
        (fn(s) * grad_out).sum().backward()
        return s.grad

    ref_grad = grad(lambda s: SF.loss.SpikeTime.FirstSpike.apply(s, "cpu"))
    assert torch.equal(grad(first_spike_time), ref_grad)
    assert first_spike_time(spk)[0, 0] == T - 1


# snnTorch's label-to-time targets are right when on < off, or on > off >= 0
@pytest.mark.parametrize("on,off", [(2, 5), (5, 1), (-3, -1), (0, 6)])
@pytest.mark.parametrize("tolerance", [0, 2])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_temporal_loss_equals_snntorch(float64, on, off, tolerance, reduction):
    spk, targets = _spikes(1)
    kw = dict(on_target=on, off_target=off, tolerance=tolerance, reduction=reduction)
    _assert_same(SF.mse_temporal_loss(**kw), SG.mse_temporal_loss(**kw), spk, targets)


@pytest.mark.parametrize("tolerance", [0, 1.5])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_temporal_loss_times_as_targets_equals_snntorch(tolerance, reduction):
    spk, _ = _spikes(2)
    times = torch.randint(-T, T, (B, C)).double()
    kw = dict(target_is_time=True, tolerance=tolerance, reduction=reduction)
    _assert_same(SF.mse_temporal_loss(**kw), SG.mse_temporal_loss(**kw), spk, times)
    before = times.clone()
    SG.mse_temporal_loss(**kw)(spk, times)
    assert torch.equal(times, before)  # snnTorch rewrites negative times in place


def test_mse_temporal_loss_default_targets_last_step_for_wrong_classes():
    spk, targets = _spikes(3)
    time = first_spike_time(spk)
    hot = torch.nn.functional.one_hot(targets, C).bool()
    expected = ((time - torch.where(hot, 0.0, T - 1.0)) / T) ** 2
    got = SG.mse_temporal_loss(reduction="none")(spk, targets)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)
    _, snn_targets = SF.loss.SpikeTime()(spk, targets)
    assert not snn_targets.any()  # snnTorch: every class aimed at step 0


def _synchronised_spikes():
    """Every output has the same train (the only case snnTorch's multi-spike handles)."""
    train = torch.tensor([0, 1, 0, 1, 1, 0, 0, 1], dtype=torch.float64)
    return train[:, None, None].expand(T, B, C).clone()


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_temporal_multi_spike_equals_snntorch_on_synchronised_spikes(float64, reduction):
    spk = _synchronised_spikes()
    targets = torch.tensor([0, 3, 1, 1, 2])
    kw = dict(on_target=[0, 2, 4], off_target=[5, 6, 7], multi_spike=True, reduction=reduction)
    _assert_same(SF.mse_temporal_loss(**kw), SG.mse_temporal_loss(**kw), spk, targets)
    times = torch.tensor([1.0, 3.0, 4.0])[:, None, None].expand(3, B, C)
    assert torch.equal(first_spike_time(spk, 3), times)


def test_multi_spike_consumes_only_each_outputs_own_spikes():
    spk = torch.zeros(6, 1, 2)
    spk[[0, 2], 0, 0] = 1
    spk[[2, 4], 0, 1] = 1
    times = first_spike_time(spk, 2)
    assert times[:, 0].tolist() == [[0, 2], [2, 4]]
    ref = SF.loss.SpikeTime.MultiSpike.apply(spk, 2, "cpu")
    assert ref[:, 0].tolist() != times[:, 0].tolist()  # snnTorch zeroes whole steps
    s = spk.clone().requires_grad_(True)
    first_spike_time(s, 3).sum().backward()  # third spike missing: both at step 5, grads add
    assert s.grad[5, 0].tolist() == [-1.0, -1.0]
    assert s.grad[0, 0, 0] == -1 and s.grad[4, 0, 1] == -1


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_temporal_weight_scales_each_sample_by_its_class(reduction):
    spk, targets = _spikes(4)
    weight = torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=torch.float64)
    with pytest.raises(RuntimeError):  # snnTorch multiplies (B, C) by (B,)
        SF.mse_temporal_loss(weight=weight, on_target=2, off_target=5)(spk, targets)
    plain = SG.mse_temporal_loss(reduction="none", on_target=2, off_target=5)(spk, targets)
    weighted = plain * weight[targets][:, None]
    expected = {"mean": weighted.mean(), "sum": weighted.sum(), "none": weighted}[reduction]
    got = SG.mse_temporal_loss(reduction=reduction, weight=weight, on_target=2, off_target=5)
    torch.testing.assert_close(got(spk, targets), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("inverse", ["negate", "reciprocal"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_ce_temporal_loss_equals_snntorch(float64, inverse, reduction, weighted):
    spk, targets = _spikes(5)
    weight = torch.tensor([0.5, 1.0, 2.0, 3.0]) if weighted else None
    kw = dict(inverse=inverse, reduction=reduction, weight=weight)
    _assert_same(SF.ce_temporal_loss(**kw), SG.ce_temporal_loss(**kw), spk, targets)


@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda: SG.ce_temporal_loss(inverse="log"), ValueError, "inverse"),
        (lambda: SG.mse_temporal_loss(multi_spike=True), TypeError, "on_target"),
        (lambda: SG.mse_temporal_loss(multi_spike=True, on_target=[1, 2], off_target=[3]), ValueError, "same"),
        (lambda: SG.mse_temporal_loss(target_is_time=True, weight=torch.ones(C)), ValueError, "weight"),
        (lambda: SG.mse_temporal_loss(reduction="max"), ValueError, "reduction"),
    ],
)
def test_bad_arguments_raise_naming_them(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_inputs_raise_naming_them():
    spk, targets = _spikes(6)
    with pytest.raises(ValueError, match="num_spikes"):
        first_spike_time(spk, 0)
    with pytest.raises(ValueError, match="spk_out"):
        first_spike_time(torch.zeros(0, 3))
    with pytest.raises(ValueError, match="spk_rec"):
        SG.ce_temporal_loss()(spk[0], targets)
    with pytest.raises(ValueError, match="targets"):
        SG.mse_temporal_loss()(spk, targets + C)
    with pytest.raises(TypeError, match="targets"):
        SG.mse_temporal_loss(target_is_time=True)(spk, [1, 2])
