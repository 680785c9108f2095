"""snngraph's eager module vs ``torch.compile(net, fullgraph=True)``: training step and inference.

For each regime of ``train_step.py`` (same network, data and training step: forward +
cross-entropy + backward + Adam), in one process: the compile time (the first compiled call),
the eager and compiled medians (interleaved) and the ratio compiled/eager, for the training
step and for inference (``torch.no_grad`` forward). Then the compiled net runs at two more
shapes, a new T and then a new B, and dynamo's counters say whether it recompiled
(``torch._dynamo.utils.counters``: unique graphs, recompiles, graph breaks). Each of the two
modes starts from ``torch._dynamo.reset()``, so its counters are its own.

    python benchmarks/compile.py [--quick] [--regimes mlp,shd] [--repeats 7] [--backend inductor]
                                 [--dynamic true|auto] [--fresh-cache] [--json FILE]

``--dynamic true`` (the default) compiles with symbolic T and B from the first call;
``--dynamic auto`` is torch's default (``dynamic=None``): specialise on the first shape, then
recompile once per dimension that changes. ``--fresh-cache`` points inductor at an empty cache
folder, so the compile times are cold ones; otherwise a warm cache from an earlier run shortens them.
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import tempfile
import time
from collections.abc import Callable

import torch
from harness import interleaved_medians, make_data, save_json, training_step
from torch._dynamo.utils import counters, guard_failures
from train_step import REGIMES, build_snngraph

MODES = ("train", "infer")


def other_shapes(steps: int, batch: int) -> list[tuple[int, int]]:
    """A new T, then a new B (never 0 or 1, which dynamo specialises on)."""
    return [(max(2, steps // 2), batch), (max(2, steps // 2), max(2, batch // 2))]


def runner(mode: str, net: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> Callable[[], object]:
    """The timed call: a training step (own Adam) or a no-grad forward."""
    if mode == "train":
        return training_step(net, x, target)

    def infer():
        with torch.no_grad():
            return net(x)

    return infer


def dynamo_stats() -> dict:
    """Graphs, recompiles and graph breaks since ``torch._dynamo.reset()``.

    Recompiles are counted from dynamo's guard failures (``torch._dynamo.utils.guard_failures``,
    with their reasons): torch 2.13 does not fill ``counters["recompiles"]``.
    """
    reasons = [reason.strip() for failures in guard_failures.values() for reason in failures]
    return {"unique_graphs": counters["stats"]["unique_graphs"], "recompiles": len(reasons),
            "recompile_reasons": reasons, "graph_breaks": sum(counters["graph_break"].values())}


def measure(regime: str, mode: str, repeats: int, backend: str, dynamic: bool | None) -> dict:
    """Compile time, eager and compiled medians (s), then dynamo's counters after two more shapes."""
    kind, sizes, steps, batch = REGIMES[regime]
    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    eager = build_snngraph(kind, sizes)
    twin = copy.deepcopy(eager)
    compiled = torch.compile(twin, fullgraph=True, backend=backend, dynamic=dynamic)
    x, target = make_data(kind, sizes, steps, batch)
    fns = {"eager": runner(mode, eager, x, target), "compiled": runner(mode, compiled, x, target)}
    start = time.perf_counter()
    fns["compiled"]()
    compile_s = time.perf_counter() - start
    medians = interleaved_medians(fns, repeats)
    shapes = [(steps, batch), *other_shapes(steps, batch)]
    for t, b in shapes[1:]:
        runner(mode, compiled, *make_data(kind, sizes, t, b))()
    return {"compile_s": compile_s, "eager_s": medians["eager"], "compiled_s": medians["compiled"],
            "ratio": medians["compiled"] / medians["eager"], "shapes": shapes, **dynamo_stats()}


def _fresh_cache() -> str:
    """An empty inductor cache folder for this process (read when inductor first compiles)."""
    folder = tempfile.mkdtemp(prefix="snngraph-inductor-")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = folder
    return folder


def _print_row(regime: str, mode: str, r: dict) -> None:
    print(f"{regime:<6} {mode:<5} {r['compile_s']:10.1f} {r['eager_s'] * 1e3:9.1f} {r['compiled_s'] * 1e3:12.1f} "
          f"{r['ratio']:9.2f} {r['unique_graphs']:7d} {r['recompiles']:10d} {r['graph_breaks']:7d}", flush=True)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regimes", default="mlp,shd", help=f"comma-separated, of {','.join(REGIMES)}")
    parser.add_argument("--repeats", type=int, help="timed calls per contender (default 7, 2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="2 repeats (a smoke test)")
    parser.add_argument("--backend", default="inductor", help="torch.compile backend (default: inductor)")
    parser.add_argument("--dynamic", choices=("true", "auto"), default="true",
                        help="torch.compile(dynamic=True) or torch's default dynamic=None")
    parser.add_argument("--fresh-cache", action="store_true", help="compile into an empty inductor cache folder")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    regimes = args.regimes.split(",")
    if unknown := [r for r in regimes if r not in REGIMES]:
        parser.error(f"unknown regime(s) {','.join(unknown)}; choose from {','.join(REGIMES)}")
    repeats = args.repeats or (2 if args.quick else 7)
    cache = _fresh_cache() if args.fresh_cache else None
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, backend {args.backend}, "
          f"dynamic={args.dynamic}, inductor cache {'fresh' if cache else 'as found'}, median of {repeats}")
    print(f"{'regime':<6} {'mode':<5} {'compile s':>10} {'eager ms':>9} {'compiled ms':>12} {'comp/eag':>9} "
          f"{'graphs':>7} {'recompiles':>10} {'breaks':>7}")
    results: dict = {}
    try:
        for regime in regimes:
            results[regime] = {}
            for mode in MODES:
                r = measure(regime, mode, repeats, args.backend, True if args.dynamic == "true" else None)
                results[regime][mode] = r
                _print_row(regime, mode, r)
    finally:
        if cache:
            shutil.rmtree(cache, ignore_errors=True)
    for regime in regimes:
        shapes = ", ".join(f"{t}x{b}" for t, b in results[regime]["train"]["shapes"])
        print(f"{regime}: graphs/recompiles counted after the compiled net ran at (T x B) {shapes}")
        for mode in MODES:
            for reason in results[regime][mode]["recompile_reasons"]:
                print(f"  {mode} recompiled: {' '.join(reason.split())}")
    save_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
