"""Utilities with snnTorch 1.0.0's names: reset neuron state, subset and split datasets.

``reset`` works on snngraph's per-step neurons and on snnTorch's, one network at a time (no
global registry). ``data_subset`` and ``valid_split`` keep snnTorch's behaviour on
torchvision-style datasets (``.data`` / ``.targets`` arrays, changed in place) and also accept
any ``torch.utils.data.Dataset``, returning ``Subset`` views.
"""

from __future__ import annotations

import inspect
import numbers
import operator
import sys

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, Subset

__all__ = ["data_subset", "reset", "valid_split"]


def _snntorch_neuron_base() -> type | None:
    """snnTorch's ``SpikingNeuron``, if snnTorch has been imported (never imports it)."""
    module = sys.modules.get("snntorch._neurons.neurons")
    return getattr(module, "SpikingNeuron", None)


def _reset_snntorch_neuron(neuron: nn.Module) -> None:
    """Zero one snnTorch neuron's state, leaving every other instance alone."""
    if callable(getattr(type(neuron), "reset_mem", None)):
        neuron.reset_mem()  # per-instance in snnTorch 1.0.0: zeros mem / syn / spk ...
        return
    # neurons without reset_mem keep their state in non-persistent buffers
    for name in getattr(neuron, "_non_persistent_buffers_set", ()):
        value = neuron._buffers.get(name)
        if isinstance(value, torch.Tensor):
            setattr(neuron, name, torch.zeros_like(value))


def _defines_instance_reset(module: nn.Module) -> bool:
    """Whether ``module``'s class defines a per-instance ``reset_hidden()``."""
    attr = inspect.getattr_static(type(module), "reset_hidden", None)
    if attr is None:
        return False
    if isinstance(attr, classmethod | staticmethod):
        raise TypeError(
            f"{type(module).__name__}.reset_hidden is a {type(attr).__name__}, which "
            "cannot reset a single instance; snngraph.utils.reset resets only the "
            "neurons inside the network it is given"
        )
    return callable(attr)


def reset(net: nn.Module) -> None:
    """Reset the hidden state of every spiking neuron inside ``net`` (nested modules too).

    snngraph neurons (any module whose class defines an instance method ``reset_hidden``) have
    it called; snnTorch neurons have their own state tensors (``mem``, ``syn``, ``spk``, ...)
    set to zeros and detached. Nothing else changes: parameters, buffers such as ``beta`` and
    ``threshold``, and neurons of other networks are left alone. Compiled snngraph modules are
    stateless and need no reset.

    Args:
        net: The network (or a single neuron).

    Differs from snnTorch: ``snntorch.utils.reset`` looks only at the direct children of
    ``net`` and then resets every instance of those classes in the process, including neurons
    of other networks, through a class-wide registry.
    """
    if not isinstance(net, nn.Module):
        raise TypeError(f"`net` must be a torch.nn.Module, got {type(net).__name__}")
    snntorch_base = _snntorch_neuron_base()
    for module in net.modules():
        if snntorch_base is not None and isinstance(module, snntorch_base):
            _reset_snntorch_neuron(module)
        elif _defines_instance_reset(module):
            module.reset_hidden()


def _index(name: str, value: object, low: int, high: int | None = None) -> int:
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"`{name}` must be an integer, got {value!r}") from None
    if number < low or (high is not None and number >= high):
        bound = f"[{low}, {high - 1}]" if high is not None else f">= {low}"
        raise ValueError(f"`{name}` must be {bound}, got {number}")
    return number


def _has_arrays(dataset: object) -> bool:
    """Whether ``dataset`` is torchvision-style: ``.data`` and ``.targets`` with one row per
    sample."""
    data, targets = getattr(dataset, "data", None), getattr(dataset, "targets", None)
    if data is None or targets is None:
        return False
    try:
        return len(data) == len(targets) == len(dataset)
    except TypeError:
        return False


def _take(values, indices: np.ndarray):
    """Rows ``indices`` of a tensor, array, list or tuple, keeping its type."""
    if isinstance(values, torch.Tensor):
        return values[torch.as_tensor(indices, dtype=torch.long, device=values.device)]
    if isinstance(values, list | tuple):
        return type(values)(values[i] for i in indices.tolist())
    return values[indices]


