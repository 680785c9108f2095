"""Streaming inference from an exported step model: one time step in, one decision out.

``sg.export_onnx(net, path, mode="step")`` writes a model that advances the network by one time
step: its inputs are the graph input ``(B, *shape)`` and the state tensors (zeros for a fresh
stream), its outputs the graph outputs followed by the new state. ``sg.runtimes.onnx.Session``
keeps that loop short (``init_state``, ``step``). Here the digits network of ``snngraph demo``
classifies rate-coded digits as their spikes arrive, and stops listening as soon as one class
leads by a margin, which usually happens well before the end of the sequence::

    python examples/streaming_onnx.py                             # trains the demo network briefly
    python examples/streaming_onnx.py --model demo-out/digits.sg  # the graph `snngraph demo` saved
    python examples/streaming_onnx.py --quick
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import snngraph as sg
from snngraph import demo


def trained_graph(args: argparse.Namespace) -> sg.Graph:
    """The graph from ``--model``, or the demo network trained for ``--epochs`` epochs."""
    if args.model:
        return sg.load(args.model)
    torch.manual_seed(0)
    data = demo.load_digits(0)
    if args.quick:
        data.x_train, data.y_train = data.x_train[:128], data.y_train[:128]
    net = sg.compile(demo.build_graph())
    demo.train(net, data, epochs=args.epochs, progress=False)
    return net.to_graph()


def stream(session: sg.runtimes.onnx.Session, spikes: np.ndarray, margin: int) -> tuple[int, int]:
    """Feed one sample ``(T, 64)`` step by step; return (predicted class, steps listened)."""
    state = session.init_state(batch_size=1)
    counts = np.zeros(10)
    for t, x_t in enumerate(spikes):
        out, state = session.step(x_t[None], state)
        counts += out["spk"][0]
        top2 = np.sort(counts)[-2:]
        if top2[1] - top2[0] >= margin:
            return int(counts.argmax()), t + 1
    return int(counts.argmax()), len(spikes)


def main(argv: list[str] | None = None) -> dict:
    """Run the example with command-line ``argv``; returns what it measured (also printed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny training and few samples (for tests)")
    parser.add_argument("--model", default=None, help="a graph saved by sg.save (e.g. by `snngraph demo`)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--margin", type=int, default=4, help="stop once the leading class is this many spikes ahead")
    parser.add_argument("--out", type=Path, default=None, help="folder for the ONNX model (default: a temp folder)")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.samples = 1, 10

    g = trained_graph(args)
    path = (args.out or Path(tempfile.mkdtemp())) / f"{g.name}_step.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    sg.export_onnx(g, path, mode="step")
    session = sg.runtimes.onnx.Session(path)
    print(f"exported {path}: inputs {session.input_names}, outputs {session.output_names}")
    print("state tensors:", ", ".join(f"{s['name']}{s['shape']}" for s in session.meta["states"]))

    # 1. the step model, stepped over a whole sequence, equals the compiled module
    data = demo.load_digits(0)
    torch.manual_seed(1)
    xs = demo.encode(data.x_test[: args.samples], demo.NUM_STEPS)
    net = sg.compile(g).eval()
    with torch.no_grad():
        want = net(xs)
    got = session.run(xs.numpy())
    equal = all(np.array_equal(got[k], want[k].numpy()) for k in ("spk", "hidden"))
    print(f"ONNX step model over {demo.NUM_STEPS} steps == compiled module: spikes equal {equal}, max membrane "
          f"difference {np.abs(got['mem'] - want['mem'].numpy()).max():.2e}")

    # 2. streaming with early decisions, one sample at a time
    xs_np = xs.numpy()
    start = time.perf_counter()
    decisions = [stream(session, xs_np[:, i], args.margin) for i in range(xs_np.shape[1])]
    per_step = (time.perf_counter() - start) / max(1, sum(t for _, t in decisions))
    labels = data.y_test[: args.samples].numpy()
    acc = float(np.mean([p == y for (p, _), y in zip(decisions, labels, strict=True)]))
    mean_steps = float(np.mean([t for _, t in decisions]))
    full = sg.functional.accuracy_rate(want["spk"], data.y_test[: args.samples])
    print(f"streaming: accuracy {acc:.3f} after {mean_steps:.1f} of {demo.NUM_STEPS} steps on average "
          f"(all {demo.NUM_STEPS} steps: {full:.3f}); {per_step * 1e6:.0f} us per step in onnxruntime")
    return {"spikes_equal": equal, "accuracy": acc, "full_accuracy": full, "mean_steps": mean_steps,
            "onnx": path}


if __name__ == "__main__":
    main()
