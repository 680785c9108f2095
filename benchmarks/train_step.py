"""Training-step time (forward + backward + Adam) of snngraph vs snnTorch vs the ANN floor.

Same network, weights and data for every library, measured in one process, interleaved,
median of several repeats; peak memory of each library in a separate process. Prints ratios.

    python benchmarks/train_step.py [--quick] [--regimes mlp,shd,conv,rec,syn,slstm] [--repeats 7] [--no-memory]
                                    [--live-memory]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import torch
from harness import add_synapses, interleaved_medians, make_data, save_json, training_step
from torch import nn

REGIMES = {  # name: (kind, layer sizes, T, B)
    "mlp": ("mlp", (784, 1000, 10), 25, 128),
    "shd": ("mlp", (700, 256, 20), 100, 128),
    "conv": ("conv", (1, 12, 32, 10), 25, 64),
    "rec": ("rec", (700, 256, 20), 100, 128),
    "syn": ("syn", (700, 256, 20), 100, 128),  # SHD-like with current-based (Synaptic) neurons
    "slstm": ("slstm", (700, 256, 20), 100, 128),  # SHD-like: a spiking LSTM (SLSTM) layer, then Leaky
}
SLSTM_THRESHOLD = 0.5  # the LSTM's membrane o * tanh(c) stays below 1: the default threshold would never fire


def build_snngraph(kind: str, sizes: tuple, beta: float = 0.9, kernels: str = "auto"):
    import snngraph as sg

    g = sg.Graph(kind)
    if kind == "conv":
        c_in, c1, c2, out = sizes
        x = g.input("x", (c_in, 28, 28))
        h = g.leaky(g.max_pool2d(g.conv2d(x, c1, 5, name="conv1"), 2), beta, name="lif1")
        h = g.leaky(g.max_pool2d(g.conv2d(h, c2, 5, name="conv2"), 2), beta, name="lif2")
        o = g.leaky(g.linear(g.flatten(h), out, name="fc1"), beta, name="lif3")
    else:
        n_in, hid, out = sizes
        x = g.input("x", (n_in,))
        cur = g.linear(x, hid, name="fc1") if kind != "slstm" else None
        if kind == "slstm":
            h = g.slstm(x, hidden_size=hid, threshold=SLSTM_THRESHOLD, name="lstm1")
            o = g.leaky(g.linear(h, out, name="fc2"), beta, name="lif2")
        elif kind == "syn":
            h = g.synaptic(cur, 0.8, beta, name="lif1")
            o = g.synaptic(g.linear(h, out, name="fc2"), 0.8, beta, name="lif2")
        else:
            h = g.rleaky(cur, beta, name="lif1") if kind == "rec" else g.leaky(cur, beta, name="lif1")
            o = g.leaky(g.linear(h, out, name="fc2"), beta, name="lif2")
    g.output("spk", o)
    g.output("mem", o.mem)
    return sg.compile(g, kernels=kernels)


class SnnTorchNet(nn.Module):
    """snnTorch's tutorial-style network: a Python loop over time, one step at a time."""

    def __init__(self, kind: str, sizes: tuple, beta: float = 0.9):
        super().__init__()
        import snntorch as snn

        self.kind = kind
        add_synapses(self, kind, sizes)
        if kind == "conv":
            self.lifs = nn.ModuleList([snn.Leaky(beta=beta) for _ in range(3)])
        else:
            n_in, hid, _ = sizes
            if kind == "slstm":
                del self.fc1  # the SLSTM's own input weights
                self.lstm = snn.SLSTM(n_in, hid, threshold=SLSTM_THRESHOLD)
                self.lifs = nn.ModuleList([snn.Leaky(beta=beta)])
            elif kind == "syn":
                self.lifs = nn.ModuleList([snn.Synaptic(alpha=0.8, beta=beta) for _ in range(2)])
            else:
                first = snn.RLeaky(beta=beta, linear_features=hid) if kind == "rec" else snn.Leaky(beta=beta)
                self.lifs = nn.ModuleList([first, snn.Leaky(beta=beta)])

    def forward(self, x):
        import torch.nn.functional as F

        spk_rec, mem_rec = [], []
        if self.kind == "syn":
            return self._synaptic(x)
        if self.kind == "slstm":
            return self._slstm(x)
        if self.kind == "rec":
            spk1, mem1 = self.lifs[0].init_rleaky()
        else:
            mem1 = self.lifs[0].init_leaky()
        mems = [mem1] + [lif.init_leaky() for lif in self.lifs[1:]]
        for t in range(x.shape[0]):
            if self.kind == "conv":
                s, mems[0] = self.lifs[0](F.max_pool2d(self.conv1(x[t]), 2), mems[0])
                s, mems[1] = self.lifs[1](F.max_pool2d(self.conv2(s), 2), mems[1])
                s, mems[2] = self.lifs[2](self.fc1(s.flatten(1)), mems[2])
            elif self.kind == "rec":
                spk1, mems[0] = self.lifs[0](self.fc1(x[t]), spk1, mems[0])
                s, mems[1] = self.lifs[1](self.fc2(spk1), mems[1])
            else:
                s, mems[0] = self.lifs[0](self.fc1(x[t]), mems[0])
                s, mems[1] = self.lifs[1](self.fc2(s), mems[1])
            spk_rec.append(s)
            mem_rec.append(mems[-1])
        return {"spk": torch.stack(spk_rec), "mem": torch.stack(mem_rec)}


    def _synaptic(self, x):
        (syn1, mem1), (syn2, mem2) = self.lifs[0].init_synaptic(), self.lifs[1].init_synaptic()
        spk_rec, mem_rec = [], []
        for t in range(x.shape[0]):
            s, syn1, mem1 = self.lifs[0](self.fc1(x[t]), syn1, mem1)
            s, syn2, mem2 = self.lifs[1](self.fc2(s), syn2, mem2)
            spk_rec.append(s)
            mem_rec.append(mem2)
        return {"spk": torch.stack(spk_rec), "mem": torch.stack(mem_rec)}


    def _slstm(self, x):
        syn, mem = self.lstm.reset_mem()
        mem2 = self.lifs[0].init_leaky()
        spk_rec, mem_rec = [], []
        for t in range(x.shape[0]):
            s, syn, mem = self.lstm(x[t], syn, mem)
            s, mem2 = self.lifs[0](self.fc2(s), mem2)
            spk_rec.append(s)
            mem_rec.append(mem2)
        return {"spk": torch.stack(spk_rec), "mem": torch.stack(mem_rec)}


