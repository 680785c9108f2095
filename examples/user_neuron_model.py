"""Declare your own neuron model once, then train, stream, save and export it like a built-in one.

The model here is an adaptive-threshold integrate-and-fire neuron: every spike raises the threshold
by ``b`` through an adaptation variable ``a`` that decays by ``rho``::

    theta[t] = threshold + b * a[t-1]
    mem[t]   = beta * mem[t-1] + x[t] - S[t-1] * theta[t-1]      (reset by subtraction; beta clamped to [0, 1])
    S[t]     = H(mem[t] - theta[t])
    a[t]     = rho * a[t-1] + S[t]

Its one declaration (``sg.neuron_model``) is all snngraph needs: the IR node, ``g.neuron(...)``, the
torch kernel (surrogate gradients, BPTT), streaming, the text form, ``sg.save``/``sg.load`` and the
ONNX export (sequence, step and unrolled) follow from it::

    python examples/user_neuron_model.py            # train a few hundred steps, export, check parity
    python examples/user_neuron_model.py --quick    # a short run (the test suite's)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

import snngraph as sg


@sg.neuron_model("adaptive_if", params={"beta": sg.ParamSpec(0.9, 0.0, 1.0, clamped=True), "threshold": 1.0,
                                        "rho": sg.ParamSpec(0.8, 0.0, 1.0), "b": sg.ParamSpec(0.2, 0.0)},
                 state=("mem", "a"))
def adaptive_if(ops, x, state, p):
    """mem[t] = beta*mem[t-1] + x[t] - S[t-1]*theta[t-1]; theta = threshold + b*a; a decays by rho."""
    theta = p["threshold"] + p["b"] * state["a"]
    mem = ops.clamp(p["beta"], 0.0, 1.0) * state["mem"] + x  # a learnt beta stays a decay
    spk = ops.spike(mem - theta)  # Heaviside forward, the node's surrogate backward
    mem = mem - ops.detach(spk) * theta
    a = p["rho"] * state["a"] + ops.detach(spk)
    return spk, {"mem": mem, "a": a}


def build(n_in: int = 8, n_hidden: int = 32, n_out: int = 2) -> sg.Graph:
    """``x -> linear -> adaptive_if (per-neuron, learnt beta) -> linear -> leaky``; outputs spikes and ``a``."""
    g = sg.Graph("adaptive")
    x = g.input("x", shape=(n_in,))
    betas = np.linspace(0.7, 0.95, n_hidden, dtype=np.float32)
    h = g.neuron("adaptive_if", g.linear(x, n_hidden, name="fc1"), beta=betas, b=0.3, learn=("beta", "b"),
                 spike_grad=sg.surrogate.fast_sigmoid(), name="alif")
    out = g.leaky(g.linear(h, n_out, name="fc2"), beta=0.9, name="readout")
    g.output("spk", out)
    g.output("a", h.a)
    return g


def make_batch(batch: int, steps: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 1: channel 0 fires early and channel 1 late; class 0: the reverse (rate-coded bursts)."""
    labels = torch.randint(0, 2, (batch,), generator=gen)
    t = torch.arange(steps, dtype=torch.float32)[:, None]
    early, late = (t < steps / 2).float(), (t >= steps / 2).float()
    x = torch.rand(steps, batch, 8, generator=gen) * 0.3
    x[:, :, 0] += torch.where(labels.bool(), early, late) * 2.0
    x[:, :, 1] += torch.where(labels.bool(), late, early) * 2.0
    return x, labels


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=25, help="time steps per sample")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    g = build()
    net = sg.compile(g)
    opt = torch.optim.Adam(net.parameters(), lr=2e-2)
    for _ in range(10 if args.quick else 200):
        x, y = make_batch(32, args.steps, gen)
        loss = sg.functional.ce_rate_loss()(net(x)["spk"], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = make_batch(256, args.steps, gen)
    with torch.no_grad():
        out = net(x)
        accuracy = float(sg.functional.accuracy_rate(out["spk"], y))
        state, streamed = net.init_state(4), []
        for t in range(args.steps):
            o, state = net.step(x[t, :4], state)
            streamed.append(o["spk"])
    streamed_equal = bool(torch.equal(torch.stack(streamed), out["spk"][:, :4]))
    result = {"accuracy": accuracy, "loss": float(loss.detach()), "streamed_equal": streamed_equal}
    print(f"accuracy {accuracy:.2f}, streamed == sequence: {result['streamed_equal']}")
    with tempfile.TemporaryDirectory() as tmp:
        trained = net.to_graph()
        sg.save(trained, Path(tmp) / "adaptive.sg")
        result["reload_equal"] = sg.load(Path(tmp) / "adaptive.sg").nodes["alif"] == trained.nodes["alif"]
        result["onnx_spikes_equal"] = _onnx_matches(net, x[:, :4], out, Path(tmp))
    print(f"saved and loaded back: {result['reload_equal']}; ONNX (sequence, unrolled) spikes equal: "
          f"{result['onnx_spikes_equal']}")
    return result


def _onnx_matches(net: torch.nn.Module, x: torch.Tensor, out: dict, folder: Path) -> bool:
    import onnxruntime as ort

    equal = True
    for name, kw in (("sequence", {}), ("unrolled", {"num_steps": x.shape[0], "unroll": True})):
        path = folder / f"{name}.onnx"
        sg.export_onnx(net, path, **kw)
        spk = ort.InferenceSession(str(path)).run(["spk"], {"x": x.numpy()})[0]
        equal = equal and np.array_equal(spk, out["spk"][:, :4].numpy())
    return equal


if __name__ == "__main__":
    main()
