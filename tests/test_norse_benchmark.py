"""``benchmarks/norse_train_step.py`` runs end to end on a small shape (never timing thresholds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from snngraph import cli

pytest.importorskip("norse.torch")
SCRIPT = Path(__file__).parents[1] / "benchmarks" / "norse_train_step.py"


@pytest.mark.parametrize("cell", ["lif", "recurrent"])
def test_norse_benchmark_runs(capsys, tmp_path, cell):
    medians = cli._import_benchmark(SCRIPT).main(["--cell", cell, "--repeats", "1", "--steps", "4", "--batch", "2",
                                                 "--json", str(tmp_path / "out.json")])
    assert set(medians) == {"norse", "snngraph", "snngraph_derived", "ann_floor"}
    assert all(v > 0 for v in medians.values())
    out = capsys.readouterr().out
    assert "x snngraph" in out and (tmp_path / "out.json").exists()
