"""``benchmarks/gpu.py``: a clear exit without CUDA, and its plumbing end to end on CPU tensors in a
smoke run (a few steps; never timing thresholds). The GPU numbers come from ``benchmarks/gpu_check.sh``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from snngraph import cli

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu.py"


def _main(argv: list[str]):
    return cli._import_benchmark(SCRIPT).main(argv)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_exits_with_a_message_without_cuda(capsys):
    assert _main([]) == 2
    assert "needs a CUDA device" in capsys.readouterr().err


def test_smoke_run_on_cpu_reports_every_library(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")  # kernels='triton' on CPU tensors: a reported GraphError
    results = _main(["--device", "cpu", "--quick", "--repeats", "1", "--regimes", "shd100,rec"])
    assert list(results) == ["shd100", "rec"]
    for regime, r in results.items():
        for lib in ("sg_torch", "snntorch", "ann_floor"):
            assert r[lib]["time_ms"] > 0, (regime, lib)
        assert "error" in r["sg_triton"] and "time_ms" not in r["sg_triton"]
        for lib in ("spikingjelly", "sg_sj"):  # (SpikingJelly's net, run by itself and traced by snngraph)
            if regime == "rec" or importlib.util.find_spec("spikingjelly") is None:  # (no counterpart of rec)
                assert "error" in r[lib]
            else:
                assert r[lib]["time_ms"] > 0
