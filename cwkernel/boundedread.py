"""Reading a file that another program (or person) wrote, within a size, without waiting on it.

The file is opened non-blocking and must be a regular file: a named pipe left where a file was
expected would otherwise hold the reader until something writes to it, and a device (/dev/zero)
never ends. At most ``max_bytes`` are read; a longer file is refused unread past that. The
textfile collector, file_sd and the configuration files all read this way (``FileRefused`` says
why, without the path; each caller names its file in its own error).
"""
from __future__ import annotations

import os
import stat


class FileRefused(ValueError):
    """The file is not one to read: not a regular file, too large, or not UTF-8."""


def read_regular_file(path: str | os.PathLike[str], max_bytes: int) -> tuple[os.stat_result, bytes]:
    """(stat, contents) of a regular file of at most ``max_bytes``; ``FileRefused`` otherwise, and
    ``OSError`` when it cannot be opened."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused("not a regular file")
        if info.st_size > max_bytes:
            raise FileRefused(f"larger than {_size(max_bytes)} ({info.st_size:,} bytes)")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew after fstat
        raise FileRefused(f"larger than {_size(max_bytes)}")
    return info, data


def utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRefused(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None


def _size(max_bytes: int) -> str:
    return f"{max_bytes >> 20} MiB" if max_bytes >= 1 << 20 and max_bytes % (1 << 20) == 0 else f"{max_bytes:,} bytes"
