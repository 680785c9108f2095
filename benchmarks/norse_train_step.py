"""Training-step time of a Norse network: Norse stepping its own cells vs snngraph (traced from the same
Norse model) with the fused ``LIFCell`` / ``LICell`` scans and with the derived steps (``fuse_state_updates`` off), and
the ANN floor, in one process.

The model is Norse's ``SequentialState(Linear(700, 256), LIFCell, Linear(256, 20), LICell)`` (the SHD-like
regime of ``train_step.py``: T=100, B=128, 30 % input spikes, scaled so the hidden layer fires), one
forward + cross-entropy on the summed read-out membrane + backward + Adam step, interleaved repeats
(median)::

    python benchmarks/norse_train_step.py [--cell lif|recurrent] [--repeats 7] [--steps 100] [--batch 128]
                                          [--json out.json]

(``--cell recurrent``: ``SequentialState(LIFRecurrentCell(700, 256), Linear(256, 20), LICell)``.)
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import interleaved_medians, make_data, save_json, training_step  # noqa: E402
from train_step import AnnFloor  # noqa: E402

SIZES = (700, 256, 20)
INPUT_SCALE = 5.0  # Norse integrates x * dt * tau_mem_inv (0.1 a step): scaled, about 13 % of the hidden layer fires


def norse_model(cell: str = "lif") -> nn.Module:
    """``Linear + LIFCell`` (or ``LIFRecurrentCell``, its own input weights) ``-> Linear -> LICell``."""
    import norse.torch as norse

    torch.manual_seed(0)
    hidden = ([nn.Linear(SIZES[0], SIZES[1]), norse.LIFCell()] if cell == "lif"
              else [norse.LIFRecurrentCell(SIZES[0], SIZES[1])])
    return norse.SequentialState(*hidden, nn.Linear(SIZES[1], SIZES[2]), norse.LICell())


class NorseStepping(nn.Module):
    """The Norse model stepped in Norse (its own loop over time); the read-out's membrane as ``mem``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        state, mems = None, []
        for t in range(x.shape[0]):
            _, state = self.model(x[t], state)
            mems.append(state[-1].v)
        return {"mem": torch.stack(mems)}


class Traced(nn.Module):
    """snngraph's compiled net of the traced model, the read-out's membrane as ``mem``."""

    def __init__(self, net: nn.Module, mem: str):
        super().__init__()
        self.net, self.mem = net, mem

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"mem": self.net(x)[self.mem]}


def snngraph_nets(model: nn.Module, example: torch.Tensor) -> dict[str, nn.Module]:
    import snngraph as sg
    from snngraph.passes import default_pipeline

    g = sg.trace(model, example)
    readout = [name for name, node in g.nodes.items() if node.op == "norse_li"][-1]
    mem = next(k for k, ref in g.outputs.items() if ref.node == readout and ref.port == "v")
    unfused = [p for p in default_pipeline() if p.name != "fuse_state_updates"]
    return {"snngraph": Traced(sg.compile(g), mem), "snngraph_derived": Traced(sg.compile(g, passes=unfused), mem)}


def hidden_rate(model: nn.Module, x: torch.Tensor) -> float:
    """The fraction of hidden neurons firing per step (the hidden cell, stepped in Norse)."""
    first = model[0] if isinstance(model[0], nn.Linear) else nn.Identity()
    cell = model[1] if isinstance(model[0], nn.Linear) else model[0]
    state, fired = None, 0.0
    with torch.no_grad():
        for t in range(x.shape[0]):
            z, state = cell(first(x[t]), state)
            fired += float(z.mean())
    return fired / x.shape[0]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--cell", choices=("lif", "recurrent"), default="lif",
                        help="the hidden cell: LIFCell after a Linear, or LIFRecurrentCell")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    x, target = make_data("mlp", SIZES, args.steps, args.batch)
    x = x * INPUT_SCALE
    nets = {"norse": NorseStepping(norse_model(args.cell)), **snngraph_nets(norse_model(args.cell), x[0]),
            "ann_floor": AnnFloor("mlp", SIZES)}
    rate = hidden_rate(nets["norse"].model, x)
    medians = interleaved_medians({name: training_step(net, x, target) for name, net in nets.items()}, args.repeats)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {args.cell} cell, T={args.steps}, "
          f"B={args.batch}, median of {args.repeats}; hidden spike rate {rate:.3f}")
    sg_ms = medians["snngraph"] * 1e3
    for name, seconds in medians.items():
        print(f"{name:<17} {seconds * 1e3:8.1f} ms   {seconds * 1e3 / sg_ms:5.2f}x snngraph")
    save_json(args.json, {"medians_s": medians, "hidden_spike_rate": rate})
    return medians


if __name__ == "__main__":
    main()
