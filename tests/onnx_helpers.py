"""Shared helpers of the ONNX tests: quantised graphs, export + onnxruntime vs eager comparisons."""

from __future__ import annotations

import numpy as np
import onnx
import torch

import snngraph as sg
from snngraph.ir.types import Param
from snngraph.runtimes.onnx import Session

# Weight-like parameters rounded to multiples of 1/32 and inputs to multiples of 1/8 make every
# matmul / convolution sum exact in float32, whatever the summation order of the engine, so the
# comparison of spikes is exact by construction rather than by luck.
WEIGHT_KEYS = ("weight", "bias", "recurrent_weight", "recurrent_bias")


def quantise(g: sg.Graph, step: float = 1 / 32) -> sg.Graph:
    """``g`` with every weight and bias rounded to a multiple of ``step``."""
    changes = {}
    for name, node in g.nodes.items():
        updates = {k: v.with_value(np.round(v.value / step) * step) for k, v in node.fields().items()
                   if k in WEIGHT_KEYS and isinstance(v, Param)}
        if updates:
            changes[name] = node.replace(**updates)
    return g.with_nodes(changes)


def inputs_for(g: sg.Graph, steps: int, batch: int, seed: int = 0, scale: float = 2.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: (np.round(rng.uniform(-0.5, 1.0, (steps, batch, *node.shape)) * scale * 8) / 8).astype(np.float32)
            for n, node in g.inputs.items()}


def eager(g: sg.Graph, xs: dict[str, np.ndarray], net=None) -> dict[str, np.ndarray]:
    net = net if net is not None else sg.compile(g)
    net.eval()
    with torch.no_grad():
        out = net(**{k: torch.from_numpy(v) for k, v in xs.items()})
    return {k: v.numpy() for k, v in out.items()}


def assert_close(name: str, got: np.ndarray, want: np.ndarray, spike: bool) -> None:
    """Spikes exactly equal; analog values within 1e-5 relative to the output's magnitude."""
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    if spike:
        assert np.array_equal(got, want), f"{name}: spikes differ at {np.argwhere(got != want)[:5].tolist()}"
        return
    err = float(np.max(np.abs(got - want))) if got.size else 0.0
    scale = max(1.0, float(np.max(np.abs(want))) if want.size else 0.0)
    assert err <= 1e-5 * scale, f"{name}: max error {err:g} (scale {scale:g})"


def export_and_check(g_or_net, path, **kwargs) -> onnx.ModelProto:
    model = sg.export_onnx(g_or_net, path, **kwargs)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    return model


def compare(g: sg.Graph, tmp_path, shapes=((5, 2),), mode: str = "sequence", seed: int = 0, net=None,
            scale: float = 2.0) -> dict[str, np.ndarray]:
    """Export ``g`` (or ``net``) once, run it in onnxruntime for each (T, B) and compare with eager."""
    path = tmp_path / f"{g.name}_{mode}.onnx"
    export_and_check(net if net is not None else g, path, mode=mode)
    sess = Session(path)
    spikes = {k: g.type_of(r).spike for k, r in g.outputs.items()}
    out = {}
    for steps, batch in shapes:
        xs = inputs_for(g, steps, batch, seed, scale)
        want = eager(g, xs, net)
        got = sess.run(xs)
        assert set(got) == set(want)
        for key in want:
            assert_close(f"{key} (T={steps}, B={batch})", got[key], want[key], spikes[key])
        out = want
    return out
