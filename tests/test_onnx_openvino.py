"""The exported models run in OpenVINO too (hardening #19 item 19): the Scan bodies read initializers
only, since parameter expressions (a decay's clamp, Lapicque's 1/(RC)) are folded at export.

Before the fold, OpenVINO refused every sequence model ("Conversion is failed for: Scan-17").
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import snngraph as sg

ov = pytest.importorskip("openvino")

NEURONS = {
    "leaky": lambda g, h: g.leaky(h, beta=np.linspace(0.5, 0.9, 8, dtype=np.float32), learn_beta=True),
    "synaptic": lambda g, h: g.synaptic(h, alpha=0.7, beta=0.8, reset_mechanism="zero"),
    "alpha": lambda g, h: g.alpha(h, alpha=0.9, beta=0.8),
    "lapicque": lambda g, h: g.lapicque(h, R=2.0, C=np.linspace(0.5, 2.0, 8, dtype=np.float32)),
    "rleaky": lambda g, h: g.rleaky(h, beta=0.85),
    "adaptive_leaky": lambda g, h: g.adaptive_leaky(h, beta=0.9, rho=0.8, reset_delay=False),
}


def _net(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    g = sg.Graph(kind)
    x = g.input("x", shape=(6,))
    n = NEURONS[kind](g, g.linear(x, 8, name="fc"))
    g.output("spk", n)
    g.output("mem", n.mem)
    return sg.compile(g)


def _run(path, feeds: dict) -> dict:
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU")
    return {out.get_any_name(): value for out, value in compiled(feeds).items()}


@pytest.mark.parametrize("kind", sorted(NEURONS))
def test_sequence_model_runs_in_openvino(tmp_path, kind):
    net = _net(kind)
    x = torch.rand(10, 2, 6) * 2
    with torch.no_grad():
        ref = net(x)
    sg.export_onnx(net, tmp_path / "m.onnx")
    out = _run(tmp_path / "m.onnx", {"x": x.numpy()})
    assert ref["spk"].sum() > 0 and np.array_equal(out["spk"], ref["spk"].numpy())
    np.testing.assert_allclose(out["mem"], ref["mem"].numpy(), rtol=1e-5, atol=1e-5)


def test_step_model_streams_in_openvino(tmp_path):
    net = _net("synaptic")
    x = torch.rand(6, 2, 6) * 2
    with torch.no_grad():
        ref = net(x)
    sg.export_onnx(net, tmp_path / "s.onnx", mode="step")
    state = {k: v.numpy() for k, v in net.init_state(2).items()}
    for t in range(6):
        out = _run(tmp_path / "s.onnx", {"x": x[t].numpy(), **state})
        assert np.array_equal(out["spk"], ref["spk"][t].numpy())
        state = {k: out[f"{k}.next"] for k in state}
