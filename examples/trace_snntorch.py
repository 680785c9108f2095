"""Compile an unmodified snnTorch model with snngraph: trace, check, train, export to ONNX.

The model is snnTorch tutorial 7's convolutional SNN, written exactly as the tutorial writes it
(``init_hidden=True`` neurons inside ``nn.Sequential``). ``sg.trace`` turns it into the IR,
``sg.compile`` into a module that runs whole sequences ``(T, B, ...)``, starting from the snnTorch
model's weights. The data is synthetic (noisy class prototypes), so the script runs
offline::

    python examples/trace_snntorch.py            # 25 training iterations (about 100% accuracy)
    python examples/trace_snntorch.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile
import time

import snntorch as snn
import torch
from snntorch import surrogate
from snntorch import utils as snn_utils
from torch import nn

import snngraph as sg


def snntorch_csnn(beta: float = 0.5) -> nn.Sequential:
    """snnTorch tutorial 7's network, unmodified."""
    spike_grad = surrogate.fast_sigmoid(slope=25)
    return nn.Sequential(nn.Conv2d(1, 12, 5),
                         nn.MaxPool2d(2),
                         snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True),
                         nn.Conv2d(12, 64, 5),
                         nn.MaxPool2d(2),
                         snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True),
                         nn.Flatten(),
                         nn.Linear(64 * 4 * 4, 10),
                         snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True, output=True))


def synthetic_batch(prototypes: torch.Tensor, batch: int, num_steps: int, gen: torch.Generator):
    """Noisy copies of the class prototypes, fed at every step as tutorial 7 feeds MNIST images:
    inputs (T, B, 1, 28, 28) and labels (B,)."""
    labels = torch.randint(0, prototypes.shape[0], (batch,), generator=gen)
    flips = torch.rand((batch, 1, 28, 28), generator=gen) < 0.1
    images = torch.where(flips, 1 - prototypes[labels], prototypes[labels])
    return images.expand(num_steps, *images.shape), labels


def snntorch_forward(model: nn.Module, x_seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The snnTorch way: reset the hidden state, loop over time."""
    snn_utils.reset(model)
    spk_rec, mem_rec = [], []
    for x_t in x_seq:
        spk, mem = model(x_t)
        spk_rec.append(spk)
        mem_rec.append(mem)
    return torch.stack(spk_rec), torch.stack(mem_rec)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run (for tests)")
    parser.add_argument("--iterations", type=int, default=25)
    parser.add_argument("--out", type=pathlib.Path, default=None, help="where to write the ONNX model")
    args = parser.parse_args(argv)
    iterations, batch, num_steps = (3, 8, 5) if args.quick else (args.iterations, 32, 10)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    prototypes = (torch.rand((10, 1, 28, 28), generator=gen) > 0.5).float()

    model = snntorch_csnn()
    x_seq, labels = synthetic_batch(prototypes, batch, num_steps, gen)
    graph = sg.trace(model, x_seq[0])
    print(graph)
    net = sg.compile(graph)

    # 1. the compiled graph computes what the snnTorch model computes
    out = net(x_seq)
    spk_ref, mem_ref = snntorch_forward(model, x_seq)
    parity = torch.equal(out["spk"], spk_ref) and torch.allclose(out["mem"], mem_ref, atol=1e-5)
    print(f"compiled == snnTorch step by step: {parity}")

    # 2. train the compiled module: tutorial 5's loss (cross entropy of the output membrane at
    #    every step, averaged here), Adam as in tutorial 7; accuracy from the spike counts
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2, betas=(0.9, 0.999))
    losses = []
    start = time.perf_counter()
    for it in range(iterations):
        x_seq, labels = synthetic_batch(prototypes, batch, num_steps, gen)
        out = net(x_seq)
        mem = out["mem"]
        loss = nn.functional.cross_entropy(mem.flatten(0, 1), labels.repeat(mem.shape[0]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if it % max(1, iterations // 10) == 0 or it == iterations - 1:
            acc = sg.functional.accuracy_rate(out["spk"], labels)
            print(f"iteration {it:3d}  loss {loss.item():.3f}  accuracy {acc:.2f}")
    print(f"{(time.perf_counter() - start) / iterations * 1e3:.1f} ms per training iteration")

    # 3. export the trained net to ONNX and check onnxruntime against it
    net.eval()
    out_dir = args.out or pathlib.Path(tempfile.mkdtemp())
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "csnn.onnx"
    sg.export_onnx(net, path)
    got = sg.runtimes.onnx.Session(path).run(x_seq.numpy())
    with torch.no_grad():
        want = net(x_seq)
    onnx_equal = bool((got["spk"] == want["spk"].numpy()).all())
    onnx_mem = float(abs(got["mem"] - want["mem"].numpy()).max())
    print(f"ONNX model written to {path}: spikes equal {onnx_equal}, max membrane difference {onnx_mem:.2e}")
    return {"parity": parity, "losses": losses, "onnx_spikes_equal": onnx_equal, "onnx_max_mem_diff": onnx_mem,
            "onnx_path": path}


if __name__ == "__main__":
    main()