class AnnFloor(nn.Module):
    """The same synapses over all T*B rows with ReLU and no neurons: the floor any SNN pays."""

    def __init__(self, kind: str, sizes: tuple):
        super().__init__()
        self.kind = kind
        self.hid = sizes[1]
        # slstm: the cell's input weights (4 gates); its per-step recurrent matmul is left out, as for rec
        add_synapses(self, kind, sizes, 4 * self.hid if kind == "slstm" else None)

    def forward(self, x):
        import torch.nn.functional as F

        rows = x.reshape(-1, *x.shape[2:])
        if self.kind == "conv":
            h = F.relu(F.max_pool2d(self.conv1(rows), 2))
            h = F.relu(F.max_pool2d(self.conv2(h), 2))
            out = self.fc1(h.flatten(1))
        else:
            out = self.fc2(F.relu(self.fc1(rows)[:, :self.hid]))
        out = out.reshape(x.shape[0], x.shape[1], -1)
        return {"spk": out, "mem": out}


def make(library: str, regime: str):
    kind, sizes, steps, batch = REGIMES[regime]
    torch.manual_seed(0)
    net = {"snngraph": lambda: build_snngraph(kind, sizes), "snntorch": lambda: SnnTorchNet(kind, sizes),
           "ann_floor": lambda: AnnFloor(kind, sizes)}[library]()
    return training_step(net, *make_data(kind, sizes, steps, batch))


def time_regime(regime: str, repeats: int, libraries: list[str]) -> dict[str, float]:
    return interleaved_medians({lib: make(lib, regime) for lib in libraries}, repeats)


_PEAK = """
import sys
sys.path.insert(0, {folder!r})
import train_step as b


def hwm():  # this process's own high-water RSS; ru_maxrss would inherit the parent's at fork/exec
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))


fn = b.make({library!r}, {regime!r})
base = hwm()
fn()
fn()
print((hwm() - base) / 1024)
"""


def peak_memory(library: str, regime: str, live: bool = False) -> float:
    """Peak RSS increase (MiB) of two training steps, in a fresh process (Linux).

    By default glibc's malloc runs as users get it: it keeps freed blocks for reuse, so RSS also
    counts memory a library's allocation pattern leaves behind. ``live=True`` makes every block
    over 128 KiB its own mapping, returned on free, so the high-water mark tracks live tensors.
    """
    code = _PEAK.format(folder=os.path.dirname(os.path.abspath(__file__)), library=library, regime=regime)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"} if live else None
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regimes", default="mlp,shd,conv,rec,syn,slstm")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="2 repeats, no memory, mlp+shd only")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--live-memory", action="store_true",
                        help="also peak memory with glibc returning blocks over 128 KiB at once (live tensors)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    regimes = ["mlp", "shd"] if args.quick else args.regimes.split(",")
    repeats = 2 if args.quick else args.repeats
    libraries = ["snngraph", "snntorch", "ann_floor"]
    results = {}
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, median of {repeats}")
    print(f"{'regime':<6} {'snngraph ms':>12} {'snntorch ms':>12} {'floor ms':>10} {'sg/floor':>9} "
          f"{'snntorch/sg':>12}")
    for regime in regimes:
        t = time_regime(regime, repeats, libraries)
        results[regime] = {"time_s": t}
        print(f"{regime:<6} {t['snngraph'] * 1e3:12.1f} {t['snntorch'] * 1e3:12.1f} {t['ann_floor'] * 1e3:10.1f} "
              f"{t['snngraph'] / t['ann_floor']:9.2f} {t['snntorch'] / t['snngraph']:12.2f}")
    if not (args.quick or args.no_memory):
        print(f"{'regime':<6} {'snngraph MiB':>13} {'snntorch MiB':>13} {'floor MiB':>10} {'sg/snntorch':>12}")
        for regime in regimes:
            m = {lib: peak_memory(lib, regime) for lib in libraries}
            results[regime]["peak_mib"] = m
            print(f"{regime:<6} {m['snngraph']:13.0f} {m['snntorch']:13.0f} {m['ann_floor']:10.0f} "
                  f"{m['snngraph'] / max(m['snntorch'], 1e-9):12.2f}")
        if args.live_memory:
            print("live tensors (MALLOC_MMAP_THRESHOLD_=131072):")
            for regime in regimes:
                m = {lib: peak_memory(lib, regime, live=True) for lib in libraries}
                results[regime]["live_peak_mib"] = m
                print(f"{regime:<6} {m['snngraph']:13.0f} {m['snntorch']:13.0f} {m['ann_floor']:10.0f} "
                      f"{m['snngraph'] / max(m['snntorch'], 1e-9):12.2f}")
    save_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
