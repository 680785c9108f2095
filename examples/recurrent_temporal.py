"""A recurrent SNN on a temporal task: which of two input channels fired first?

Each sample has two signal channels that each emit one short burst at a random time, plus
noise channels; the label is 1 when channel B's burst came before channel A's. The answer is
read out at the end of the sequence, long after the bursts, so the network has to keep the
order in its state. Two ways to declare recurrence with the builder:

* ``--model rleaky`` (default): ``g.rleaky``, snnTorch's ``RLeaky`` with all-to-all recurrent
  weights (the parameter ``rlif.recurrent.weight``);
* ``--model feedback``: an explicit loop, ``fb = g.feedback(shape)`` ... ``g.connect(fb, value)``,
  closed through a one-step delay (any sub-graph can sit on the loop).

The readout is a non-spiking leaky integrator; the loss is the cross entropy of its membrane
over the last steps::

    python examples/recurrent_temporal.py                    # about a minute on 2 cores
    python examples/recurrent_temporal.py --model feedback   # slower: the loop runs step by step
    python examples/recurrent_temporal.py --quick
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import snngraph as sg

CHANNELS = 8  # 2 signal + 6 noise
READOUT_STEPS = 5


def make_batch(n: int, num_steps: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``(num_steps, n, 8)`` and labels ``(n,)``: bursts (2 steps) on channels 0 and 1
    at distinct random times in the first half, Bernoulli(0.05) noise on the others."""
    xs = torch.bernoulli(torch.full((num_steps, n, CHANNELS), 0.05), generator=gen)
    xs[:, :, :2] = 0
    latest = num_steps // 2
    t_a = torch.randint(0, latest, (n,), generator=gen)
    t_b = (t_a + torch.randint(1, latest - 1, (n,), generator=gen)) % latest  # never equal to t_a
    rows = torch.arange(n)
    for offset in (0, 1):
        xs[t_a + offset, rows, 0] = 1
        xs[t_b + offset, rows, 1] = 1
    return xs, (t_b < t_a).long()


def build(model: str, hidden: int = 64) -> sg.Graph:
    """8 inputs -> linear -> recurrent spiking layer -> linear -> leaky integrator (2 classes)."""
    g = sg.Graph(f"order_{model}")
    x = g.input("x", shape=(CHANNELS,))
    cur = g.linear(x, hidden, name="fc_in")
    if model == "rleaky":
        spk = g.rleaky(cur, beta=0.95, all_to_all=True, linear_features=hidden, name="rlif")
    elif model == "feedback":
        fb = g.feedback((hidden,), name="fb")                  # value of the loop one step ago
        spk = g.leaky(g.add(cur, fb, name="sum"), beta=0.95, name="lif")
        g.connect(fb, g.linear(spk, hidden, name="fc_rec"))    # closes the loop through the delay
    else:
        raise ValueError(f"unknown model {model!r}: use 'rleaky' or 'feedback'")
    out = g.leaky_integrator(g.linear(spk, 2, name="fc_out"), beta=0.9, name="readout")
    g.output("mem", out)
    g.output("hidden", spk)
    return g


def readout_loss(mem: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross entropy of the readout membrane, averaged over the last steps."""
    last = mem[-READOUT_STEPS:]
    return F.cross_entropy(last.reshape(-1, last.shape[-1]), labels.repeat(last.shape[0]))


def accuracy(mem: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of sequences whose readout membrane, averaged over the last steps, peaks at the label."""
    return (mem[-READOUT_STEPS:].mean(0).argmax(-1) == labels).float().mean().item()


def main(argv: list[str] | None = None) -> dict:
    """Run the example with command-line ``argv``; returns what it measured (also printed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few iterations (for tests)")
    parser.add_argument("--model", choices=("rleaky", "feedback"), default="rleaky")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--num-steps", type=int, default=40)
    args = parser.parse_args(argv)
    iterations = 3 if args.quick else args.iterations
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)

    g = build(args.model)
    print(g)
    net = sg.compile(g)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    start = time.perf_counter()
    for it in range(iterations):
        xs, ys = make_batch(64, args.num_steps, gen)
        mem = net(xs)["mem"]
        loss = readout_loss(mem, ys)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % 50 == 0 or it == iterations - 1:
            print(f"iteration {it:4d}  loss {loss.item():.3f}  batch accuracy {accuracy(mem, ys):.2f}")
    print(f"{(time.perf_counter() - start) / iterations * 1e3:.0f} ms per iteration")

    net.eval()
    xs, ys = make_batch(200 if args.quick else 1000, args.num_steps, torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = net(xs)
    acc = accuracy(out["mem"], ys)
    rate = out["hidden"].mean().item()
    print(f"{args.model}: held-out accuracy {acc:.3f} on {len(ys)} sequences (chance 0.5); "
          f"hidden firing rate {rate:.3f} spikes/step")
    return {"accuracy": acc, "model": args.model, "hidden_rate": rate}


if __name__ == "__main__":
    main()
