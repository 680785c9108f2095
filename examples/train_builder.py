"""Declare a spiking network with the builder, compile it, train it, stream it, save it.

The builder declares the network once, per time step and without a batch dimension;
``sg.compile`` turns it into a ``torch.nn.Module`` that runs whole sequences ``(T, B, ...)``
with surrogate-gradient backpropagation through time. Here: scikit-learn's 8x8 digits,
latency-coded (bright pixels spike early), through a current-based (synaptic) hidden layer with
learnable thresholds into a leaky output layer, trained on the spike count::

    python examples/train_builder.py            # 10 epochs, about 20 s on 2 cores
    python examples/train_builder.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import snngraph as sg
from snngraph.demo import load_digits


def build(hidden: int = 96) -> sg.Graph:
    """64 inputs -> linear -> synaptic (learnable threshold) -> dropout -> linear -> leaky."""
    g = sg.Graph("digits_synaptic")
    x = g.input("x", shape=(64,))                          # per step; time and batch are implicit
    cur = g.linear(x, hidden, name="fc1")                  # initialised like torch.nn.Linear
    h = g.synaptic(cur, alpha=0.7, beta=0.85, learn_threshold=True, name="syn1")
    h = g.dropout(h, p=0.1, name="drop")
    o = g.leaky(g.linear(h, 10, name="fc2"), beta=0.9, reset_mechanism="zero", name="lif_out")
    g.output("spk", o)
    g.output("mem", o.mem)                                 # state outputs by port name
    return g


def encode(images: torch.Tensor, num_steps: int) -> torch.Tensor:
    """Latency code: one spike per pixel, earlier for brighter pixels; dark pixels stay silent."""
    return sg.spikegen.latency(images, num_steps=num_steps, tau=5, threshold=0.05, normalize=True, linear=True,
                               clip=True)


def main(argv: list[str] | None = None) -> dict:
    """Run the example with command-line ``argv``; returns what it measured (also printed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short epoch (for tests)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--num-steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None, help="folder for the saved graph (default: a temp folder)")
    args = parser.parse_args(argv)
    epochs = 1 if args.quick else args.epochs
    torch.manual_seed(0)

    g = build()
    print(g)                                               # the text IR; sg.parse reads it back
    net = sg.compile(g)
    print("parameters:", ", ".join(f"{k}{list(p.shape)}" for k, p in net.named_parameters()))

    data = load_digits(seed=0)
    if args.quick:
        data.x_train, data.y_train = data.x_train[:128], data.y_train[:128]
    x_train, x_test = encode(data.x_train, args.num_steps), encode(data.x_test, args.num_steps)
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    loss_fn = sg.functional.ce_count_loss()
    start = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        for idx in torch.randperm(len(data.y_train)).split(64):
            loss = loss_fn(net(x_train[:, idx])["spk"], data.y_train[idx])
            opt.zero_grad()
            loss.backward()                                # BPTT with the default atan surrogate
            opt.step()
        net.eval()
        with torch.no_grad():
            acc = sg.functional.accuracy_rate(net(x_test)["spk"], data.y_test)
        print(f"epoch {epoch + 1:2d}  loss {loss.item():.3f}  held-out accuracy {acc:.4f}")
    print(f"trained in {time.perf_counter() - start:.1f} s; learned hidden threshold "
          f"{net.syn1.threshold.mean().item():.3f} (started at 1.0)")

    # streaming: one step at a time with explicit state computes what the sequence run computes
    sample = x_test[:, :4]
    state = net.init_state(batch_size=4)
    with torch.no_grad():
        steps = []
        for x_t in sample:
            out_t, state = net.step(x_t, state)
            steps.append(out_t["spk"])
        streamed_equal = torch.equal(torch.stack(steps), net(sample)["spk"])
    print(f"step-by-step == whole sequence: {streamed_equal}")

    # the trained network as IR: save, load, recompile
    trained = net.to_graph()
    path = (args.out or Path(tempfile.mkdtemp())) / "digits_synaptic.sg"
    path.parent.mkdir(parents=True, exist_ok=True)
    sg.save(trained, path)
    reloaded = sg.compile(sg.load(path)).eval()
    with torch.no_grad():
        reload_equal = torch.equal(reloaded(sample)["spk"], net(sample)["spk"])
    print(f"saved to {path}; reloaded network gives the same spikes: {reload_equal}")
    return {"accuracy": acc, "streamed_equal": streamed_equal, "reload_equal": reload_equal, "path": path}


if __name__ == "__main__":
    main()
