"""Opening files named by the user: only regular files are read."""

from __future__ import annotations

import os
import stat
from typing import Any, BinaryIO

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


def open_regular(path: Any, what: str) -> tuple[BinaryIO, int]:
    """``(file, size)``: ``path`` opened for binary reading after :func:`regular_file`, and checked again
    on the open descriptor (non-blocking open, so a path swapped for a FIFO in between cannot block)."""
    path, _ = regular_file(path, what)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise GraphError(f"cannot read {what} {path!r}: {e.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise GraphError(f"cannot read {what} {path!r}: it is not a regular file")
    return os.fdopen(fd, "rb"), info.st_size
