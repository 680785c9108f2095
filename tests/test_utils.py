"""snngraph.utils: per-network neuron reset, data_subset and valid_split (against snnTorch)."""

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, Subset, TensorDataset

from snngraph.utils import data_subset, reset, valid_split

snn = pytest.importorskip("snntorch")
snn_utils = pytest.importorskip("snntorch.utils")


class FakeNeuron(nn.Module):
    """Stands in for an snngraph.nn neuron: per-instance ``reset_hidden()``."""

    def __init__(self):
        super().__init__()
        self.mem = None
        self.resets = 0

    def forward(self, x):
        self.mem = x if self.mem is None else 0.5 * self.mem + x
        return (self.mem > 1).float()

    def reset_hidden(self):
        self.mem = None
        self.resets += 1


class Net(nn.Module):
    def __init__(self, neuron_a, neuron_b):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.lif = neuron_a
        self.block = nn.Sequential(nn.Linear(4, 4), nn.Sequential(neuron_b))

    def forward(self, x):
        return self.block(self.lif(self.fc(x)))


# ---------------------------------------------------------------- reset


def test_reset_calls_reset_hidden_on_nested_neurons_only_in_this_net():
    net, other = Net(FakeNeuron(), FakeNeuron()), Net(FakeNeuron(), FakeNeuron())
    x = torch.rand(2, 4)
    net(x), other(x)
    params = {k: v.clone() for k, v in net.state_dict().items()}
    reset(net)
    assert net.lif.mem is None and net.block[1][0].mem is None
    assert net.lif.resets == 1 and net.block[1][0].resets == 1
    assert other.lif.mem is not None and other.lif.resets == 0
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in params.items())
    reset(net.lif)  # a single neuron works too
    assert net.lif.resets == 2


SNNTORCH_NEURONS = {
    "Leaky": lambda: snn.Leaky(beta=0.9, learn_beta=True),
    "Synaptic": lambda: snn.Synaptic(alpha=0.8, beta=0.9),
    "Alpha": lambda: snn.Alpha(alpha=0.9, beta=0.8),
    "Lapicque": lambda: snn.Lapicque(beta=0.9),
    "RLeaky": lambda: snn.RLeaky(beta=0.9, linear_features=4),
    "RSynaptic": lambda: snn.RSynaptic(alpha=0.8, beta=0.9, linear_features=4),
    "SLSTM": lambda: snn.SLSTM(4, 4),
}


def _states(neuron):
    return {n: b.clone() for n, b in neuron.named_buffers(recurse=False) if n in neuron._non_persistent_buffers_set}


def _run(net):
    x = torch.rand(2, 4) * 3
    for _ in range(3):
        net.lif(x)
        net.block[1][0](x)


@pytest.mark.parametrize("kind", sorted(SNNTORCH_NEURONS))
def test_reset_zeros_each_snntorch_neuron_of_this_net_only(kind):
    make = SNNTORCH_NEURONS[kind]
    net, other = Net(make(), make()), Net(make(), make())
    _run(net), _run(other)
    kept = {k: v.clone() for k, v in net.state_dict().items()}  # params and persistent buffers
    other_states = _states(other.lif)
    reset(net)
    for neuron in (net.lif, net.block[1][0]):
        states = _states(neuron)
        assert states and all(s.shape == (2, 4) and not s.any() for s in states.values())
        assert all(s.grad_fn is None for s in states.values())
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in kept.items())
    assert all(torch.equal(s, _states(other.lif)[n]) for n, s in other_states.items())
    assert any(s.any() for s in other_states.values())


def test_reset_neuron_behaves_like_a_fresh_one():
    lif = snn.Leaky(beta=0.8)
    x = torch.rand(3, 4) * 2
    for _ in range(4):
        lif(x)
    reset(lif)
    fresh = snn.Leaky(beta=0.8)
    assert all(torch.equal(a, b) for a, b in zip(lif(x), fresh(x), strict=True))


