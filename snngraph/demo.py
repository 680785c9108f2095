"""``snngraph demo``: train a small spiking network on handwritten digits, export it, check it.

The whole snngraph workflow on a real dataset that ships with scikit-learn (8x8 digits, no
download): rate-encode the images into spike trains with :mod:`snngraph.spikegen`, declare a
64-128-10 leaky integrate-and-fire network with the builder, compile it, train it with Adam and
a progress bar, measure held-out accuracy, export the trained graph to ONNX, run the export in
onnxruntime and compare it with the trained module, and draw the pictures a person looks at.

Everything is seeded: the same arguments give the same numbers on the same machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import snngraph as sg

NUM_STEPS = 25
HIDDEN = 128
BETA = 0.9
LEARNING_RATE = 5e-3
BATCH_SIZE = 64
EPOCHS = 20
TARGET_ACCURACY = 0.93
QUICK_EPOCHS = 1
QUICK_TRAIN_SAMPLES = 256


@dataclass
class Digits:
    """The digits split into training and held-out sets: images in [0, 1] and class labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@dataclass
class Parity:
    """How the onnxruntime run of the export compares with the trained module."""

    spikes_equal: bool
    spike_mismatches: int
    spike_total: int
    max_abs_mem_diff: float
    max_abs_mem: float = 0.0

    def __str__(self) -> str:
        verdict = "spikes equal" if self.spikes_equal else f"{self.spike_mismatches} spikes differ"
        return (f"{verdict} ({self.spike_total} spike values compared), max |membrane difference| "
                f"{self.max_abs_mem_diff:.2e} (membranes up to {self.max_abs_mem:.1f})")


@dataclass
class DemoResult:
    """What :func:`run` measured and wrote."""

    accuracy: float
    parity: Parity
    seconds: float
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)


def load_digits(seed: int = 0, test_fraction: float = 0.2) -> Digits:
    """scikit-learn's bundled 8x8 digits scaled to [0, 1], split (stratified, seeded) 80/20."""
    from sklearn.datasets import load_digits as _load
    from sklearn.model_selection import train_test_split

    x, y = _load(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x / 16.0, y, test_size=test_fraction, random_state=seed, stratify=y)
    f32, i64 = torch.float32, torch.long
    return Digits(torch.tensor(x_tr, dtype=f32), torch.tensor(y_tr, dtype=i64),
                  torch.tensor(x_te, dtype=f32), torch.tensor(y_te, dtype=i64))


def build_graph(hidden: int = HIDDEN, beta: float = BETA) -> sg.Graph:
    """The demo network: 64 inputs -> linear -> leaky (hidden) -> linear -> leaky (10 classes).

    Outputs: ``spk`` (class spikes), ``mem`` (class membranes) and ``hidden`` (hidden spikes,
    drawn as a raster).
    """
    g = sg.Graph("digits")
    x = g.input("x", shape=(64,))
    hid = g.leaky(g.linear(x, hidden, name="fc1"), beta=beta, name="lif1")
    out = g.leaky(g.linear(hid, 10, name="fc2"), beta=beta, name="lif2")
    g.output("spk", out)
    g.output("mem", out.mem)
    g.output("hidden", hid)
    return g


def encode(images: torch.Tensor, num_steps: int = NUM_STEPS) -> torch.Tensor:
    """Rate-code images ``(B, 64)`` into spike trains ``(num_steps, B, 64)``."""
    return sg.spikegen.rate(images, num_steps=num_steps)


