"""Opening files named by the user: only regular files are read."""

from __future__ import annotations

import os
import stat
from typing import Any

from snngraph.ir.errors import GraphError

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def regular_file(path: Any, what: str) -> tuple[str, int]:
    """``(os.fspath(path), size)`` when ``path`` names a regular file (links followed), else GraphError.

    Checked before opening: reading a FIFO blocks until a writer comes (forever, for a hostile path),
    and a device or ``/proc`` entry can stream without end.
    """
    path = os.fspath(path)
    try:
        info = os.stat(path)
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        raise GraphError(f"cannot read {what} {path!r}: {getattr(e, 'strerror', None) or e}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = next((word for test, word in _KINDS if test(info.st_mode)), "not a regular file")
        raise GraphError(f"cannot read {what} {path!r}: it is {kind}, not a regular file")
    return path, info.st_size
