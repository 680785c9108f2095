"""``benchmarks/compile.py`` runs end to end and returns sane numbers (never timing thresholds).

The fast case compiles with ``aot_eager`` (dynamo + AOT autograd, no code generation); the slow
one runs the script's ``--quick`` as shipped (inductor, both regimes, about a minute on 2 cores).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from snngraph import cli

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "compile.py"


def _run(argv: list[str]) -> dict:
    return cli._import_benchmark(SCRIPT).main(argv)


def _check(results: dict, regimes: list[str]) -> None:
    assert list(results) == regimes
    for regime in regimes:
        assert set(results[regime]) == {"train", "infer"}
        for r in results[regime].values():
            assert all(r[k] > 0 for k in ("compile_s", "eager_s", "compiled_s", "ratio"))
            assert r["ratio"] == pytest.approx(r["compiled_s"] / r["eager_s"])
            assert len(r["shapes"]) == len(set(r["shapes"])) == 3
            assert r["unique_graphs"] == 1 + r["recompiles"]  # one frame (fullgraph): extra graphs are recompiles
            assert r["graph_breaks"] == 0


def test_compile_benchmark_aot_eager_mlp(capsys):
    results = _run(["--quick", "--regimes", "mlp", "--backend", "aot_eager"])
    _check(results, ["mlp"])
    assert results["mlp"]["train"]["recompiles"] == 0  # aot_eager adds no inductor guards
    out = capsys.readouterr().out
    assert "backend aot_eager" in out and "comp/eag" in out and "25x128, 12x128, 12x64" in out


def test_compile_benchmark_rejects_an_unknown_regime(capsys):
    with pytest.raises(SystemExit):
        _run(["--regimes", "mlp,nope"])
    assert "unknown regime(s) nope" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # inside inductor
def test_compile_benchmark_quick_inductor(tmp_path):
    results = _run(["--quick", "--fresh-cache", "--json", str(tmp_path / "r.json")])
    _check(results, ["mlp", "shd"])
    assert (tmp_path / "r.json").is_file()
