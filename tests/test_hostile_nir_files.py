"""NIR files whose bytes are not inside them (external storage, external links, virtual datasets) or that
inflate far beyond their size (compression bombs) are refused by ``sg.from_nir`` before anything is read."""

from __future__ import annotations

import os
import tracemalloc
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

import snngraph as sg
from snngraph.frontends import nir_file

h5py = pytest.importorskip("h5py")
pytest.importorskip("nir")

MiB = 1 << 20
WEIGHT = "node/nodes/fc/weight"  # float32 (4, 3)


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> bytes:
    torch.manual_seed(0)
    g = sg.Graph("small")
    g.output("spk", g.leaky(g.linear(g.input("x", (3,)), 4, name="fc"), beta=0.9, name="lif"))
    path = tmp_path_factory.mktemp("nir") / "small.nir"
    sg.to_nir(g, dt=1.0, path=path)
    return path.read_bytes()


def _copy(export: bytes, folder: Path, name: str = "model.nir") -> Path:
    path = folder / name
    path.write_bytes(export)
    return path


def _import(path: Path) -> sg.Graph:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return sg.from_nir(path)


def _secret(folder: Path) -> tuple[Path, np.ndarray]:
    values = np.arange(1, 13, dtype=np.float32) * 0.125
    path = folder / "secret.bin"
    path.write_bytes(values.tobytes())
    return path, values


def _external_storage(path: Path, target: str) -> None:
    with h5py.File(path, "a") as f:
        del f[WEIGHT]
        f.create_dataset(WEIGHT, shape=(4, 3), dtype="f4", external=[(target, 0, 48)])


@pytest.mark.parametrize("where", ["absolute", "relative", "proc"])
def test_external_storage_is_refused(export, tmp_path, where):
    """Before: the weight held the bytes of another local file (here a 'secret'; /proc/self/environ too)."""
    secret, _ = _secret(tmp_path)
    inner = tmp_path / "models"
    inner.mkdir()
    path = _copy(export, inner)
    target = {"absolute": str(secret), "relative": os.path.join("..", secret.name), "proc": "/proc/self/environ"}
    _external_storage(path, target[where])
    with pytest.raises(sg.GraphError, match=f"model.nir.*dataset '{WEIGHT}' keeps its bytes in external files"):
        _import(path)


def test_external_storage_was_read_before(export, tmp_path):
    """The finding itself, with the checks switched off: the file reads another file's bytes silently."""
    secret, values = _secret(tmp_path)
    path = _copy(export, tmp_path)
    _external_storage(path, str(secret))
    with h5py.File(path, "r") as f:
        assert np.array_equal(f[WEIGHT][()].reshape(-1), values)  # what nir.read hands to the importer


def test_external_link_is_refused(export, tmp_path):
    other = _copy(export, tmp_path, "other.nir")
    path = _copy(export, tmp_path)
    with h5py.File(path, "a") as f:
        del f["node/nodes/fc"]
        f["node/nodes/fc"] = h5py.ExternalLink(str(other), "/node/nodes/fc")
    with pytest.raises(sg.GraphError, match="'node/nodes/fc' is an external link to .*other.nir"):
        _import(path)


def test_soft_link_and_repeated_hard_link_are_refused(export, tmp_path):
    path = _copy(export, tmp_path)
    with h5py.File(path, "a") as f:
        del f["node/nodes/fc/bias"]
        f["node/nodes/fc/bias"] = h5py.SoftLink("/node/nodes/lif/tau")
    with pytest.raises(sg.GraphError, match="'node/nodes/fc/bias' is a soft link"):
        _import(path)
    path = _copy(export, tmp_path, "hard.nir")
    with h5py.File(path, "a") as f:
        f["node/nodes/lif/metadata/again"] = f["node/nodes/fc"]
    with pytest.raises(sg.GraphError, match="links to an object already linked elsewhere"):
        _import(path)


def test_virtual_dataset_is_refused(export, tmp_path):
    source = tmp_path / "source.h5"
    with h5py.File(source, "w") as f:
        f["data"] = np.ones((4, 3), np.float32)
    path = _copy(export, tmp_path)
    layout = h5py.VirtualLayout(shape=(4, 3), dtype="f4")
    layout[:] = h5py.VirtualSource(str(source), "data", shape=(4, 3))
    with h5py.File(path, "a") as f:
        del f[WEIGHT]
        f.create_virtual_dataset(WEIGHT, layout)
    with pytest.raises(sg.GraphError, match=f"dataset '{WEIGHT}' is virtual"):
        _import(path)


def test_unknown_filter_is_refused(export, tmp_path):
    """An optional filter HDF5 does not have is recorded in the dataset; reading it would look for a plugin."""
    path = _copy(export, tmp_path)
    with h5py.File(path, "a") as f:
        del f[WEIGHT]
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((4, 3))
        dcpl.set_filter(32123, h5py.h5z.FLAG_OPTIONAL)
        space = h5py.h5s.create_simple((4, 3))
        h5py.h5d.create(f["node/nodes/fc"].id, b"weight", h5py.h5t.IEEE_F32LE, space, dcpl=dcpl)
    with pytest.raises(sg.GraphError, match=f"dataset '{WEIGHT}' needs filter 32123"):
        _import(path)


def _bomb(path: Path, elements: int, chunk: int = MiB) -> None:
    """Replace the weight by ``elements`` float32 zeros, gzip-compressed chunk by chunk (written raw:
    no allocation of the whole array, and a few seconds at most)."""
    packed = zlib.compress(bytes(4 * chunk), 9)
    with h5py.File(path, "a") as f:
        del f[WEIGHT]
        ds = f.create_dataset(WEIGHT, shape=(elements,), dtype="f4", chunks=(chunk,), compression="gzip")
        for start in range(0, elements, chunk):
            ds.id.write_direct_chunk((start,), packed)


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_compression_bomb_is_refused_before_reading(export, tmp_path):
    """256 MiB of zeros in a file of a few hundred kB: under the absolute cap, but 64x beyond its size."""
    path = _copy(export, tmp_path)
    _bomb(path, 2**26)
    assert path.stat().st_size < MiB

    def load() -> None:
        with pytest.raises(sg.GraphError, match=f"declare more than {64 * MiB} bytes.*'{WEIGHT}'"):
            _import(path)

    assert _peak(load) < 16 * MiB


def test_inflation_limit_is_relative_to_the_file_size_and_overridable(export, tmp_path, monkeypatch):
    assert nir_file.data_limit(10) == nir_file.INFLATION_FREE
    assert nir_file.data_limit(2**30) == nir_file.MAX_DATA
    assert nir_file.data_limit(4 * MiB) == 256 * MiB
    path = _copy(export, tmp_path)
    _bomb(path, 2**20, chunk=2**18)  # 4 MiB declared: read, then refused by NIR (a 1-D weight)
    with pytest.raises(sg.GraphError, match="Weight must be at least 2D"):
        _import(path)
    monkeypatch.setattr(nir_file, "INFLATION_FREE", MiB)
    with pytest.raises(sg.GraphError, match="declare more than"):
        _import(path)


def test_a_plain_export_still_loads(export, tmp_path):
    g = _import(_copy(export, tmp_path))
    assert set(g.nodes) == {"x", "fc", "lif"}