def train(net: torch.nn.Module, data: Digits, epochs: int, num_steps: int = NUM_STEPS, lr: float = LEARNING_RATE,
          batch_size: int = BATCH_SIZE, seed: int = 0, progress: bool = True) -> list[float]:
    """Train ``net`` with Adam on the cross entropy of the output spikes at every step.

    Returns:
        The mean training loss of each epoch.
    """
    from tqdm.auto import tqdm

    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = sg.functional.ce_rate_loss()
    order = torch.Generator().manual_seed(seed)
    n = len(data.x_train)
    batches = (n + batch_size - 1) // batch_size
    losses: list[float] = []
    net.train()
    with tqdm(total=epochs * batches, desc="training", unit="batch", disable=not progress, mininterval=0.5) as bar:
        for epoch in range(epochs):
            perm = torch.randperm(n, generator=order)
            total = 0.0
            for start in range(0, n, batch_size):
                idx = perm[start:start + batch_size]
                loss = loss_fn(net(encode(data.x_train[idx], num_steps))["spk"], data.y_train[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
                bar.update(1)
                bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", loss=f"{loss.item():.3f}")
            losses.append(total / n)
    net.eval()
    return losses


def check_onnx(net: torch.nn.Module, xs: torch.Tensor, path: Path) -> Parity:
    """Export ``net`` to ONNX at ``path``, run it in onnxruntime on ``xs`` and compare.

    Spikes (every spiking output) must be equal; membranes are reported as the largest
    absolute difference.
    """
    sg.export_onnx(net, str(path))
    session = sg.runtimes.onnx.Session(str(path))
    with torch.no_grad():
        expected = {k: v.numpy() for k, v in net(xs).items()}
    got = session.run(xs.numpy())
    mismatches = total = 0
    for name, want in expected.items():
        if name != "mem":
            mismatches += int(np.sum(np.asarray(got[name]) != want))
            total += want.size
    mem_diff = float(np.max(np.abs(np.asarray(got["mem"]) - expected["mem"])))
    return Parity(mismatches == 0, mismatches, total, mem_diff, float(np.max(np.abs(expected["mem"]))))


def write_pictures(g: sg.Graph, outputs: dict[str, torch.Tensor], labels: torch.Tensor, out_dir: Path,
                   sample: int = 0) -> dict[str, Path]:
    """Draw the graph, a raster of the hidden layer and a spike-count animation of the outputs."""
    import matplotlib.pyplot as plt

    files = {"graph": out_dir / "graph.png", "raster": out_dir / "hidden_raster.png",
             "counts": out_dir / "output_spike_counts.gif"}
    plt.close(sg.spikeplot.graph(g, path=files["graph"]))

    hidden = outputs["hidden"][:, sample]
    fig, ax = plt.subplots(figsize=(8, 5))
    sg.spikeplot.raster(hidden, ax, s=4, c="black")
    ax.set(xlabel="time step", ylabel="hidden neuron", xlim=(-0.5, hidden.shape[0] - 0.5),
           title=f"hidden-layer spikes for a held-out '{int(labels[sample])}'")
    fig.savefig(files["raster"], bbox_inches="tight")
    plt.close(fig)

    spk = outputs["spk"][:, sample]
    fig, ax = plt.subplots(facecolor="w", figsize=(7, 4.5))
    anim = sg.spikeplot.spike_count(spk, fig, ax, labels=[str(d) for d in range(10)], animate=True, interval=120)
    ax.set_title(f"output spike counts over time (true class {int(labels[sample])})")
    fig.tight_layout()
    anim.save(str(files["counts"]), writer="pillow", dpi=80)
    plt.close(fig)
    return files


def run(out_dir: str | Path = "demo-out", epochs: int | None = None, quick: bool = False, seed: int = 0,
        num_steps: int = NUM_STEPS, progress: bool = True, log: Callable[[str], None] = print) -> DemoResult:
    """Train, evaluate, export, check parity and draw; write everything into ``out_dir``.

    Args:
        out_dir: folder for the outputs (created if missing).
        epochs: training epochs (default 20, or 1 with ``quick``).
        quick: a smoke run: one epoch on a subset of the training set.
        seed: seeds the split, the weights, the spike encoding and the batch order.
        num_steps: time steps of each spike-encoded image.
        progress: show a tqdm progress bar.
        log: where the report lines go.

    Returns:
        The accuracy, the ONNX parity and the files written.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    data = load_digits(seed)
    if quick:
        data.x_train, data.y_train = data.x_train[:QUICK_TRAIN_SAMPLES], data.y_train[:QUICK_TRAIN_SAMPLES]
    epochs = (QUICK_EPOCHS if quick else EPOCHS) if epochs is None else epochs
    g = build_graph()
    net = sg.compile(g)
    log(f"network: {len(g.nodes)} nodes, {sum(p.numel() for p in net.parameters())} parameters; "
        f"{len(data.x_train)} training and {len(data.x_test)} held-out digits, {num_steps} steps each")
    train_start = time.perf_counter()
    train(net, data, epochs, num_steps=num_steps, seed=seed, progress=progress)
    log(f"trained {epochs} epoch(s) in {time.perf_counter() - train_start:.1f} s")

    torch.manual_seed(seed + 1)
    xs_test = encode(data.x_test, num_steps)
    with torch.no_grad():
        outputs = net(xs_test)
    accuracy = sg.functional.accuracy_rate(outputs["spk"], data.y_test)
    note = " (quick run: trained briefly, not to the target)" if quick else f" (target >= {TARGET_ACCURACY})"
    log(f"held-out accuracy: {accuracy:.4f} on {len(data.x_test)} digits{note}")

    trained = net.to_graph()
    files = {"model": out / "digits.sg"}
    sg.save(trained, files["model"])
    files["onnx"] = out / "digits.onnx"
    parity = check_onnx(net, xs_test, files["onnx"])
    log(f"ONNX parity (onnxruntime vs trained module): {parity}")
    files.update(write_pictures(trained, outputs, data.y_test, out))
    seconds = time.perf_counter() - started
    log(f"wrote {', '.join(p.name for p in files.values())} in {seconds:.1f} s")
    log(f"output folder: {out.resolve()}")
    return DemoResult(accuracy, parity, seconds, out, files)
