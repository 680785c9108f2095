"""snngraph.datasets on small files written in each dataset's native on-disk format."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

tonic = pytest.importorskip("tonic")
h5py = pytest.importorskip("h5py")

from snngraph import datasets  # noqa: E402

# --------------------------------------------------------------------------- writers


def write_nmnist_bin(path: Path, x, y, t, p) -> None:
    """The N-MNIST 40-bit event format: x, y, p<<7 | t[22:16], t[15:8], t[7:0]."""
    x, y, t, p = (np.asarray(a, dtype=np.uint32) for a in (x, y, t, p))
    raw = np.stack([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw.astype(np.uint8).tofile(path)


def nmnist_events(seed: int, n: int = 60):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.choice(300_000, size=n, replace=False))
    return rng.integers(0, 34, n), rng.integers(0, 34, n), t, rng.integers(0, 2, n)


def write_shd(path: Path, samples) -> None:
    """The SHD HDF5 layout: ragged spikes/times (s) and spikes/units, labels, extra/*."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (len(samples),), dtype=h5py.vlen_dtype(np.float32))
        units = f.create_dataset("spikes/units", (len(samples),), dtype=h5py.vlen_dtype(np.uint16))
        for i, (ts, us, _) in enumerate(samples):
            times[i] = np.asarray(ts, dtype=np.float32)
            units[i] = np.asarray(us, dtype=np.uint16)
        f.create_dataset("labels", data=np.array([lab for *_, lab in samples], dtype=np.uint16))
        f.create_dataset("extra/keys", data=np.array([f"digit-{i}".encode() for i in range(20)]))
        f.create_dataset("extra/speaker", data=np.arange(len(samples), dtype=np.uint16))


def write_gesture(folder: Path, user: str, label: int, events: np.ndarray) -> None:
    """tonic's preprocessed DVS Gesture: user<NN>_<lighting>/<label>.npy, columns x, y, p, t (ms)."""
    (folder / user).mkdir(parents=True, exist_ok=True)
    np.save(folder / user / f"{label}.npy", events)


def reference_frames(x, y, t, p, bins: int, shape) -> np.ndarray:
    """Count frames over `bins` equal windows of (t_last - t_first) // bins + 1 from t_first."""
    t = np.asarray(t, dtype=np.int64)
    width = (t[-1] - t[0]) // bins + 1
    frames = np.zeros((bins, *shape), dtype=np.float32)
    idx = (t - t[0]) // width
    if y is None:
        np.add.at(frames, (idx, np.asarray(p), np.asarray(x)), 1)
    else:
        np.add.at(frames, (idx, np.asarray(p), np.asarray(y), np.asarray(x)), 1)
    return frames


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def nmnist_root(tmp_path):
    files = {
        ("Train", 3, "00001"): 0,
        ("Train", 3, "00002"): 1,
        ("Train", 7, "00003"): 2,
        ("Test", 5, "00004"): 3,
    }
    for (split, digit, name), seed in files.items():
        write_nmnist_bin(tmp_path / "NMNIST" / split / str(digit) / f"{name}.bin", *nmnist_events(seed))
    return tmp_path


@pytest.fixture
def shd_samples():
    rng = np.random.default_rng(1)
    samples = []
    for label in (4, 19, 0):
        n = 40
        samples.append((np.sort(rng.uniform(0, 0.9, n)), rng.integers(0, 700, n), label))
    return samples


# --------------------------------------------------------------------------- N-MNIST


def test_nmnist_events_and_labels_as_written(nmnist_root):
    ds = datasets.NMNIST(nmnist_root, train=True)
    assert len(ds) == 3 and ds.tonic.targets == [3, 3, 7]
    for i, seed in enumerate((0, 1, 2)):
        events, label = ds[i]
        x, y, t, p = nmnist_events(seed)
        assert label == [3, 3, 7][i]
        for field, expected in zip("xytp", (x, y, t, p), strict=True):
            np.testing.assert_array_equal(events[field], expected)
    test = datasets.NMNIST(nmnist_root, train=False)
    assert len(test) == 1 and test[0][1] == 5


def test_nmnist_time_bins_frames_and_loader(nmnist_root):
    ds = datasets.NMNIST(nmnist_root, time_bins=6)
    frames, label = ds[2]
    x, y, t, p = nmnist_events(2)
    assert frames.dtype == torch.float32 and frames.shape == (6, 2, 34, 34)
    np.testing.assert_array_equal(frames.numpy(), reference_frames(x, y, t, p, 6, (2, 34, 34)))
    assert frames.sum() == len(t)  # every event counted, the last one too
    xb, yb = next(iter(datasets.loader(ds, batch_size=3)))
    assert xb.shape == (6, 3, 2, 34, 34) and xb.dtype == torch.float32
    assert yb.tolist() == [3, 3, 7] and yb.dtype == torch.int64
    torch.testing.assert_close(xb[:, 2], frames)


def test_nmnist_time_window_pads_time_first(nmnist_root):
    ds = datasets.NMNIST(nmnist_root, time_window=50_000.0)
    lengths = [ds[i][0].shape[0] for i in range(len(ds))]
    xb, _ = datasets.collate([ds[i] for i in range(len(ds))])
    assert xb.shape == (max(lengths), 3, 2, 34, 34)
    for b, n in enumerate(lengths):
        assert xb[:, b].sum() == 60 and torch.all(xb[n:, b] == 0)


def test_nmnist_first_saccade_and_transform(nmnist_root):
    ds = datasets.NMNIST(nmnist_root, first_saccade_only=True, transform=lambda ev: ev[ev["p"] == 1])
    events, _ = ds[0]
    x, y, t, p = nmnist_events(0)
    assert np.all(events["p"] == 1) and np.all(events["t"] < 100_000)
    assert len(events) == int(np.sum((t < 100_000) & (p == 1)))


def test_missing_dataset_raises_with_location_and_url(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        datasets.NMNIST(tmp_path / "nowhere", train=False)
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "NMNIST" / "Test") in message
    assert "data.mendeley.com" in message and "download=True" in message
    with pytest.raises(FileNotFoundError, match="shd_train.h5"):
        datasets.SHD(tmp_path)
    with pytest.raises(FileNotFoundError, match="ibmGestureTest"):
        datasets.DVSGesture(tmp_path, train=False)


def test_bad_arguments_name_the_argument(nmnist_root):
    with pytest.raises(ValueError, match="time_bins"):
        datasets.NMNIST(nmnist_root, time_bins=0)
    with pytest.raises(ValueError, match="not both"):
        datasets.NMNIST(nmnist_root, time_bins=2, time_window=10.0)
    with pytest.raises(ValueError, match="time_window"):
        datasets.NMNIST(nmnist_root, time_window=-1.0)
    with pytest.raises(ValueError, match="downsample"):
        datasets.DVSGesture(nmnist_root, downsample=0)
    with pytest.raises(TypeError, match="root"):
        datasets.NMNIST(3)


def test_missing_tonic_says_how_to_install(nmnist_root, monkeypatch):
    monkeypatch.setitem(sys.modules, "tonic", None)
    with pytest.raises(ImportError, match=r"pip install snngraph\[datasets\]"):
        datasets.NMNIST(nmnist_root)


# --------------------------------------------------------------------------- SHD


def test_shd_events_labels_and_frames(tmp_path, shd_samples):
    write_shd(tmp_path / "SHD" / "shd_train.h5", shd_samples)
    raw = datasets.SHD(tmp_path)
    assert len(raw) == 3 and raw.classes[4] == b"digit-4"
    framed = datasets.SHD(tmp_path, time_bins=5)
    for i, (times, units, label) in enumerate(shd_samples):
        events, target = raw[i]
        t_us = (np.asarray(times, dtype=np.float32).astype(np.float64) * 1e6).astype(np.int64)
        assert target == label
        np.testing.assert_array_equal(events["t"], t_us)
        np.testing.assert_array_equal(events["x"], units)
        frames, _ = framed[i]
        assert frames.shape == (5, 700)
        expected = reference_frames(units, None, t_us, np.zeros_like(units), 5, (1, 700))
        np.testing.assert_array_equal(frames.numpy(), expected[:, 0])
    xb, yb = datasets.collate([framed[i] for i in range(3)])
    assert xb.shape == (5, 3, 700) and yb.tolist() == [4, 19, 0]


def test_shd_test_split_reads_its_own_file(tmp_path, shd_samples):
    write_shd(tmp_path / "SHD" / "shd_test.h5", shd_samples[:1])
    ds = datasets.SHD(tmp_path, train=False, time_window=100_000.0)
    frames, label = ds[0]
    assert label == 4 and frames.shape[1:] == (700,) and frames.sum() == 40


# --------------------------------------------------------------------------- DVS Gesture


def gesture_events(seed: int, n: int = 50) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t_ms = np.sort(rng.choice(2000, size=n, replace=False))
    cols = (rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n), t_ms)
    return np.stack(cols, axis=1).astype(np.int64)


def test_dvsgesture_events_labels_frames(tmp_path):
    folder = tmp_path / "DVSGesture" / "ibmGestureTrain"
    written = {("user02_led", 10): 0, ("user01_fluorescent", 4): 1, ("user01_fluorescent", 0): 2}
    for (user, label), seed in written.items():
        write_gesture(folder, user, label, gesture_events(seed))
    ds = datasets.DVSGesture(tmp_path)
    assert ds.tonic.targets == [0, 4, 10]  # sorted by path, whatever the file system's order
    assert ds.tonic.users == [1, 1, 2]
    for i, (user, label) in enumerate([("user01_fluorescent", 0), ("user01_fluorescent", 4), ("user02_led", 10)]):
        events, target = ds[i]
        cols = gesture_events(written[(user, label)])
        assert target == label
        np.testing.assert_array_equal(events["x"], cols[:, 0])
        np.testing.assert_array_equal(events["y"], cols[:, 1])
        np.testing.assert_array_equal(events["p"], cols[:, 2].astype(bool))
        np.testing.assert_array_equal(events["t"], cols[:, 3] * 1000)
    framed = datasets.DVSGesture(tmp_path, time_bins=4, downsample=4)
    frames, _ = framed[2]
    cols = gesture_events(0)
    expected = reference_frames(cols[:, 0] // 4, cols[:, 1] // 4, cols[:, 3] * 1000, cols[:, 2], 4, (2, 32, 32))
    assert frames.shape == (4, 2, 32, 32)
    np.testing.assert_array_equal(frames.numpy(), expected)
    xb, yb = next(iter(datasets.loader(framed, batch_size=2)))
    assert xb.shape == (4, 2, 2, 32, 32) and yb.tolist() == [0, 4]


# --------------------------------------------------------------------------- collate


def test_collate_rejects_raw_events_and_mixed_shapes(nmnist_root):
    raw = datasets.NMNIST(nmnist_root)
    with pytest.raises(TypeError, match="time_bins"):
        datasets.collate([raw[0]])
    with pytest.raises(ValueError, match="frame shapes"):
        datasets.collate([(torch.zeros(2, 3), 0), (torch.zeros(2, 4), 1)])
    with pytest.raises(ValueError, match="empty"):
        datasets.collate([])
    x, y = datasets.collate([(np.ones((2, 3)), np.array([1.0, 0.0])), (np.ones((1, 3)), np.array([0.0, 1.0]))])
    assert x.shape == (2, 2, 3) and x[1, 1].sum() == 0 and y.shape == (2, 2)
