"""Compile an unmodified SpikingJelly 2.0 SEW-ResNet with snngraph: trace, check, train, export to ONNX.

The model is SpikingJelly's zoo ``sew_resnet18`` (ADD connections, LIF neurons, multi-step mode),
built as SpikingJelly's examples build it. ``sg.trace`` reads it from the ``(T, B, 3, 32, 32)``
input it takes; ``sg.compile`` gives a module that runs whole sequences from the model's weights.
The data is synthetic (noisy class prototypes), so the script runs offline::

    python examples/trace_spikingjelly.py            # 10 training iterations
    python examples/trace_spikingjelly.py --quick    # a few iterations on a tiny batch

SpikingJelly's zoo modules import torchvision (for pretrained weights only): install it beside your
torch to run this script.
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile
import time

import torch
from spikingjelly.activation_based import functional, neuron, surrogate
from spikingjelly.activation_based.model import sew_resnet
from torch import nn

import snngraph as sg


def spikingjelly_sew_resnet18(num_classes: int = 10) -> nn.Module:
    """SpikingJelly's SEW-ResNet-18, unmodified, in multi-step mode."""
    model = sew_resnet.sew_resnet18(cnf="ADD", num_classes=num_classes, spiking_neuron=neuron.LIFNode, tau=2.0,
                                    surrogate_function=surrogate.ATan(), detach_reset=True)
    functional.set_step_mode(model, "m")
    return model


def synthetic_batch(prototypes: torch.Tensor, batch: int, num_steps: int, gen: torch.Generator):
    """Noisy copies of the class prototypes, the same image at every step: (T, B, 3, 32, 32) and (B,)."""
    labels = torch.randint(0, prototypes.shape[0], (batch,), generator=gen)
    images = (prototypes[labels] + 0.3 * torch.randn((batch, 3, 32, 32), generator=gen)).clamp(0, 1)
    return images.expand(num_steps, *images.shape).contiguous(), labels


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run (for tests)")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--out", type=pathlib.Path, default=None, help="where to write the ONNX model")
    args = parser.parse_args(argv)
    iterations, batch, num_steps = (1, 2, 2) if args.quick else (args.iterations, 16, 4)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    prototypes = torch.rand((10, 3, 32, 32), generator=gen)

    model = spikingjelly_sew_resnet18()
    x_seq, labels = synthetic_batch(prototypes, batch, num_steps, gen)
    graph = sg.trace(model, x_seq)  # multi-step model: traced from the (T, B, ...) input it takes
    print(f"traced {len(graph.nodes)} nodes: {sum(n.family == 'neuron' for n in graph.nodes.values())} neurons")
    net = sg.compile(graph)

    # 1. the compiled graph computes what SpikingJelly computes (evaluation mode: in training mode the
    #    batch norms of a multi-step SpikingJelly model pool the T*B rows, snngraph's each step's B)
    model.eval()
    net.eval()
    with torch.no_grad():
        functional.reset_net(model)
        want = model(x_seq)
        got = net(x_seq)["out"]
    parity = float((got - want).abs().max())
    print(f"compiled vs SpikingJelly (multi-step): max output difference {parity:.2e}")

    # 2. train the compiled module: cross entropy of the time-averaged output, Adam
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    start = time.perf_counter()
    for it in range(iterations):
        x_seq, labels = synthetic_batch(prototypes, batch, num_steps, gen)
        out = net(x_seq)["out"].mean(0)
        loss = nn.functional.cross_entropy(out, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        print(f"iteration {it:3d}  loss {loss.item():.3f}  accuracy {(out.argmax(1) == labels).float().mean():.2f}")
    print(f"{(time.perf_counter() - start) / iterations * 1e3:.0f} ms per training iteration")

    # 3. the trained weights go back into the SpikingJelly model (same state_dict keys) ...
    model.load_state_dict(net.state_dict())

    # 4. ... and the trained net to ONNX, checked in onnxruntime
    net.eval()
    out_dir = args.out or pathlib.Path(tempfile.mkdtemp())
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "sew_resnet18.onnx"
    sg.export_onnx(net, path)
    onnx_out = sg.runtimes.onnx.Session(path).run(x_seq.numpy())["out"]
    with torch.no_grad():
        eager = net(x_seq)["out"].numpy()
    onnx_diff = float(abs(onnx_out - eager).max())
    print(f"ONNX model written to {path}: max output difference vs the compiled module {onnx_diff:.2e}")
    return {"parity_max_diff": parity, "losses": losses, "onnx_max_diff": onnx_diff, "onnx_path": path,
            "output_scale": float(abs(eager).max())}


if __name__ == "__main__":
    main()
