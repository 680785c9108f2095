"""Packaging (issue #19 item 16): what a plain ``pip install snngraph`` brings, the extras, the
wheel's LICENSE and ``py.typed``, the mode of saved files, and a clean ``dir(sg)``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import snngraph as sg

ROOT = Path(__file__).resolve().parent.parent
tomllib = pytest.importorskip("tomllib")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_plain_install_exports_onnx_runs_it_and_plots():
    core = _names(PROJECT["dependencies"])
    assert {"torch", "numpy", "safetensors", "onnx", "onnxruntime", "matplotlib", "celluloid", "networkx"} <= core
    assert not {"nir", "tonic", "scikit-learn"} & core  # these stay extras, with their install hints


def test_extras_the_makefile_installs_exist_and_all_covers_the_optional_ones():
    extras = PROJECT["optional-dependencies"]
    makefile = (ROOT / "Makefile").read_text()
    wanted = re.search(r'-e "\.\[([a-z,]+)\]"', makefile).group(1).split(",")
    assert set(wanted) <= set(extras)
    assert extras["all"] == ["snngraph[nir,datasets,demo]"]
    assert _names(extras["nir"]) == {"nir"} and _names(extras["datasets"]) == {"tonic"}


def test_metadata_license_urls_classifiers():
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert {"Homepage", "Repository", "Issues"} <= set(PROJECT["urls"])
    assert "Typing :: Typed" in PROJECT["classifiers"]
    assert (ROOT / "snngraph" / "py.typed").is_file()


def test_wheel_holds_license_and_py_typed(tmp_path):
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip("building the wheel needs setuptools >= 77")
    source = tmp_path / "src"  # a copy, so the build leaves no build/ folder in the checkout
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info",
                                                                 "__pycache__", ".hypothesis", "demo-out", "*.onnx"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path), str(source)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("snngraph-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "snngraph/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "snngraph/runtimes/onnx/export.py" in names and not any(n.startswith(("passes/", "runtimes/"))
                                                                     for n in names)
    for line in ("Requires-Dist: onnxruntime>=1.18", "Requires-Dist: matplotlib>=3.7", "Provides-Extra: all",
                 "License-Expression: MIT"):
        assert line in metadata


def test_saved_files_get_the_usual_mode(tmp_path):
    g = sg.Graph("g")
    g.output("spk", g.leaky(g.input("x", (2,)), beta=0.5))
    old = os.umask(0o022)
    try:
        sg.save(g, tmp_path / "g.sg")
        os.umask(0o002)
        sg.save(g, tmp_path / "h.sg")
    finally:
        os.umask(old)
    assert (tmp_path / "g.sg").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "h.sg").stat().st_mode & 0o777 == 0o664
    assert sg.load(tmp_path / "g.sg") == g


def test_dir_shows_the_public_names_only():
    names = dir(sg)
    assert not {"Any", "annotations", "importlib"} & set(names)
    assert set(sg.__all__) <= set(names) and "__version__" in names
    assert [n for n in names if n.startswith("_")] == ["__version__"]
    code = "import snngraph as sg; assert not hasattr(sg, 'Any') and not hasattr(sg, 'annotations'), dir(sg)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_every_subpackage_is_listed_for_the_wheel():
    """A package folder missing from ``[tool.setuptools] packages`` installs editable but not from a wheel."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    roots = {"snngraph": ROOT / "snngraph", "snngraph.passes": ROOT / "passes", "snngraph.runtimes": ROOT / "runtimes"}
    found = set()
    for prefix, folder in roots.items():
        for init in folder.rglob("__init__.py"):
            rel = init.parent.relative_to(folder).parts
            if prefix == "snngraph" and rel[:1] in (("passes",), ("runtimes",)):
                continue
            found.add(".".join((prefix, *rel)))
    assert found == listed
