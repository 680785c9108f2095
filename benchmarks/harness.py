"""What the benchmarks share: the networks' synapses, the data, the training step, interleaved timing
and the JSON output (``train_step.py``, ``gpu.py``, ``compile.py``; imported with the benchmarks'
folder on ``sys.path``)."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn


def add_synapses(net: nn.Module, kind: str, sizes: tuple, first_width: int | None = None) -> None:
    """The benchmark's synapses as ``net``'s attributes, created in this order (the seed fixes their weights):
    ``conv1, conv2, fc1`` for ``kind == "conv"`` (1x28x28 input, 5x5 kernels, each followed by a 2x2 pool),
    else ``fc1, fc2`` of ``sizes = (n_in, hidden, out)``, ``fc1`` ``first_width`` wide if given."""
    if kind == "conv":
        c_in, c1, c2, out = sizes
        net.conv1, net.conv2, net.fc1 = nn.Conv2d(c_in, c1, 5), nn.Conv2d(c1, c2, 5), nn.Linear(c2 * 4 * 4, out)
    else:
        n_in, hid, out = sizes
        net.fc1, net.fc2 = nn.Linear(n_in, hid if first_width is None else first_width), nn.Linear(hid, out)


def make_data(kind: str, sizes: tuple, steps: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random input spikes (T, B, ...) at 30 % and random class targets (B,)."""
    shape = (1, 28, 28) if kind == "conv" else (sizes[0],)
    x = (torch.rand(steps, batch, *shape) < 0.3).float()
    return x, torch.randint(0, sizes[-1], (batch,))


def training_step(net: nn.Module, x: torch.Tensor, target: torch.Tensor) -> Callable[[], None]:
    """One forward + cross-entropy on the summed output membrane + backward + Adam step, as a closure."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def train_step():
        out = net(x)
        loss = nn.functional.cross_entropy(out["mem"].sum(0), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return train_step


def interleaved_samples(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each function, ``repeats`` rounds of A, B, A, B, ... (no warm-up)."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return samples


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each function: one warm-up call each, then A, B, A, B, ..."""
    for fn in fns.values():
        fn()  # warm-up
    return {name: statistics.median(s) for name, s in interleaved_samples(fns, repeats).items()}


def save_json(path: str | None, results: dict) -> None:
    """Also write ``results`` to ``path`` (the benchmarks' ``--json``), if given."""
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=2)
