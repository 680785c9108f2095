"""``snngraph demo``: the quick run writes every file and the ONNX export matches the module."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import snngraph as sg
from snngraph import demo


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo-out")
    lines: list[str] = []
    result = demo.run(out, quick=True, progress=False, log=lines.append)
    return result, lines


def test_quick_demo_writes_every_file(quick_run):
    result, _ = quick_run
    assert set(result.files) == {"model", "onnx", "graph", "raster", "counts"}
    for path in result.files.values():
        assert path.is_file() and path.stat().st_size > 0, path
        assert path.parent == result.out_dir
    with open(result.files["graph"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(result.files["counts"]) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == demo.NUM_STEPS + 1  # one frame per step plus the empty start


def test_quick_demo_onnx_parity_and_report(quick_run):
    result, lines = quick_run
    assert result.parity.spikes_equal, str(result.parity)
    assert result.parity.spike_total == 360 * demo.NUM_STEPS * (10 + demo.HIDDEN)
    assert result.parity.max_abs_mem > 0
    assert result.parity.max_abs_mem_diff <= 1e-5 * max(1.0, result.parity.max_abs_mem)
    assert 0.0 <= result.accuracy <= 1.0
    text = "\n".join(lines)
    assert "held-out accuracy" in text and "ONNX parity" in text and "spikes equal" in text
    assert lines[-1] == f"output folder: {result.out_dir.resolve()}"


def test_saved_model_is_the_trained_network(quick_run):
    """The saved graph reloads, compiles and computes what the exported ONNX model computes."""
    result, _ = quick_run
    g = sg.load(result.files["model"])
    assert sorted(g.outputs) == ["hidden", "mem", "spk"]
    net = sg.compile(g).eval()
    xs = demo.encode(torch.rand(4, 64), num_steps=12)
    with torch.no_grad():
        want = net(xs)
    got = sg.runtimes.onnx.Session(result.files["onnx"]).run(xs)
    np.testing.assert_array_equal(got["spk"], want["spk"].numpy())
    np.testing.assert_allclose(got["mem"], want["mem"].numpy(), rtol=1e-5, atol=1e-5)


def test_data_split_and_encoding():
    data = demo.load_digits(seed=0)
    assert data.x_train.shape == (1437, 64) and data.x_test.shape == (360, 64)
    assert float(data.x_train.min()) >= 0.0 and float(data.x_train.max()) <= 1.0
    assert set(data.y_test.tolist()) == set(range(10))
    torch.manual_seed(0)
    spikes = demo.encode(data.x_test[:5], num_steps=7)
    assert spikes.shape == (7, 5, 64)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.slow
def test_full_demo_reaches_target_accuracy(tmp_path):
    result = demo.run(tmp_path, progress=False, log=lambda line: None)
    assert result.accuracy >= demo.TARGET_ACCURACY
    assert result.parity.spikes_equal
