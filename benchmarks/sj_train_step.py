"""Training-step time and peak memory of a SpikingJelly SEW-ResNet: snngraph (traced from SpikingJelly)
vs SpikingJelly's own torch backend in multi-step mode vs snnTorch-style stepping (the same SpikingJelly
model in single-step mode, a Python loop over time).

The net is a small SEW-ResNet built from SpikingJelly's own ``sew_resnet.BasicBlock`` (ADD connections,
LIF neurons, ``detach_reset=True``): a 3x3 stem (32 channels), a block at 32 channels, a strided block
to 64 with its downsampling branch, average pooling and a linear read-out; 32x32 inputs, T=4, B=16.
Same weights and data for every variant, interleaved repeats (median), peak memory of each in a fresh
process (see ``train_step.py``)::

    python benchmarks/sj_train_step.py [--repeats 7] [--no-memory] [--json out.json]

SpikingJelly's zoo modules import torchvision for pretrained weights only; without torchvision a
stand-in providing that one name is installed (the benchmark never loads pretrained weights).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import types
from collections.abc import Callable

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_step as b  # noqa: E402  (the shared timing helpers)

T, B, CLASSES = 4, 16, 10
VARIANTS = ("snngraph", "spikingjelly", "stepping")


def _sew_resnet_module():
    try:
        import torchvision  # noqa: F401
    except ImportError:
        utils = types.ModuleType("torchvision._internally_replaced_utils")
        utils.load_state_dict_from_url = None
        sys.modules.setdefault("torchvision", types.ModuleType("torchvision"))
        sys.modules.setdefault("torchvision._internally_replaced_utils", utils)
    return importlib.import_module("spikingjelly.activation_based.model.sew_resnet")


def sew_net() -> nn.Module:
    """The small SEW-ResNet, in SpikingJelly's multi-step mode."""
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    sew = _sew_resnet_module()
    lif = dict(spiking_neuron=neuron.LIFNode, tau=2.0, detach_reset=True, surrogate_function=surrogate.ATan())
    down = nn.Sequential(layer.Conv2d(32, 64, 1, stride=2, bias=False), layer.BatchNorm2d(64))
    net = nn.Sequential(
        layer.Conv2d(3, 32, 3, padding=1, bias=False), layer.BatchNorm2d(32), neuron.LIFNode(**{
            k: v for k, v in lif.items() if k != "spiking_neuron"}),
        sew.BasicBlock(32, 32, cnf="ADD", **lif),
        sew.BasicBlock(32, 64, stride=2, downsample=down, cnf="ADD", **lif),
        layer.AdaptiveAvgPool2d((1, 1)), layer.Flatten(), layer.Linear(64, CLASSES))
    functional.set_step_mode(net, "m")
    return net


def make_data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.rand(T, B, 3, 32, 32, generator=gen), torch.randint(0, CLASSES, (B,), generator=gen)


def make(variant: str) -> Callable[[], None]:
    """One training step (forward, cross entropy of the summed output, backward, Adam) as a closure."""
    from spikingjelly.activation_based import functional

    import snngraph as sg

    torch.manual_seed(0)
    model = sew_net()
    x, target = make_data()
    if variant == "snngraph":
        net = sg.compile(sg.trace(model, x))
        forward = lambda: net(x)["out"]  # noqa: E731
    elif variant == "spikingjelly":
        net = model

        def forward():
            functional.reset_net(net)
            return net(x)
    else:
        net = model
        functional.set_step_mode(net, "s")

        def forward():
            functional.reset_net(net)
            return torch.stack([net(x_t) for x_t in x])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def train_step():
        loss = nn.functional.cross_entropy(forward().sum(0), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return train_step


_PEAK = """
import sys
sys.path.insert(0, {folder!r})
import sj_train_step as s


def hwm():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))


fn = s.make({variant!r})
base = hwm()
fn()
fn()
print((hwm() - base) / 1024)
"""


def peak_memory(variant: str) -> float:
    """Peak RSS increase (MiB) of two training steps in a fresh process (Linux)."""
    code = _PEAK.format(folder=os.path.dirname(os.path.abspath(__file__)), variant=variant)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, T={T} B={B} 32x32, "
          f"median of {args.repeats}")
    t = b.interleaved_medians({v: make(v) for v in VARIANTS}, args.repeats)
    results: dict = {"time_s": t}
    print(f"{'snngraph ms':>12} {'sj multi-step ms':>17} {'stepping ms':>12} {'sj/sg':>7} {'stepping/sg':>12}")
    print(f"{t['snngraph'] * 1e3:12.1f} {t['spikingjelly'] * 1e3:17.1f} {t['stepping'] * 1e3:12.1f} "
          f"{t['spikingjelly'] / t['snngraph']:7.2f} {t['stepping'] / t['snngraph']:12.2f}")
    if not args.no_memory:
        m = {v: peak_memory(v) for v in VARIANTS}
        results["peak_mib"] = m
        print(f"{'snngraph MiB':>13} {'sj multi-step MiB':>18} {'stepping MiB':>13} {'sg/sj':>6} {'sg/stepping':>12}")
        print(f"{m['snngraph']:13.0f} {m['spikingjelly']:18.0f} {m['stepping']:13.0f} "
              f"{m['snngraph'] / max(m['spikingjelly'], 1e-9):6.2f} {m['snngraph'] / max(m['stepping'], 1e-9):12.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
