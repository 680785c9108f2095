"""NaN through the ONNX export behaves as in eager torch (issue #19 item 11).

onnxruntime's ``MaxPool`` skips NaN where torch propagates it; a NaN reaching a neuron must not
spike in the export when it does not spike in torch."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx_helpers import eager, export_and_check

import snngraph as sg


def _pool_graph(dims: int, padding: int) -> sg.Graph:
    g = sg.Graph("nanpool")
    x = g.input("x", (2, 4) if dims == 1 else (2, 4, 4))
    pool = g.max_pool1d if dims == 1 else g.max_pool2d
    m = pool(x, 2, padding=padding, name="mp")
    s = g.leaky(g.flatten(m), beta=0.5, threshold=-1.0, name="lif")  # NaN > -1 is False: no spike
    g.output("spk", s)
    g.output("pool", m)
    return g


def _with_nans(g: sg.Graph, steps: int = 3, batch: int = 2) -> dict[str, np.ndarray]:
    shape = g.inputs["x"].shape
    xs = np.random.default_rng(0).uniform(-1, 1, (steps, batch, *shape)).astype(np.float32)
    flat = xs.reshape(steps, batch, -1)
    flat[0, 0, 0] = np.nan
    flat[1, 1, -1] = np.nan
    flat[2, :, 3] = np.nan
    return {"x": xs}


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("unroll", [False, True])
def test_nan_through_max_pool_matches_torch(tmp_path, dims, padding, unroll):
    torch.manual_seed(0)
    g = _pool_graph(dims, padding)
    xs = _with_nans(g)
    want = eager(g, xs)
    assert np.isnan(want["pool"]).any()
    path = tmp_path / "m.onnx"
    export_and_check(g, path, num_steps=3 if unroll else None, unroll=unroll)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, xs), strict=True))
    np.testing.assert_array_equal(np.isnan(got["pool"]), np.isnan(want["pool"]))
    np.testing.assert_array_equal(got["pool"], want["pool"])  # NaN positions equal, values equal
    np.testing.assert_array_equal(got["spk"], want["spk"])


def test_nan_through_max_pool_step_mode(tmp_path):
    torch.manual_seed(0)
    g = _pool_graph(2, 1)
    xs = _with_nans(g)
    want = eager(g, xs)
    path = tmp_path / "s.onnx"
    export_and_check(g, path, mode="step")
    sess = sg.runtimes.onnx.Session(str(path))
    state = sess.init_state(2)
    for t in range(3):
        out, state = sess.step({"x": xs["x"][t]}, state)
        np.testing.assert_array_equal(out["pool"], want["pool"][t])
        np.testing.assert_array_equal(out["spk"], want["spk"][t])
