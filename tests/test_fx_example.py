"""examples/trace_snntorch.py runs end to end (shortened): trace, parity, training, ONNX export."""

from __future__ import annotations

import importlib.util
import math
import pathlib

import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "trace_snntorch.py"


def test_trace_snntorch_example_quick(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    spec = importlib.util.spec_from_file_location("trace_snntorch_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--quick", "--out", str(tmp_path)])
    assert result["parity"] and result["onnx_spikes_equal"] and result["onnx_max_mem_diff"] < 1e-5
    assert len(result["losses"]) == 3 and all(math.isfinite(v) for v in result["losses"])
    assert result["onnx_path"].exists()
    assert "compiled == snnTorch step by step: True" in capsys.readouterr().out