def _check_dataset(name: str, dataset: object) -> None:
    if not isinstance(dataset, Dataset) and not hasattr(dataset, "__getitem__"):
        raise TypeError(f"`{name}` must be a torch.utils.data.Dataset, got {type(dataset).__name__}")
    try:
        len(dataset)
    except TypeError:
        raise TypeError(f"`{name}` must have a length (a map-style dataset)") from None


def data_subset(dataset, subset, idx=0):
    """Keep the ``idx``-th of ``subset`` equal parts of ``dataset``.

    A torchvision-style dataset (``.data`` and ``.targets``) is changed in place to the
    contiguous block ``[idx * n, (idx + 1) * n)`` with ``n = len // subset``, as in snnTorch.
    Any other map-style dataset gives a ``torch.utils.data.Subset`` of every ``subset``-th
    sample from ``idx`` (interleaved rather than contiguous, so that a dataset stored sorted by
    class keeps every class).

    Args:
        dataset: The dataset.
        subset: Factor to reduce the dataset by (1 keeps it whole).
        idx: Which part, in ``[0, subset)``.

    Returns:
        The reduced dataset: ``dataset`` itself (torchvision-style) or a ``Subset``.

    Differs from snnTorch: list-valued ``.data`` / ``.targets`` (CIFAR's targets) work
    (snnTorch fails indexing a list with an array).
    """
    _check_dataset("dataset", dataset)
    subset = _index("subset", subset, 1)
    idx = _index("idx", idx, 0, subset)
    if subset == 1:
        return dataset
    if _has_arrays(dataset):
        step = len(dataset.data) // subset
        rows = np.arange(step * idx, step * (idx + 1))
        dataset.data, dataset.targets = _take(dataset.data, rows), _take(dataset.targets, rows)
        return dataset
    return Subset(dataset, list(range(idx, len(dataset), subset)))


def valid_split(ds_train, ds_val, split, seed=0):
    """Split ``ds_train`` randomly into training and validation parts.

    ``int(len(ds_train) * split)`` samples go to validation, chosen exactly as snnTorch does
    (numpy ``default_rng(seed)``), so the same seed gives the same split. A torchvision-style
    pair (``.data`` / ``.targets``) is changed in place as in snnTorch: ``ds_val`` (a second
    instance of the training set, e.g. with evaluation transforms) receives the validation rows.
    Any other map-style pair gives ``Subset(ds_train, train_indices)`` and
    ``Subset(ds_val, val_indices)``; ``ds_val`` must then hold the same samples as
    ``ds_train`` (same length), e.g. another instance with different transforms.

    Args:
        ds_train: Training set.
        ds_val: A second instance of the training set, to become the validation set.
        split: Fraction of samples for validation, in [0, 1].
        seed: Seed of the split.

    Returns:
        ``(train, validation)``.

    Differs from snnTorch: finding the validation indices is linear instead of quadratic
    (same indices, same order); list-valued ``.data`` / ``.targets`` work; passing the same
    object twice raises instead of returning two training sets.
    """
    _check_dataset("ds_train", ds_train)
    _check_dataset("ds_val", ds_val)
    if isinstance(split, bool) or not isinstance(split, numbers.Real) or not 0 <= split <= 1:
        raise ValueError(f"`split` must be a fraction in [0, 1], got {split!r}")
    n = len(ds_train)
    n_train = n - int(n * split)
    train_idx = np.random.default_rng(seed=seed).choice(n, size=n_train, replace=False)
    keep = np.ones(n, dtype=bool)
    keep[train_idx] = False
    val_idx = np.flatnonzero(keep)
    if _has_arrays(ds_train):
        if ds_val is ds_train:
            raise ValueError("`ds_val` must be a separate instance of the training set, not `ds_train` itself")
        data, targets = ds_train.data, ds_train.targets
        ds_val.data, ds_val.targets = _take(data, val_idx), _take(targets, val_idx)
        ds_train.data, ds_train.targets = _take(data, train_idx), _take(targets, train_idx)
        return ds_train, ds_val
    if len(ds_val) != n:
        raise ValueError(f"`ds_val` must hold the same samples as `ds_train` (length {n}), got length {len(ds_val)}")
    return Subset(ds_train, train_idx.tolist()), Subset(ds_val, val_idx.tolist())
