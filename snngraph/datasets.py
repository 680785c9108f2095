"""Neuromorphic datasets (N-MNIST, SHD, DVS Gesture) as time-first tensors, built on tonic.

Each dataset reads the files with tonic's own dataset class and reader, optionally bins the
events into count frames with ``tonic.transforms.ToFrame`` (``time_bins=T`` equal frames per
sample, or ``time_window=`` microseconds per frame; every event is counted), and returns
``(frames, label)`` with ``frames`` a float32 tensor ``(T, *sensor)``. :func:`collate`
batches such samples time-first, so a ``DataLoader`` yields ``x`` of shape ``(T, B, *sensor)``
ready for a compiled net::

    ds = snngraph.datasets.NMNIST("data", train=True, time_bins=25)
    loader = snngraph.datasets.loader(ds, batch_size=64, shuffle=True)
    for x, y in loader:          # x: (25, 64, 2, 34, 34) float32, y: (64,) int64
        ...

tonic (and h5py for SHD) is optional: ``pip install snngraph[datasets]``. Nothing is
downloaded unless ``download=True``; a missing dataset raises ``FileNotFoundError`` naming
the folder searched and where to get the data. Data counts as present when the extracted
files the reader needs are there (tonic itself also wants the archive and a full count of
files, which a partial local copy would fail).
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["NMNIST", "SHD", "DVSGesture", "collate", "loader"]


def _tonic() -> Any:
    try:
        return importlib.import_module("tonic")
    except ImportError as exc:
        raise ImportError("snngraph.datasets needs tonic (and h5py for SHD): pip install snngraph[datasets]") from exc


@functools.cache
def _present_class(base: type) -> type:
    """``base`` with tonic's presence check replaced by ours (already done by the caller).

    The subclass keeps ``base``'s name because tonic stores files under ``save_to/<class name>``.
    Reading, parsing and transforms are tonic's own.
    """
    return type(base.__name__, (base,), {"_check_exists": lambda self: True, "__module__": __name__})


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class _EventDataset(torch.utils.data.Dataset):
    """Shared machinery: locate the data, build tonic's dataset, frame the events."""

    tonic_name: str = ""
    sensor_size: tuple[int, int, int] = (1, 1, 1)
    urls: dict[bool, str] = {}

    def __init__(
        self,
        root: str | os.PathLike,
        train: bool,
        time_bins: int | None,
        time_window: float | None,
        download: bool,
        transform: Callable | None,
        target_transform: Callable | None,
        tonic_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a path, got {type(root).__name__}")
        if time_bins is not None and time_window is not None:
            raise ValueError("pass time_bins or time_window, not both")
        if time_bins is not None:
            time_bins = _positive_int(time_bins, "time_bins")
        if time_window is not None and not (isinstance(time_window, (int, float)) and time_window > 0):
            raise ValueError(f"time_window must be a positive number of microseconds, got {time_window!r}")
        self.root = Path(root).expanduser()
        self.train = bool(train)
        self.time_bins, self.time_window = time_bins, time_window
        self.transform, self.target_transform = transform, target_transform
        base = getattr(_tonic().datasets, self.tonic_name)
        if self._present():
            cls = _present_class(base)
        elif download:
            cls = base
        else:
            raise FileNotFoundError(self._missing_message())
        self.tonic = cls(str(self.root), train=self.train, **(tonic_kwargs or {}))
        self.ordering = base.ordering
        self.classes = list(getattr(self.tonic, "classes", []))

    @property
    def location(self) -> Path:
        """The folder tonic reads: ``root/<dataset name>``."""
        return self.root / self.tonic_name

    def _present(self) -> bool:
        raise NotImplementedError

    def _expected(self) -> str:
        raise NotImplementedError

    def _missing_message(self) -> str:
        split = "train" if self.train else "test"
        return (
            f"{self.tonic_name} {split} data not found: looked for {self._expected()}. "
            f"Download {self.urls[self.train]} and extract it into {self.location}, "
            f"or pass download=True to let tonic download and verify it."
        )

    def _frame_transform(self) -> Callable | None:
        if self.time_bins is None and self.time_window is None:
            return None
        return _Framer(self.sensor_size, self.time_bins, self.time_window, has_y="y" in self.ordering)

    def _to_tensor(self, frames: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(frames, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.tonic)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        """Sample ``index``: ``(frames (T, *sensor) float32 tensor, label)`` when framing,
        else ``(events, label)`` with tonic's structured event array."""
        events, target = self.tonic[index]
        if self.transform is not None:
            events = self.transform(events)
        framer = self._frame_transform()
        data = self._to_tensor(framer(events)) if framer is not None else events
        target = int(target)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return data, target


class _Framer:
    """Events to count frames with ``tonic.transforms.ToFrame``, keeping every event.

    ``time_window``: frames of that many microseconds from the first event, the last one
    possibly incomplete. ``time_bins``: ``T`` equal windows of ``(t_last - t_first) // T + 1``
    microseconds from the first event, so the last event is counted too (tonic's
    ``n_time_bins`` uses ``(t_last - t_first) // T`` and always drops the last event).
    """

    def __init__(self, sensor_size, time_bins: int | None, time_window: float | None, has_y: bool):
        self.sensor_size, self.time_bins, self.time_window = sensor_size, time_bins, time_window
        width, height, polarities = sensor_size
        self.frame_shape = (polarities, height, width) if has_y else (polarities, width)

    def __call__(self, events: np.ndarray) -> np.ndarray:
        to_frame = _tonic().transforms.ToFrame
        if len(events) == 0:
            return np.zeros((self.time_bins or 1, *self.frame_shape), dtype=np.int16)
        if self.time_window is not None:
            return to_frame(self.sensor_size, time_window=self.time_window, include_incomplete=True)(events)
        start = int(events["t"][0])
        width = (int(events["t"][-1]) - start) // self.time_bins + 1
        end = start + self.time_bins * width
        framer = to_frame(self.sensor_size, time_window=width, include_incomplete=True, start_time=start, end_time=end)
        return framer(events)


def _has_files(folder: Path, suffix: str) -> bool:
    return folder.is_dir() and next(folder.glob(f"**/*{suffix}"), None) is not None


class NMNIST(_EventDataset):
    """N-MNIST (Orchard et al., 2015): saccade recordings of MNIST digits, 34x34 pixels, 2
    polarities, 10 classes. Events have (x, y, t, p) fields, t in microseconds.

    Expected layout (tonic's): ``root/NMNIST/Train/<digit>/<id>.bin`` (``Test`` for the test
    split), each ``.bin`` in the original 40-bit event format.

    Args:
        root: folder holding the ``NMNIST`` folder.
        train: training split if true, else test split.
        time_bins: number of equal-length frames per sample, covering all its events.
        time_window: frame length in microseconds; the last frame may be incomplete.
        first_saccade_only: keep only the events of the first saccade (t < 100 ms).
        download: let tonic download (and MD5-check) the archive when the data is missing.
        transform: applied to the event array before framing (e.g. a tonic transform).
        target_transform: applied to the integer label.

    Frames have shape ``(T, 2, 34, 34)``.
    """

    tonic_name = "NMNIST"
    sensor_size = (34, 34, 2)
    urls = {
        True: "https://data.mendeley.com/public-files/datasets/468j46mzdv/files/"
        "39c25547-014b-4137-a934-9d29fa53c7a0/file_downloaded (train.zip)",
        False: "https://data.mendeley.com/public-files/datasets/468j46mzdv/files/"
        "05a4d654-7e03-4c15-bdfa-9bb2bcbea494/file_downloaded (test.zip)",
    }

    def __init__(
        self,
        root: str | os.PathLike,
        train: bool = True,
        *,
        time_bins: int | None = None,
        time_window: float | None = None,
        first_saccade_only: bool = False,
        download: bool = False,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
    ) -> None:
        kwargs = {"first_saccade_only": bool(first_saccade_only)}
        super().__init__(root, train, time_bins, time_window, download, transform, target_transform, kwargs)

    def _folder(self) -> Path:
        return self.location / ("Train" if self.train else "Test")

    def _present(self) -> bool:
        return _has_files(self._folder(), ".bin")

    def _expected(self) -> str:
        return f"<digit>/*.bin files under {self._folder()}"


class SHD(_EventDataset):
    """Spiking Heidelberg Digits (Cramer et al., 2020): spoken digits as spikes of 700 cochlea
    channels, 20 classes. Events have (t, x, p) fields, t in microseconds.

    Expected layout: ``root/SHD/shd_train.h5`` (``shd_test.h5``), HDF5 with ``spikes/times``
    (seconds) and ``spikes/units`` (ragged, one row per sample), ``labels``, and
    ``extra/keys``, ``extra/speaker``.

    Args:
        root: folder holding the ``SHD`` folder.
        train: training split if true, else test split.
        time_bins: number of equal-length frames per sample, covering all its events.
        time_window: frame length in microseconds; the last frame may be incomplete.
        download: let tonic download (and MD5-check) the archive when the data is missing.
        transform: applied to the event array before framing (e.g. a tonic transform).
        target_transform: applied to the integer label.

    Frames have shape ``(T, 700)`` (tonic's singleton polarity axis is dropped).
    """

    tonic_name = "SHD"
    sensor_size = (700, 1, 1)
    urls = {
        True: "https://zenkelab.org/datasets/shd_train.h5.zip",
        False: "https://zenkelab.org/datasets/shd_test.h5.zip",
    }

    def __init__(
        self,
        root: str | os.PathLike,
        train: bool = True,
        *,
        time_bins: int | None = None,
        time_window: float | None = None,
        download: bool = False,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
    ) -> None:
        super().__init__(root, train, time_bins, time_window, download, transform, target_transform)

    def _file(self) -> Path:
        return self.location / ("shd_train.h5" if self.train else "shd_test.h5")

    def _present(self) -> bool:
        return self._file().is_file()

    def _expected(self) -> str:
        return str(self._file())

    def _to_tensor(self, frames: np.ndarray) -> torch.Tensor:
        return super()._to_tensor(frames).reshape(len(frames), self.sensor_size[0])


class DVSGesture(_EventDataset):
    """IBM DVS Gesture (Amir et al., 2017), tonic's preprocessed version: 128x128 pixels, 2
    polarities, 11 classes. Events have (x, y, p, t) fields, t in microseconds.

    Expected layout (tonic's): ``root/DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label>.npy``
    (``ibmGestureTest`` for the test split), each ``.npy`` an ``(N, 4)`` array of x, y, p
    and t in milliseconds.

    Args:
        root: folder holding the ``DVSGesture`` folder.
        train: training split if true, else test split.
        time_bins: number of equal-length frames per sample, covering all its events.
        time_window: frame length in microseconds; the last frame may be incomplete.
        downsample: integer factor dividing the pixel coordinates (``tonic.transforms.
            Downsample``); frames then have ``128 // downsample`` pixels a side.
        download: let tonic download (and MD5-check) the archive when the data is missing.
        transform: applied to the event array before downsampling and framing.
        target_transform: applied to the integer label.

    Frames have shape ``(T, 2, 128 // downsample, 128 // downsample)``.
    """

    tonic_name = "DVSGesture"
    sensor_size = (128, 128, 2)
    urls = {
        True: "https://figshare.com/ndownloader/files/38022171 (ibmGestureTrain.tar.gz)",
        False: "https://figshare.com/ndownloader/files/38020584 (ibmGestureTest.tar.gz)",
    }

    def __init__(
        self,
        root: str | os.PathLike,
        train: bool = True,
        *,
        time_bins: int | None = None,
        time_window: float | None = None,
        downsample: int = 1,
        download: bool = False,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
    ) -> None:
        self.downsample = _positive_int(downsample, "downsample")
        side = 128 // self.downsample
        if side < 1:
            raise ValueError(f"downsample={downsample} leaves no pixels of the 128x128 sensor")
        self.sensor_size = (side, side, 2)
        super().__init__(root, train, time_bins, time_window, download, transform, target_transform)
        self._sort_samples()

    def _sort_samples(self) -> None:
        """Order samples by file path: tonic lists them in the file system's order."""
        ds = self.tonic
        order = sorted(range(len(ds.data)), key=lambda i: ds.data[i])
        for attr in ("data", "targets", "users", "lighting"):
            values = getattr(ds, attr, None)
            if values is not None and len(values) == len(order):
                setattr(ds, attr, [values[i] for i in order])

    def _folder(self) -> Path:
        return self.location / ("ibmGestureTrain" if self.train else "ibmGestureTest")

    def _present(self) -> bool:
        return _has_files(self._folder(), ".npy")

    def _expected(self) -> str:
        return f"user<NN>_<lighting>/<label>.npy files under {self._folder()}"

    def _frame_transform(self) -> Callable | None:
        framer = super()._frame_transform()
        if framer is None or self.downsample == 1:
            return framer
        shrink = _tonic().transforms.Downsample(spatial_factor=1.0 / self.downsample)
        return lambda events: framer(shrink(events))


def collate(batch: Sequence[tuple[Any, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch ``(frames (T, *sensor), label)`` samples time-first.

    Samples with fewer frames (``time_window`` framing) are padded with zero frames at the
    end to the longest one.

    Args:
        batch: samples from one of these datasets (or any ``(frames, label)`` pairs).

    Returns:
        ``(x, y)``: ``x`` float32 of shape ``(T, B, *sensor)``; ``y`` the labels stacked,
        int64 ``(B,)`` for integer labels.
    """
    if len(batch) == 0:
        raise ValueError("collate got an empty batch")
    frames = []
    for i, (data, _) in enumerate(batch):
        if isinstance(data, np.ndarray) and data.dtype.names is not None:
            raise TypeError(
                f"sample {i} is a raw event array: give the dataset time_bins= or time_window= so samples are frames"
            )
        frames.append(torch.as_tensor(data, dtype=torch.float32))
    tails = {tuple(f.shape[1:]) for f in frames}
    if len(tails) != 1 or frames[0].dim() < 1:
        raise ValueError(f"samples have different frame shapes: {sorted(tails)}")
    steps = max(f.shape[0] for f in frames)
    x = frames[0].new_zeros((steps, len(frames), *frames[0].shape[1:]))
    for b, f in enumerate(frames):
        x[: f.shape[0], b] = f
    labels = [label for _, label in batch]
    if all(isinstance(label, (int, np.integer)) for label in labels):
        return x, torch.tensor(labels, dtype=torch.int64)
    return x, torch.stack([torch.as_tensor(label) for label in labels])


def loader(dataset: torch.utils.data.Dataset, batch_size: int = 1, shuffle: bool = False, **kwargs: Any):
    """A ``torch.utils.data.DataLoader`` over ``dataset`` that yields time-first batches.

    Args:
        dataset: a framed dataset (``time_bins`` or ``time_window`` set).
        batch_size: samples per batch.
        shuffle: reshuffle every epoch.
        **kwargs: further ``DataLoader`` arguments (``num_workers``, ``drop_last``...).

    Returns:
        torch.utils.data.DataLoader: yields ``(x (T, B, *sensor), y (B,))``.
    """
    if "collate_fn" in kwargs:
        raise TypeError("loader sets collate_fn itself; use torch.utils.data.DataLoader directly instead")
    batch_size = _positive_int(batch_size, "batch_size")
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate, **kwargs)
