"""snnTorch's whole-sequence neurons, snngraph's (``sg.nn``) against snnTorch 1.0.0's: the time of a forward
plus backward over a (T, B, features) sequence, interleaved in one process, and the ratios.

    python benchmarks/sequence_neurons.py [--steps 100] [--batch 32] [--repeats 9] [--json out.json]

``StateLeaky`` (T=steps, 128 channels), ``LeakyParallel`` (128 -> 128) and ``AssociativeLeaky`` (128 inputs,
``d_value = d_key = 16``). The neurons' own defaults otherwise; the loss is the sum of the output, its
gradient taken with respect to the input and every parameter.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402 (the interleaved timing shared by the benchmarks)

FEATURES = 128


def _neurons(library) -> dict[str, torch.nn.Module]:
    return {
        "StateLeaky": library.StateLeaky(beta=0.9, channels=FEATURES),
        "LeakyParallel": library.LeakyParallel(FEATURES, FEATURES, beta=0.9),
        "AssociativeLeaky": library.AssociativeLeaky(FEATURES, 16, 16, 256),
    }


def _step(neuron: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        out = neuron(x)
        out = out[0] if isinstance(out, tuple) else out
        out.float().sum().backward()

    return run


def main(argv: list[str] | None = None) -> dict:
    import snntorch

    import snngraph as sg

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    x = torch.rand(args.steps, args.batch, FEATURES, requires_grad=True)  # (the input's gradient, as in a net)
    fns = {}
    for name, library in (("snngraph", sg.nn), ("snntorch", snntorch)):
        for neuron, module in _neurons(library).items():
            fns[f"{neuron}/{name}"] = _step(module, x)
    medians = harness.interleaved_medians(fns, args.repeats)  # (one warm-up call each first)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, T={args.steps}, B={args.batch}, "
          f"median of {args.repeats} (forward + backward, ms)")
    print(f"{'neuron':<18}{'snngraph':>10}{'snntorch':>10}{'snntorch/sg':>13}")
    results = {}
    for neuron in _neurons(sg.nn):
        ours, theirs = medians[f"{neuron}/snngraph"] * 1e3, medians[f"{neuron}/snntorch"] * 1e3
        results[neuron] = {"snngraph_ms": ours, "snntorch_ms": theirs, "ratio": theirs / ours}
        print(f"{neuron:<18}{ours:>10.1f}{theirs:>10.1f}{theirs / ours:>13.2f}")
    harness.save_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
