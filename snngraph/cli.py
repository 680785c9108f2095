"""The ``snngraph`` command line: ``demo``, ``export``, ``show`` and ``bench``.

Run ``snngraph --help`` or ``snngraph COMMAND --help`` for the options. Every command exits 0
on success and 1 with a one-line ``snngraph COMMAND: error: ...`` message on a user mistake
(missing or corrupt model file, bad option value, ONNX parity failure in the demo).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

BENCHMARKS = {"train": "train_step.py", "inference": "inference.py"}  # what `snngraph bench` (all) runs
OPT_IN_BENCHMARKS = {"compile": "compile.py", "gpu": "gpu.py"}  # named only: minutes of torch.compile; CUDA


class CommandError(Exception):
    """A user-facing failure of a command: printed as one line, exit status 1."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``snngraph`` console script (one sub-parser per command)."""
    parser = argparse.ArgumentParser(
        prog="snngraph", description="Spiking neural networks as a typed graph IR, compiled for PyTorch and ONNX.")
    from snngraph import __version__

    parser.add_argument("--version", action="version", version=f"snngraph {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser("demo", help="train a spiking network on handwritten digits, export and check it",
                          description="Train a 64-128-10 spiking network on scikit-learn's 8x8 digits, report "
                                      "held-out accuracy, export to ONNX, check onnxruntime parity, draw pictures.")
    demo.add_argument("--out", default="demo-out", metavar="DIR", help="output folder (default: ./demo-out)")
    demo.add_argument("--epochs", type=_positive_int, default=None, metavar="N",
                      help="training epochs (default: 20, or 1 with --quick)")
    demo.add_argument("--quick", action="store_true", help="smoke run: one epoch on a subset of the data")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    export = sub.add_parser("export", help="export a saved graph to ONNX",
                            description="Export a graph saved with sg.save to an ONNX model.")
    export.add_argument("model", metavar="MODEL", help="a graph file written by sg.save")
    export.add_argument("--onnx", required=True, metavar="OUT", help="path of the ONNX file to write")
    export.add_argument("--mode", choices=("sequence", "step"), default="sequence",
                        help="'sequence': input (T, B, ...); 'step': one time step with explicit state tensors")
    export.add_argument("--num-steps", type=_positive_int, default=None, metavar="T",
                        help="fix the number of time steps (default: dynamic)")
    export.add_argument("--unroll", action="store_true",
                        help="with --num-steps: a straight-line model without Scan (the fully unrolled graph)")

    show = sub.add_parser("show", help="print a saved graph as text IR and draw it",
                          description="Print the text IR of a graph saved with sg.save and draw it as a picture.")
    show.add_argument("model", metavar="MODEL", help="a graph file written by sg.save")
    show.add_argument("--png", metavar="OUT", default=None,
                      help="where to draw the graph (default: MODEL with the suffix .png)")
    show.add_argument("--no-png", action="store_true", help="print the text only")
    show.add_argument("--with-params", action="store_true", help="include parameter values in the text")

    bench = sub.add_parser("bench", help="run the training-step and inference benchmarks",
                           description="Run benchmarks/train_step.py and/or benchmarks/inference.py of the source "
                                       "checkout snngraph is installed from (never from the current directory); "
                                       "`snngraph bench compile` runs benchmarks/compile.py (eager vs "
                                       "torch.compile) and `snngraph bench gpu` benchmarks/gpu.py (CUDA training "
                                       "step vs snnTorch and SpikingJelly), which `all` leaves out. "
                                       "Arguments after '--' go to the benchmark's own parser, e.g. "
                                       "`snngraph bench train -- --regimes mlp --repeats 3`.")
    bench.add_argument("which", nargs="?", choices=("all", *BENCHMARKS, *OPT_IN_BENCHMARKS), default="all",
                       help=f"which benchmark (default: all = {', '.join(BENCHMARKS)})")
    bench.add_argument("--quick", action="store_true", help="short runs (a smoke test of the benchmarks)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``snngraph`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv and "bench" in argv[:argv.index("--")]:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    command = {"demo": _demo, "export": _export, "show": _show, "bench": _bench}[args.command]
    try:
        return command(args, extra)
    except CommandError as e:
        print(f"snngraph {args.command}: error: {e}", file=sys.stderr)
        return 1


def _load(path: str):
    """``sg.load(path)`` with the user's mistakes turned into one-line errors."""
    import snngraph as sg

    if not Path(path).exists():
        raise CommandError(f"no such model file: {path}")
    try:
        return sg.load(path)
    except sg.GraphError as e:
        raise CommandError(f"cannot read {path}: {e}") from e


def _demo(args: argparse.Namespace, extra: list[str]) -> int:
    from snngraph import demo

    result = demo.run(out_dir=args.out, epochs=args.epochs, quick=args.quick, seed=args.seed,
                      progress=not args.no_progress)
    if not result.parity.spikes_equal:
        raise CommandError(f"ONNX parity failed: {result.parity}")
    return 0


def _export(args: argparse.Namespace, extra: list[str]) -> int:
    import snngraph as sg

    graph = _load(args.model)
    out = Path(args.onnx)
    if out.parent and not out.parent.exists():
        raise CommandError(f"output folder does not exist: {out.parent}")
    try:
        sg.export_onnx(graph, str(out), mode=args.mode, num_steps=args.num_steps, unroll=args.unroll)
    except (sg.GraphError, sg.LoweringError) as e:
        raise CommandError(f"cannot export {args.model}: {e}") from e
    steps = args.num_steps if args.num_steps is not None else "dynamic"
    unrolled = ", unrolled" if args.unroll else ""
    print(f"wrote {out} (graph '{graph.name}', mode={args.mode}, time steps: {steps}{unrolled})")
    return 0


def _show(args: argparse.Namespace, extra: list[str]) -> int:
    graph = _load(args.model)
    text = graph.to_text(with_params=args.with_params)
    print(text, end="" if text.endswith("\n") else "\n")
    if args.no_png:
        return 0
    from snngraph import spikeplot

    png = Path(args.png) if args.png else Path(args.model).with_suffix(".png")
    try:
        fig = spikeplot.graph(graph, path=png)
    except (ImportError, ModuleNotFoundError) as e:
        raise CommandError(f"cannot draw the graph: {e} (pip install 'snngraph[plot]', or pass --no-png)") from e
    except OSError as e:
        raise CommandError(f"cannot write {png}: {e}") from e
    import matplotlib.pyplot as plt

    plt.close(fig)
    print(f"picture: {png}")
    return 0


def find_benchmarks() -> Path | None:
    """The ``benchmarks/`` folder of the source checkout this package runs from (the repository, or an
    editable install of it), or ``None`` (e.g. a wheel install).

    The checkout is the folder above the package that holds snngraph's ``pyproject.toml``; a stray
    ``benchmarks/`` next to an installed package (in ``site-packages``) does not count, and neither does
    one in the current directory: ``snngraph bench`` never runs scripts from where it is called.
    """
    root = Path(__file__).resolve().parent.parent
    try:
        project = (root / "pyproject.toml").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    folder = root / "benchmarks"
    if 'name = "snngraph"' in project and all((folder / f).is_file() for f in BENCHMARKS.values()):
        return folder
    return None


def _import_benchmark(path: Path) -> ModuleType:
    """Import a benchmark script by path, with its folder and the checkout on ``sys.path``."""
    for folder in (str(path.parent), str(path.parent.parent)):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(f"snngraph_bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    if not callable(getattr(module, "main", None)):
        raise CommandError(f"{path} has no main(argv) function")
    return module


def _bench(args: argparse.Namespace, extra: list[str]) -> int:
    folder = find_benchmarks()
    if folder is None:
        raise CommandError(f"benchmarks/ not found: `snngraph bench` runs the benchmark scripts of the source "
                           f"checkout snngraph is installed from (git clone the repository, pip install -e it); "
                           f"this installation ({Path(__file__).resolve().parent}) has none, and scripts in the "
                           f"current directory are never run")
    scripts = {**BENCHMARKS, **OPT_IN_BENCHMARKS}
    names = list(BENCHMARKS) if args.which == "all" else [args.which]
    if missing := [scripts[n] for n in names if not (folder / scripts[n]).is_file()]:
        raise CommandError(f"{folder} has no {', '.join(missing)} (an older checkout?)")
    argv = (["--quick"] if args.quick else []) + list(extra)
    status = 0
    for name in names:
        print(f"== benchmark: {name} ({folder / scripts[name]}) ==", flush=True)
        result = _import_benchmark(folder / scripts[name]).main(argv)
        status = status or (result if isinstance(result, int) else 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
