"""Accuracy and the L1 spike regulariser against snnTorch."""

import pytest
import torch

import snngraph.functional as SG

SF = pytest.importorskip("snntorch.functional")


def _spikes(seed, shape=(10, 16, 6), p=0.3):
    gen = torch.Generator().manual_seed(seed)
    spk = (torch.rand(shape, generator=gen) < p).float()
    targets = torch.randint(0, shape[-1], (shape[1],), generator=gen)
    return spk, targets


@pytest.mark.parametrize("seed", range(5))
def test_accuracy_rate_equals_snntorch(seed):
    spk, targets = _spikes(seed)
    ours = SG.accuracy_rate(spk, targets)
    assert isinstance(ours, float) and ours == SF.accuracy_rate(spk, targets)


@pytest.mark.parametrize("seed", range(5))
def test_accuracy_rate_population_code_equals_snntorch(seed):
    spk, _ = _spikes(seed, shape=(10, 16, 12))
    targets = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(seed))
    ours = SG.accuracy_rate(spk, targets, population_code=True, num_classes=3)
    assert ours == SF.accuracy_rate(spk, targets, population_code=True, num_classes=3)


@pytest.mark.parametrize("seed", range(5))
def test_accuracy_temporal_equals_snntorch(seed):
    spk, targets = _spikes(seed, p=0.1)
    ours = SG.accuracy_temporal(spk, targets)
    assert isinstance(ours, float) and ours == SF.accuracy_temporal(spk, targets)


def test_accuracy_known_values():
    spk = torch.zeros(4, 2, 3)
    spk[:, 0, 2] = 1  # sample 0: class 2 fires every step
    spk[3, 1, 0] = 1
    spk[1, 1, 1] = 1  # sample 1: class 1 fires first, class 0 and 1 fire once each
    assert SG.accuracy_rate(spk, torch.tensor([2, 0])) == 1.0
    assert SG.accuracy_temporal(spk, torch.tensor([2, 1])) == 1.0
    assert SG.accuracy_temporal(spk, torch.tensor([0, 0])) == 0.0


def test_accuracy_errors():
    spk, targets = _spikes(0)
    with pytest.raises(ValueError, match="num_classes"):
        SG.accuracy_rate(spk, targets, population_code=True)
    with pytest.raises(ValueError, match="num_classes"):
        SG.accuracy_rate(spk, targets, population_code=True, num_classes=4)
    with pytest.raises(ValueError, match="targets"):
        SG.accuracy_temporal(spk, targets[:3])
    with pytest.raises(ValueError, match="spk_out"):
        SG.accuracy_rate(spk[0], targets)


def test_l1_rate_sparsity_equals_snntorch():
    spk = torch.rand(5, 3, 4, dtype=torch.float64, requires_grad=True)
    for lam in (1e-5, 0.3):
        ours, ref = SG.l1_rate_sparsity(lam), SF.l1_rate_sparsity(Lambda=lam)
        assert torch.equal(ours(spk), ref(spk))
        (grad,) = torch.autograd.grad(ours(spk), spk)
        assert torch.equal(grad, torch.full_like(spk, lam))
    assert SG.l1_rate_sparsity().Lambda == 1e-5
    with pytest.raises(TypeError, match="spk_out"):
        SG.l1_rate_sparsity()([1.0])
