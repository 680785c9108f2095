"""A convolutional SNN on event-camera frames: tonic transforms on generated DVS events.

An event camera reports brightness changes as events ``(x, y, t, p)``: ON (p=1) where a pixel
gets brighter, OFF (p=0) where it gets darker. This script generates recordings of a bright bar
sweeping across a 32x32 sensor in one of four directions (plus sensor noise), so it runs offline,
then uses the same tonic transforms as for real recordings (DVS Gesture, N-MNIST):
``DropEvent`` (augmentation), ``Denoise`` and ``ToFrame`` binning events into T frames of
shape (2, 32, 32). A conv-pool-LIF network declared with the builder learns the direction::

    python examples/conv_event_frames.py            # 40 iterations, under a minute on 2 cores
    python examples/conv_event_frames.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import tonic.transforms as T
import torch

import snngraph as sg

SENSOR = (32, 32, 2)  # tonic's (width, height, polarities)
DIRECTIONS = ("right", "left", "down", "up")
EVENT_DTYPE = np.dtype([("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
DURATION_US = 100_000


def moving_bar(direction: int, rng: np.random.Generator, width: int = 3) -> np.ndarray:
    """Events of a bar sweeping across the sensor: ON events at its leading edge, OFF events at
    its trailing edge, 5% of the pixels' edges missed, plus uniform background noise."""
    size = SENSOR[0]
    positions = np.arange(-width, size + 1)
    if direction in (1, 3):  # left / up: sweep the other way
        positions = positions[::-1]
    step = 1 if direction in (0, 2) else -1
    times = np.linspace(0, DURATION_US * 0.9, len(positions)).astype(np.int64) + rng.integers(0, 5000)
    rows = []
    span = np.arange(rng.integers(0, 6), size - rng.integers(0, 6))  # the bar's extent across
    for pos, t in zip(positions, times, strict=True):
        for edge, polarity in ((pos + (width if step > 0 else 0), 1), (pos + (0 if step > 0 else width), 0)):
            if not 0 <= edge < size:
                continue
            keep = span[rng.random(len(span)) > 0.05]
            along, across = np.full(len(keep), edge), keep
            x, y = (along, across) if direction < 2 else (across, along)
            jitter = rng.integers(0, 2000, len(keep))
            rows.append(np.stack([x, y, t + jitter, np.full(len(keep), polarity)], axis=1))
    noise = rng.integers(0, [size, size, DURATION_US, 2], size=(60, 4))
    data = np.concatenate([*rows, noise])
    events = np.zeros(len(data), EVENT_DTYPE)
    for i, key in enumerate("xytp"):
        events[key] = data[:, i]
    return np.sort(events, order="t")


def make_batch(n: int, num_steps: int, rng: np.random.Generator, augment: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` recordings as binary frames ``(num_steps, n, 2, 32, 32)`` and their labels ``(n,)``."""
    steps = [T.DropEvent(p=0.1)] if augment else []
    transform = T.Compose([*steps, T.Denoise(filter_time=10_000), T.ToFrame(sensor_size=SENSOR,
                                                                            n_time_bins=num_steps)])
    labels = rng.integers(0, len(DIRECTIONS), n)
    frames = np.stack([transform(moving_bar(int(label), rng)) for label in labels], axis=1)
    return torch.from_numpy((frames > 0).astype(np.float32)), torch.from_numpy(labels)


def build() -> sg.Graph:
    """conv(8) -> LIF -> pool -> conv(16) -> LIF -> pool -> flatten -> linear(4) -> LIF."""
    g = sg.Graph("dvs_direction")
    x = g.input("frames", shape=(2, 32, 32))
    h = g.max_pool2d(g.leaky(g.conv2d(x, 8, 5, padding=2, name="conv1"), beta=0.8, name="lif1"), 2, name="pool1")
    h = g.max_pool2d(g.leaky(g.conv2d(h, 16, 3, padding=1, name="conv2"), beta=0.8, name="lif2"), 2, name="pool2")
    o = g.leaky(g.linear(g.flatten(h, name="flat"), len(DIRECTIONS), name="fc"), beta=0.9, name="lif_out")
    g.output("spk", o)
    return g


def main(argv: list[str] | None = None) -> dict:
    """Run the example with command-line ``argv``; returns what it measured (also printed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few iterations (for tests)")
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--num-steps", type=int, default=10)
    args = parser.parse_args(argv)
    iterations, batch = (3, 8) if args.quick else (args.iterations, 32)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    g = build()
    print(g)
    net = sg.compile(g)
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    loss_fn = sg.functional.ce_rate_loss()
    start = time.perf_counter()
    for it in range(iterations):
        xs, ys = make_batch(batch, args.num_steps, rng, augment=True)
        loss = loss_fn(net(xs)["spk"], ys)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % 10 == 0 or it == iterations - 1:
            print(f"iteration {it:3d}  loss {loss.item():.3f}")
    print(f"{(time.perf_counter() - start) / iterations:.2f} s per iteration (incl. event generation)")

    xs, ys = make_batch(32 if args.quick else 200, args.num_steps, np.random.default_rng(1), augment=False)
    net.eval()
    with torch.no_grad():
        spk = net(xs)["spk"]
    acc = sg.functional.accuracy_rate(spk, ys)
    print(f"held-out accuracy over {len(ys)} fresh recordings ({', '.join(DIRECTIONS)}): {acc:.3f}")
    return {"accuracy": acc, "frames_shape": tuple(xs.shape), "output_shape": tuple(spk.shape)}


if __name__ == "__main__":
    main()
