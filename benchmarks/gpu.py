"""Training step (forward + backward + Adam) on CUDA: snngraph with ``kernels="triton"`` and ``"torch"``
vs snnTorch vs SpikingJelly (``LIFNode(step_mode='m')`` on its fastest backend) vs the ANN floor.

One process, the same network sizes, data and loss for every library (``train_step.py``'s networks),
median of interleaved repeats with a device synchronisation around each step; peak CUDA memory of
one step above what the library held before it. Prints times, ratios and memory.

    python benchmarks/gpu.py [--regimes shd100,shd500,conv,rec,syn] [--repeats 10] [--json out.json]

Regimes: SHD-like 700-256-20 at T=100 and T=500 (B=128), a convolutional net (2 conv+pool+LIF,
28x28, T=25, B=64), the recurrent (RLeaky) and current-based (Synaptic) SHD regimes. SpikingJelly
has no RLeaky/Synaptic counterpart: those rows show ``n/a`` for it (and for ``sg_sj``, SpikingJelly's
net traced into snngraph). Exits with status 2 and a
message where CUDA is not available.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable
from importlib import metadata

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402 (the synapses, data, step and timing shared by the benchmarks)
import train_step as base  # noqa: E402 (the networks of the CPU benchmark)

REGIMES = {  # name: (kind, layer sizes, T, B)
    "shd100": ("mlp", (700, 256, 20), 100, 128),
    "shd500": ("mlp", (700, 256, 20), 500, 128),
    "conv": ("conv", (1, 12, 32, 10), 25, 64),
    "rec": ("rec", (700, 256, 20), 100, 128),
    "syn": ("syn", (700, 256, 20), 100, 128),
}
LIBRARIES = ["sg_triton", "sg_torch", "snntorch", "spikingjelly", "sg_sj", "ann_floor"]
"""``sg_sj``: SpikingJelly's own net (``SpikingJellyNet``) traced by ``sg.trace`` and compiled (its LIFs as
the ``sj_lif`` model, Triton kernels on CUDA): what a SpikingJelly user gets from bringing the model over."""


def _sj_lif(beta: float) -> tuple[nn.Module, str]:
    """SpikingJelly's multi-step LIF equal to snnTorch's Leaky (soft reset, input not decayed,
    detached reset, atan surrogate): ``tau = 1 / (1 - beta)``. Tries the ``triton`` and ``cupy``
    backends (SpikingJelly 0.0.0.0.x); 2.0 has no ``backend`` argument and picks its CUDA kernels itself."""
    from spikingjelly.activation_based import neuron, surrogate

    kw = {"tau": 1 / (1 - beta), "decay_input": False, "v_threshold": 1.0, "v_reset": None,
          "surrogate_function": surrogate.ATan(), "detach_reset": True, "step_mode": "m"}
    for backend in ("triton", "cupy"):
        try:
            return neuron.LIFNode(**kw, backend=backend), backend
        except Exception:  # noqa: BLE001 (an unknown argument or a backend not installed: try the next)
            continue
    return neuron.LIFNode(**kw), "auto"


class SpikingJellyNet(nn.Module):
    """The benchmark's MLP / conv net with SpikingJelly's multi-step LIF; synapses over all T*B rows."""

    def __init__(self, kind: str, sizes: tuple, beta: float = 0.9):
        super().__init__()
        self.kind = kind
        if kind not in ("conv", "mlp"):
            raise ValueError(f"SpikingJelly has no counterpart of the {kind!r} regime")
        harness.add_synapses(self, kind, sizes)
        lifs = [_sj_lif(beta) for _ in range(3 if kind == "conv" else 2)]
        self.lifs = nn.ModuleList([lif for lif, _ in lifs])
        self.backend = lifs[0][1]

    def forward(self, x):
        import torch.nn.functional as F

        for lif in self.lifs:
            lif.reset()
        steps, batch = x.shape[:2]

        def seq(rows):
            return rows.reshape(steps, batch, *rows.shape[1:])

        rows = x.reshape(-1, *x.shape[2:])
        if self.kind == "conv":
            h = self.lifs[0](seq(F.max_pool2d(self.conv1(rows), 2)))
            h = self.lifs[1](seq(F.max_pool2d(self.conv2(h.flatten(0, 1)), 2)))
            s = self.lifs[2](seq(self.fc1(h.flatten(2).flatten(0, 1))))
        else:
            s = self.lifs[1](seq(self.fc2(self.lifs[0](seq(self.fc1(rows))).flatten(0, 1))))
        return {"spk": s, "mem": s}  # the loss reads the output spikes (a membrane sequence would cost extra)


def traced_spikingjelly(kind: str, sizes: tuple, steps: int, batch: int) -> nn.Module:
    """``SpikingJellyNet`` as snngraph runs it: traced over an example of the regime's shape (kernels "auto")."""
    import snngraph as sg

    example = torch.zeros(steps, batch, *((1, 28, 28) if kind == "conv" else (sizes[0],)))
    return sg.compile(sg.trace(SpikingJellyNet(kind, sizes), example))


