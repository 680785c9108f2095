"""The inference benchmark script runs end to end (slow: it times a 784-1000-10 MLP)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


@pytest.mark.slow
def test_inference_benchmark_quick(capsys):
    path = Path(__file__).parents[1] / "benchmarks" / "inference.py"
    spec = importlib.util.spec_from_file_location("bench_inference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = module.main(["--quick", "--steps", "3"])
    assert set(results) == {"streaming", "sequence"}
    assert all(v > 0 for r in results.values() for v in r.values())
    assert "vs snnTorch" in capsys.readouterr().out
