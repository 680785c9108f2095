"""Paths that are not regular files (a FIFO, a directory, a device) are refused with ``GraphError`` before
they are opened: reading a FIFO would block until a writer comes, forever for a hostile path."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import torch

import snngraph as sg
from snngraph.cli import main

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")


def _graph() -> sg.Graph:
    torch.manual_seed(0)
    g = sg.Graph("g")
    g.output("spk", g.leaky(g.linear(g.input("x", (3,)), 3), beta=0.9))
    return g


def _session(path):
    from snngraph.runtimes.onnx import Session

    return Session(path)


def _nir(path):
    pytest.importorskip("nir")
    return sg.from_nir(path)


LOADERS = {"sg.load": sg.load, "sg.from_nir": _nir, "Session": _session}


def _call_bounded(fifo, load, seconds: float = 15.0) -> BaseException | None:
    """``load(fifo)``, bounded: should it block, a watchdog process starts, after ``seconds``, to open
    and close the FIFO again and again as a writer, so that every read sees end-of-file and the call
    ends (the test then fails). A process, not a thread: h5py blocks in ``open`` holding the GIL."""
    watchdog = subprocess.Popen(["sh", "-c", f'sleep {seconds}; while :; do : > "$0"; sleep 0.05; done', str(fifo)])
    start = time.monotonic()
    try:
        load(fifo)
        outcome = None
    except Exception as err:  # noqa: BLE001 (returned to the test)
        outcome = err
    finally:
        watchdog.kill()
        watchdog.wait()
    if time.monotonic() - start >= seconds:
        pytest.fail(f"reading the FIFO blocked for {seconds} s (then ended with {outcome!r:.200})")
    return outcome


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_a_fifo_is_refused_without_blocking(tmp_path, loader):
    fifo = tmp_path / "model.fifo"
    os.mkfifo(fifo)
    err = _call_bounded(fifo, LOADERS[loader])
    assert isinstance(err, sg.GraphError), repr(err)
    assert "model.fifo" in str(err) and "FIFO" in str(err)


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_a_directory_and_a_missing_path_are_graph_errors(tmp_path, loader):
    with pytest.raises(sg.GraphError, match="directory"):
        LOADERS[loader](tmp_path)
    with pytest.raises(sg.GraphError, match="missing.bin"):
        LOADERS[loader](tmp_path / "missing.bin")


def test_a_character_device_is_refused():
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    with pytest.raises(sg.GraphError, match="character device"):
        sg.load("/dev/zero")


def test_cli_show_refuses_a_fifo(tmp_path, capsys):
    fifo = tmp_path / "model.fifo"
    os.mkfifo(fifo)
    assert _call_bounded(fifo, lambda p: main(["show", str(p), "--no-png"])) is None
    assert "FIFO" in capsys.readouterr().err


def test_regular_files_still_load(tmp_path):
    g = _graph()
    sg.save(g, tmp_path / "g.sg")
    link = tmp_path / "link.sg"
    link.symlink_to(tmp_path / "g.sg")
    assert sg.load(link) == g