def make(library: str, regime: str, device: str = "cuda", quick: bool = False) -> Callable[[], None]:
    kind, sizes, steps, batch = REGIMES[regime]
    if quick:  # a smoke run of the plumbing (tests, CPU): a few steps and rows
        steps, batch = min(steps, 4), min(batch, 4)
    torch.manual_seed(0)
    builders = {
        "sg_triton": lambda: base.build_snngraph(kind, sizes, kernels="triton"),
        "sg_torch": lambda: base.build_snngraph(kind, sizes, kernels="torch"),
        "snntorch": lambda: base.SnnTorchNet(kind, sizes),
        "spikingjelly": lambda: SpikingJellyNet(kind, sizes),
        "sg_sj": lambda: traced_spikingjelly(kind, sizes, steps, batch),
        "ann_floor": lambda: base.AnnFloor(kind, sizes),
    }
    net = builders[library]().to(device)
    x, target = harness.make_data(kind, sizes, steps, batch)
    return harness.training_step(net, x.to(device), target.to(device))


def synced(fn: Callable[[], None]) -> Callable[[], None]:
    def run():
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    return run


def peak_mib(fn: Callable[[], None]) -> float | None:
    """Peak CUDA memory of one step above what was allocated before it (MiB); None without CUDA."""
    if not torch.cuda.is_available():
        fn()
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def run_regime(regime: str, repeats: int, device: str = "cuda", quick: bool = False) -> dict[str, dict]:
    fns, results = {}, {}
    for lib in LIBRARIES:
        try:
            fn = synced(make(lib, regime, device, quick))
            fn()  # warm-up: Triton compiles, cuDNN picks its algorithms
            results[lib] = {"peak_mib": peak_mib(fn)}
            fns[lib] = fn
        except Exception as e:  # noqa: BLE001 (a library missing or refusing a regime: report it, go on)
            results[lib] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:120]}
    for lib, s in harness.interleaved_samples(fns, repeats).items():
        results[lib]["time_ms"] = statistics.median(s) * 1e3
    return results


def _fmt(value: float | None, spec: str = "8.1f") -> str:
    return format(value, spec) if value is not None else format("n/a", ">" + spec.split(".")[0])


def main(argv: list[str] | None = None) -> int | dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regimes", default=",".join(REGIMES))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # "cpu" + --quick: the tests' smoke run
    parser.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("benchmarks/gpu.py needs a CUDA device: torch.cuda.is_available() is False here "
              "(the CPU benchmark is benchmarks/train_step.py)", file=sys.stderr)
        return 2
    versions = {}
    for name in ("triton", "snntorch", "spikingjelly"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else args.device
    print(f"{device_name}, torch {torch.__version__}, "
          + ", ".join(f"{k} {v}" for k, v in versions.items()) + f", median of {args.repeats}")
    all_results = {}
    head = "".join(f"{lib:>14}" for lib in LIBRARIES)
    print(f"{'regime':<8}{head}   (ms per training step; peak MiB below)")
    for regime in args.regimes.split(","):
        r = run_regime(regime, args.repeats, args.device, args.quick)
        all_results[regime] = r
        print(f"{regime:<8}" + "".join(f"{_fmt(r[lib].get('time_ms'), '14.2f')}" for lib in LIBRARIES))
        print(f"{'  MiB':<8}" + "".join(f"{_fmt(r[lib].get('peak_mib'), '14.0f')}" for lib in LIBRARIES))
        for lib in LIBRARIES:
            if "error" in r[lib]:
                print(f"  {lib}: {r[lib]['error']}")
        tri = r["sg_triton"].get("time_ms")
        if tri:
            ratios = {f"{lib}/sg_triton": r[lib]["time_ms"] / tri for lib in LIBRARIES[1:] if "time_ms" in r[lib]}
            if "time_ms" in r["spikingjelly"] and "time_ms" in r["sg_sj"]:
                ratios["spikingjelly/sg_sj"] = r["spikingjelly"]["time_ms"] / r["sg_sj"]["time_ms"]
            print("  ratios: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
            r["ratios"] = ratios
    harness.save_json(args.json, all_results)
    return all_results


if __name__ == "__main__":
    result = main()
    sys.exit(result if isinstance(result, int) else 0)
