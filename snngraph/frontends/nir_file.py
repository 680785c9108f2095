"""Reading NIR files (HDF5) without trusting them.

Before ``nir.read`` sees a file, its whole link tree is walked and refused (``GraphError``) when:

* a link is an external link (to another file) or a soft link, or an object is reached twice (a hard
  link cycle, or a group linked many times over, which would make the reader walk it again and again);
* a dataset keeps its bytes outside the file: external storage (another file, ``../x``,
  ``/proc/self/environ``) or a virtual dataset (mapped from other datasets or files);
* a dataset uses a filter other than HDF5's built-in ones (an unknown filter would make HDF5 load a
  plugin library from its plugin path);
* the datasets declare more than :data:`MAX_DATA` bytes in all, or more than
  ``max(INFLATION_FREE, MAX_INFLATION * file size)``: what a dataset declares is what reading it
  allocates, whether its chunks were never written or compressed a thousandfold (a 80 kB file can
  inflate to gigabytes).

The file is opened once, as a regular file, and the same open file is checked and then read.
The limits are module constants, read at each call: set them to accept larger files.
"""

from __future__ import annotations

import functools
from typing import Any

from snngraph.ir.errors import GraphError
from snngraph.ir.files import open_regular

MAX_DATA = 4 * 2**30  # bytes the datasets of a NIR file may declare in all (as sg.load's file limit)
INFLATION_FREE = 64 * 2**20  # declared bytes any file may hold, however small it is
MAX_INFLATION = 64  # beyond INFLATION_FREE: declared bytes per byte of the file (gzip reaches ~1000)


def read_nir_file(path: Any) -> Any:
    """``nir.read`` of the file at ``path`` after the checks of the module docstring; without NIR's
    type check when that fails (nir 1.0 mis-types grouped and non-square convolutions), since the
    import infers types itself. Raises GraphError naming the file and the culprit."""
    import h5py
    import nir

    handle, size = open_regular(path, "NIR file")
    try:
        with handle:
            with h5py.File(handle, "r") as f:
                check_storage(f, size)
            handle.seek(0)
            try:
                return nir.read(handle)
            except ValueError:
                handle.seek(0)
                return nir.read(handle, type_check=False)
    except (OSError, ValueError, KeyError, TypeError, AssertionError, IndexError, RuntimeError) as err:
        # RuntimeError: h5py's errors for corrupt files (and RecursionError for absurdly nested groups)
        raise GraphError(f"NIR: cannot read {path!r}: {err}") from err


def data_limit(file_size: int) -> int:
    """The most bytes the datasets of a file of ``file_size`` bytes may declare."""
    return min(MAX_DATA, max(INFLATION_FREE, MAX_INFLATION * file_size))


def check_storage(f: Any, file_size: int) -> None:
    """Walk every link of the open HDF5 file ``f``; raise ValueError naming the first link or dataset
    refused (see the module docstring)."""
    import h5py

    limit, total, seen = data_limit(file_size), 0, {f.id}

    def walk(group: Any, prefix: str) -> None:
        nonlocal total
        for key in group:
            name = prefix + key
            link = group.get(key, getlink=True)
            if not isinstance(link, h5py.HardLink):
                raise ValueError(f"'{name}' is {_link_kind(link)}: NIR files hold their data in themselves")
            obj = group[key]
            if obj.id in seen:
                raise ValueError(f"'{name}' links to an object already linked elsewhere")
            seen.add(obj.id)
            if isinstance(obj, h5py.Group):
                walk(obj, name + "/")
            elif isinstance(obj, h5py.Dataset):
                check_dataset(name, obj)
                total += int(obj.size or 0) * obj.dtype.itemsize
                if total > limit:
                    raise ValueError(f"its datasets declare more than {limit} bytes, the most a file of {file_size} "
                                     f"bytes may hold (dataset '{name}' of shape {obj.shape})")

    walk(f, "")


def _link_kind(link: Any) -> str:
    import h5py

    if isinstance(link, h5py.ExternalLink):
        return f"an external link to {link.filename!r:.100}"
    if isinstance(link, h5py.SoftLink):
        return f"a soft link to {link.path!r:.100}"
    return f"a link of an unknown kind ({type(link).__name__})"


def check_dataset(name: str, ds: Any) -> None:
    """Refuse a dataset whose bytes are not inside the file, or that needs a filter plugin."""
    import h5py

    dcpl = ds.id.get_create_plist()
    if ds.is_virtual or dcpl.get_layout() not in (h5py.h5d.COMPACT, h5py.h5d.CONTIGUOUS, h5py.h5d.CHUNKED):
        raise ValueError(f"dataset '{name}' is virtual (its bytes are in other datasets or files)")
    if dcpl.get_external_count():
        files = [entry[0] for entry in (ds.external or [])][:3]
        raise ValueError(f"dataset '{name}' keeps its bytes in external files {files!r:.200}")
    for i in range(dcpl.get_nfilters()):
        code, _, _, label = dcpl.get_filter(i)
        if code not in builtin_filters():
            raise ValueError(f"dataset '{name}' needs filter {code} ({label!r:.40}), not one of HDF5's built-in "
                             f"filters (a plugin library would be loaded)")


@functools.cache
def builtin_filters() -> frozenset[int]:
    """The codes of the filters HDF5 and h5py carry themselves (deflate, shuffle, Fletcher-32, szip,
    n-bit, scale-offset, LZF)."""
    import h5py

    z = h5py.h5z
    return frozenset((z.FILTER_DEFLATE, z.FILTER_SHUFFLE, z.FILTER_FLETCHER32, z.FILTER_SZIP, z.FILTER_NBIT,
                      z.FILTER_SCALEOFFSET, z.FILTER_LZF))
