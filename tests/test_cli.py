"""The ``snngraph`` console script: help, show, export, bench dispatch and user errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import snngraph as sg
from snngraph import cli
from snngraph.cli import main


def _graph() -> sg.Graph:
    torch.manual_seed(0)
    g = sg.Graph("tiny")
    x = g.input("x", shape=(6,))
    s = g.leaky(g.linear(x, 8, name="fc1"), beta=0.8, name="lif1")
    o = g.synaptic(g.linear(s, 3, name="fc2"), alpha=0.7, beta=0.9, name="lif2")
    g.output("spk", o)
    g.output("mem", o.mem)
    return g


@pytest.fixture
def model(tmp_path) -> Path:
    path = tmp_path / "tiny.sg"
    sg.save(_graph(), path)
    return path


@pytest.mark.parametrize("command", [None, "demo", "export", "show", "bench"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(([command] if command else []) + ["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: snngraph{' ' + command if command else ''}")
    if command is None:
        for name in ("demo", "export", "show", "bench"):
            assert name in out


def test_console_script_is_installed():
    """The ``snngraph`` entry point declared in pyproject runs (same interpreter's bin folder)."""
    script = Path(sys.executable).parent / "snngraph"
    if not script.exists():
        pytest.skip("package not installed with its console script in this environment")
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"snngraph {sg.__version__}"


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_show_prints_text_and_draws(model, tmp_path, capsys):
    png = tmp_path / "pic.png"
    assert main(["show", str(model), "--png", str(png)]) == 0
    out = capsys.readouterr().out
    text = _graph().to_text()
    assert out.startswith(text)
    assert sg.parse(out[: len(text)]).to_text() == text
    assert f"picture: {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_show_default_picture_path_and_no_png(model, capsys):
    assert main(["show", str(model)]) == 0
    assert capsys.readouterr().out.endswith(f"picture: {model.with_suffix('.png')}\n")
    assert model.with_suffix(".png").is_file()
    model.with_suffix(".png").unlink()
    assert main(["show", str(model), "--no-png", "--with-params"]) == 0
    assert not model.with_suffix(".png").exists()
    out = capsys.readouterr().out
    assert out == sg.load(model).to_text(with_params=True)
    assert sg.parse(out) == sg.load(model)


@pytest.mark.parametrize("mode", ["sequence", "step"])
def test_export_writes_a_model_that_matches_the_graph(model, tmp_path, capsys, mode):
    out = tmp_path / f"tiny_{mode}.onnx"
    assert main(["export", str(model), "--onnx", str(out), "--mode", mode]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    net = sg.compile(sg.load(model)).eval()
    xs = (torch.rand(9, 2, 6) * 2).float()
    with torch.no_grad():
        want = net(xs)
    got = sg.runtimes.onnx.Session(out).run(xs)
    np.testing.assert_array_equal(got["spk"], want["spk"].numpy())
    np.testing.assert_allclose(got["mem"], want["mem"].numpy(), rtol=1e-5, atol=1e-6)


def test_export_fixed_num_steps(model, tmp_path):
    out = tmp_path / "fixed.onnx"
    assert main(["export", str(model), "--onnx", str(out), "--num-steps", "5"]) == 0
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_value == 5


def test_export_unrolled_has_no_scan_and_matches(model, tmp_path, capsys):
    out = tmp_path / "unrolled.onnx"
    assert main(["export", str(model), "--onnx", str(out), "--num-steps", "4", "--unroll"]) == 0
    assert "unrolled" in capsys.readouterr().out
    proto = onnx.load(str(out))
    assert not {n.op_type for n in proto.graph.node} & {"Scan", "Loop"}
    net = sg.compile(sg.load(model)).eval()
    xs = (torch.rand(4, 2, 6) * 2).float()
    with torch.no_grad():
        want = net(xs)
    got = sg.runtimes.onnx.Session(out).run(xs)
    np.testing.assert_array_equal(got["spk"], want["spk"].numpy())


def test_export_unroll_needs_num_steps(model, tmp_path, capsys):
    assert main(["export", str(model), "--onnx", str(tmp_path / "u.onnx"), "--unroll"]) == 1
    assert "cannot export" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["show", "export"])
def test_missing_model_file(tmp_path, capsys, command):
    argv = [command, str(tmp_path / "nope.sg")] + (["--onnx", str(tmp_path / "x.onnx")] if command == "export" else [])
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"snngraph {command}: error: no such model file:") and "nope.sg" in err


def test_corrupt_model_file(tmp_path, capsys):
    bad = tmp_path / "bad.sg"
    bad.write_bytes(b"\x00not a graph at all")
    assert main(["show", str(bad)]) == 1
    assert capsys.readouterr().err.startswith(f"snngraph show: error: cannot read {bad}:")


def test_export_into_missing_folder(model, tmp_path, capsys):
    assert main(["export", str(model), "--onnx", str(tmp_path / "no" / "such" / "m.onnx")]) == 1
    assert "output folder does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["export", "m.sg", "--onnx", "o.onnx", "--num-steps", "0"],
                                  ["export", "m.sg", "--onnx", "o.onnx", "--mode", "scan"],
                                  ["export", "m.sg"],
                                  ["demo", "--epochs", "many"],
                                  ["show", "m.sg", "--bogus"]])
def test_bad_options_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: snngraph") and "error:" in err
    assert argv[-1] in err or argv[-2] in err  # names the offending option or value