def test_reset_delta_leaky_clears_its_state():
    net = nn.Sequential(snn.DeltaLeaky(delta_threshold=0.1, beta=0.9, init_hidden=True))
    net(torch.rand(2, 4))
    reset(net)
    assert net[0].mem is None and net[0].mem_prev is None


def test_snntorch_reset_reaches_other_nets_and_misses_nested_neurons(monkeypatch):
    monkeypatch.setattr(snn.SpikingNeuron, "instances", [])  # snnTorch's class-wide registry
    net, other = Net(snn.Leaky(beta=0.9), snn.Leaky(beta=0.9)), Net(snn.Leaky(beta=0.9), snn.Leaky(beta=0.9))
    _run(net), _run(other)
    snn_utils.reset(net)  # class-wide: zeros `other` too
    assert not other.lif.mem.any()
    nested, outside = nn.Sequential(nn.Sequential(snn.Leaky(beta=0.9))), snn.Leaky(beta=0.9)
    nested(torch.ones(1, 2)), outside(torch.ones(1, 2))
    snn_utils.reset(nested)  # looks at direct children only: misses the nested neuron
    assert nested[0][0].mem.any()
    reset(nested)
    assert not nested[0][0].mem.any() and outside.mem.any()


def test_reset_unaffected_by_neurons_elsewhere_that_snntorch_trips_on(monkeypatch):
    monkeypatch.setattr(snn.SpikingNeuron, "instances", [])
    snn.DeltaLeaky(delta_threshold=0.1, beta=0.9)  # a Leaky whose state is None until used
    net = nn.Sequential(snn.Leaky(beta=0.9, init_hidden=True))
    net(torch.rand(2, 3))
    with pytest.raises(AttributeError):
        snn_utils.reset(net)  # snnTorch resets every Leaky in the process
    reset(net)
    assert not net[0].mem.any()


def test_reset_mixed_net_and_stateless_modules():
    net = nn.Sequential(nn.Linear(4, 4), FakeNeuron(), nn.Sequential(snn.Leaky(beta=0.5, init_hidden=True)))
    net(torch.rand(2, 4))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    reset(net)
    assert net[1].mem is None and not net[2][0].mem.any()
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    plain = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    reset(plain)  # nothing to reset


def test_reset_errors():
    class ClassWide(nn.Module):
        @classmethod
        def reset_hidden(cls):
            pass

    with pytest.raises(TypeError, match="ClassWide.reset_hidden is a classmethod"):
        reset(nn.Sequential(ClassWide()))
    with pytest.raises(TypeError, match="net"):
        reset([FakeNeuron()])


# ---------------------------------------------------------------- datasets


class ArrayDataset(Dataset):
    """torchvision-style: ``.data`` and ``.targets`` with one row per sample."""

    def __init__(self, n=103, list_targets=False):
        self.data = torch.arange(n * 2).reshape(n, 2).float()
        targets = torch.arange(n) % 10
        self.targets = targets.tolist() if list_targets else targets

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i], self.targets[i]


