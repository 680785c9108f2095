"""``benchmarks/sequence_neurons.py`` runs end to end on a small shape (never timing thresholds)."""

from __future__ import annotations

import json
from pathlib import Path

from snngraph import cli

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "sequence_neurons.py"


def test_sequence_neurons_benchmark_runs(capsys, tmp_path):
    out_file = tmp_path / "out.json"
    results = cli._import_benchmark(SCRIPT).main(["--steps", "4", "--batch", "2", "--repeats", "1",
                                                  "--json", str(out_file)])
    assert set(results) == {"StateLeaky", "LeakyParallel", "AssociativeLeaky"}
    for r in results.values():
        assert r["snngraph_ms"] > 0 and r["snntorch_ms"] > 0 and r["ratio"] > 0
    assert json.loads(out_file.read_text()).keys() == results.keys()
    assert "snntorch/sg" in capsys.readouterr().out