def test_demo_command_passes_options_and_fails_on_parity(monkeypatch, tmp_path, capsys):
    from snngraph import demo

    calls = []

    def fake_run(**kwargs):
        calls.append(kwargs)
        equal = kwargs["seed"] == 0
        return demo.DemoResult(0.5, demo.Parity(equal, 0 if equal else 3, 10, 0.0), 1.0, tmp_path)

    monkeypatch.setattr(demo, "run", fake_run)
    assert main(["demo", "--quick", "--out", str(tmp_path), "--epochs", "3", "--no-progress"]) == 0
    assert calls[-1] == {"out_dir": str(tmp_path), "epochs": 3, "quick": True, "seed": 0, "progress": False}
    assert main(["demo", "--seed", "1"]) == 1
    assert calls[-1]["out_dir"] == "demo-out" and calls[-1]["epochs"] is None
    assert "ONNX parity failed: 3 spikes differ" in capsys.readouterr().err


def _fake_benchmarks(folder: Path) -> Path:
    folder.mkdir()
    for name in ("train_step", "inference", "compile", "gpu"):
        (folder / f"{name}.py").write_text(
            "import json, pathlib\n"
            "def main(argv=None):\n"
            f"    p = pathlib.Path(__file__).with_name('{name}.calls')\n"
            "    p.write_text(json.dumps(list(argv)))\n"
            "    return 0\n")
    return folder


@pytest.mark.parametrize(("which", "ran"), [([], ["train_step", "inference"]), (["train"], ["train_step"]),
                                            (["inference"], ["inference"]), (["compile"], ["compile"]),
                                            (["gpu"], ["gpu"])])
def test_bench_calls_the_benchmark_mains(monkeypatch, tmp_path, capsys, which, ran):
    folder = _fake_benchmarks(tmp_path / "benchmarks")
    monkeypatch.setattr(cli, "find_benchmarks", lambda: folder)
    assert main(["bench", *which, "--quick", "--", "--repeats", "2"]) == 0
    for name in ("train_step", "inference", "compile", "gpu"):
        calls = folder / f"{name}.calls"
        assert calls.exists() == (name in ran)
        if name in ran:
            assert calls.read_text() == '["--quick", "--repeats", "2"]'
    assert capsys.readouterr().out.count("== benchmark:") == len(ran)


def test_bench_compile_missing_from_an_older_checkout(monkeypatch, tmp_path, capsys):
    folder = _fake_benchmarks(tmp_path / "benchmarks")
    (folder / "compile.py").unlink()
    monkeypatch.setattr(cli, "find_benchmarks", lambda: folder)
    assert main(["bench", "compile"]) == 1
    assert "has no compile.py" in capsys.readouterr().err
    assert main(["bench", "train"]) == 0


def test_bench_without_a_checkout(monkeypatch, capsys):
    monkeypatch.setattr(cli, "find_benchmarks", lambda: None)
    assert main(["bench", "--quick"]) == 1
    assert "benchmarks/ not found" in capsys.readouterr().err


def test_find_benchmarks_in_this_checkout():
    folder = cli.find_benchmarks()
    if folder is None:
        pytest.skip("not a source checkout")
    assert (folder / "train_step.py").is_file() and (folder / "inference.py").is_file()


def test_export_rejected_by_the_exporter(model, tmp_path, capsys):
    """Exporter errors (here: a fixed T for a step model) become one-line errors, exit 1."""
    assert main(["export", str(model), "--onnx", str(tmp_path / "s.onnx"), "--mode", "step", "--num-steps", "4"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"snngraph export: error: cannot export {model}:") and "num_steps" in err
    assert not (tmp_path / "s.onnx").exists()


def _hostile_benchmarks(folder: Path, marker: Path) -> None:
    """``benchmarks/*.py`` that would leave ``marker`` behind if anything ran them."""
    folder.mkdir(parents=True)
    for name in ("train_step", "inference"):
        (folder / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef main(argv=None):\n    return 0\n")


@pytest.mark.parametrize("stray_next_to_package", [False, True])
def test_bench_in_an_installed_package_never_runs_scripts_from_the_working_directory(
        monkeypatch, tmp_path, capsys, stray_next_to_package):
    """An installed (non-editable) package: ``snngraph/`` in site-packages, no pyproject.toml above it.
    Neither ``./benchmarks`` nor a stray ``site-packages/benchmarks`` is run."""
    site = tmp_path / "site-packages"
    (site / "snngraph").mkdir(parents=True)
    monkeypatch.setattr(cli, "__file__", str(site / "snngraph" / "cli.py"))
    marker = tmp_path / "ran"
    _hostile_benchmarks(tmp_path / "work" / "benchmarks", marker)
    if stray_next_to_package:
        _hostile_benchmarks(site / "benchmarks", marker)
    monkeypatch.chdir(tmp_path / "work")
    assert cli.find_benchmarks() is None
    assert main(["bench", "--quick"]) == 1
    err = capsys.readouterr().err
    assert "benchmarks/ not found" in err and "never run" in err and str(site / "snngraph") in err
    assert not marker.exists()


def test_find_benchmarks_of_a_source_checkout(monkeypatch, tmp_path):
    (tmp_path / "snngraph").mkdir()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "snngraph"\n')
    _fake_benchmarks(tmp_path / "benchmarks")
    monkeypatch.setattr(cli, "__file__", str(tmp_path / "snngraph" / "cli.py"))
    assert cli.find_benchmarks() == tmp_path / "benchmarks"
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\n')
    assert cli.find_benchmarks() is None
