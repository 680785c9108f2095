"""examples/trace_spikingjelly.py runs end to end (shortened): trace, parity, training, state_dict back
into SpikingJelly, ONNX export."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

pytest.importorskip("spikingjelly.activation_based")
from tests.sj_helpers import zoo  # noqa: E402

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "trace_spikingjelly.py"


@pytest.mark.slow  # ~30 s on a shared 2-core machine (SEW-ResNet-18 training step and ONNX export)
def test_trace_spikingjelly_example_quick(tmp_path, capsys):
    zoo("sew_resnet")  # the torchvision stand-in, before the example imports the zoo
    spec = importlib.util.spec_from_file_location("trace_spikingjelly_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--quick", "--out", str(tmp_path)])
    assert result["parity_max_diff"] <= 1e-5
    assert len(result["losses"]) == 1 and result["losses"][0] > 0
    assert result["onnx_path"].exists() and result["onnx_path"].parent == tmp_path
    assert result["onnx_max_diff"] <= 1e-5 * max(1.0, result["output_scale"])
    assert "compiled vs SpikingJelly" in capsys.readouterr().out