@pytest.mark.parametrize("subset,idx", [(1, 0), (3, 0), (3, 2), (10, 4), (103, 102)])
def test_data_subset_torchvision_style_equals_snntorch(subset, idx):
    ref = snn_utils.data_subset(ArrayDataset(), subset, idx)
    ds = ArrayDataset()
    ours = data_subset(ds, subset, idx)
    assert ours is ds
    assert torch.equal(ours.data, ref.data) and torch.equal(ours.targets, ref.targets)
    assert len(ours) == (103 if subset == 1 else 103 // subset)


def test_data_subset_list_targets():
    with pytest.raises(TypeError):
        snn_utils.data_subset(ArrayDataset(list_targets=True), 10, 1)  # snnTorch fails
    ours = data_subset(ArrayDataset(list_targets=True), 10, 1)
    assert ours.targets == list(range(10)) and torch.equal(ours.data[:, 0], torch.arange(20.0, 40, 2))


@pytest.mark.parametrize("subset,idx", [(1, 0), (4, 0), (4, 3), (7, 2)])
def test_data_subset_any_dataset_is_an_interleaved_subset(subset, idx):
    ds = TensorDataset(torch.arange(30.0), torch.arange(30) % 3)
    ours = data_subset(ds, subset, idx)
    if subset == 1:
        assert ours is ds
        return
    assert isinstance(ours, Subset) and ours.dataset is ds
    assert ours.indices == list(range(idx, 30, subset))
    assert [int(ours[i][0]) for i in range(len(ours))] == list(range(idx, 30, subset))


@pytest.mark.parametrize(
    "args,error,match",
    [
        ((0,), ValueError, "subset"),
        ((3, 3), ValueError, "idx"),
        ((2.5,), TypeError, "subset"),
        ((3, -1), ValueError, "idx"),
    ],
)
def test_data_subset_errors(args, error, match):
    with pytest.raises(error, match=match):
        data_subset(ArrayDataset(), *args)
    with pytest.raises(TypeError, match="dataset"):
        data_subset(42, 2)


@pytest.mark.parametrize("split", [0.0, 0.1, 0.25, 1.0])
@pytest.mark.parametrize("seed", [0, 7])
def test_valid_split_torchvision_style_equals_snntorch(split, seed):
    ref_train, ref_val = snn_utils.valid_split(ArrayDataset(), ArrayDataset(), split, seed)
    train, val = valid_split(ArrayDataset(), ArrayDataset(), split, seed)
    for ours, ref in ((train, ref_train), (val, ref_val)):
        assert torch.equal(ours.data, ref.data) and torch.equal(ours.targets, ref.targets)
    assert len(val) == int(103 * split) and len(train) + len(val) == 103


@pytest.mark.parametrize("split,seed", [(0.2, 0), (0.5, 3)])
def test_valid_split_any_dataset_picks_snntorchs_indices(split, seed):
    ref_train, ref_val = snn_utils.valid_split(ArrayDataset(), ArrayDataset(), split, seed)
    train_ds = TensorDataset(torch.arange(103.0))
    val_ds = TensorDataset(-torch.arange(103.0))  # e.g. the same samples, other transforms
    train, val = valid_split(train_ds, val_ds, split, seed)
    assert isinstance(train, Subset) and train.dataset is train_ds and val.dataset is val_ds
    assert train.indices == (ref_train.data[:, 0] / 2).long().tolist()
    assert val.indices == (ref_val.data[:, 0] / 2).long().tolist()
    assert val[0][0] == -val.indices[0]


def test_valid_split_list_targets_and_errors():
    train, val = valid_split(ArrayDataset(list_targets=True), ArrayDataset(list_targets=True), 0.1)
    assert isinstance(train.targets, list) and len(val.targets) == 10
    ds = ArrayDataset()
    with pytest.raises(ValueError, match="ds_val"):
        valid_split(ds, ds, 0.1)
    with pytest.raises(ValueError, match="split"):
        valid_split(ArrayDataset(), ArrayDataset(), 1.5)
    with pytest.raises(ValueError, match="split"):
        valid_split(ArrayDataset(), ArrayDataset(), "0.1")
    with pytest.raises(ValueError, match="same samples"):
        valid_split(TensorDataset(torch.arange(10.0)), TensorDataset(torch.arange(9.0)), 0.2)


def test_reset_snngraph_nn_neurons():
    sgnn = pytest.importorskip("snngraph.nn")
    net = nn.Sequential(nn.Linear(4, 4), nn.Sequential(sgnn.Leaky(beta=0.9, init_hidden=True)))
    other = nn.Sequential(sgnn.Leaky(beta=0.9, init_hidden=True))
    x = torch.rand(2, 4) * 3
    for _ in range(3):
        net(x), other(x)
    reset(net)
    assert net[1][0].mem.shape == (2, 4) and not net[1][0].mem.any()
    assert other[0].mem.any()
