"""Read-only views of a host's procfs or sysfs tree.

Collectors never open ``/proc`` or ``/sys`` themselves: they are handed a tree. ``HostFS`` reads
a real directory (``/proc``, or a fixture tree under ``tests/``); ``MemoryFS`` holds the files in
a dict, which is how the simulator gives each of thousands of simulated nodes its own procfs and
sysfs without writing them to disk. Both raise ``OSError`` subclasses exactly as reading the real
files would, so a collector's error handling is the same for all of them.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Protocol


class FileTree(Protocol):
    """What a collector may do with a procfs/sysfs tree: paths are relative to the tree's root."""

    def read_text(self, path: str) -> str: ...

    def listdir(self, path: str) -> list[str]: ...

    def is_dir(self, path: str) -> bool: ...

    def exists(self, path: str) -> bool: ...


def _clean(path: str) -> str:
    return path.strip("/")


class HostFS:
    """A directory on disk seen as the root of a procfs or sysfs tree."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._prefix = os.fspath(root).rstrip("/") + "/"

    def __repr__(self) -> str:
        return f"HostFS({str(self.root)!r})"

    def _path(self, path: str) -> str:
        # Plain string joining: pathlib's parsing was a fifth of a collection cycle.
        return self._prefix + path.lstrip("/")

    def read_text(self, path: str) -> str:
        # Raw os.open/os.read: a node has hundreds of tiny sysfs counter files per cycle, and the
        # buffered-text machinery of open() costs three times as much for each of them.
        fd = os.open(self._path(path), os.O_RDONLY)
        try:
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        finally:
            os.close(fd)
        # errors="replace": a sysfs attribute with stray bytes must not raise UnicodeDecodeError,
        # which callers do not expect from a file read; the parser then rejects the bad value.
        return b"".join(chunks).decode("utf-8", errors="replace")

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(self._path(path)))

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(self._path(path))

    def exists(self, path: str) -> bool:
        return os.path.exists(self._path(path))


class MemoryFS:
    """A tree held in memory: ``{"class/infiniband/mlx5_0/ports/1/state": "4: ACTIVE\\n"}``.

    Directories exist implicitly as prefixes of file paths. Values may be strings or zero-argument
    callables returning strings, so a simulator can serve counters computed at read time.
    """

    def __init__(self, files: dict[str, object] | None = None) -> None:
        self._files: dict[str, object] = {}
        self._dirs: dict[str, set[str]] = {"": set()}
        for path, content in (files or {}).items():
            self.set(path, content)

    def set(self, path: str, content: object) -> None:
        path = _clean(path)
        self._files[path] = content
        parts = path.split("/")
        for depth in range(len(parts)):
            parent = "/".join(parts[:depth])
            self._dirs.setdefault(parent, set()).add(parts[depth])
        self._dirs.setdefault(path, set())  # harmless: a file is never listed as a dir below

    def remove(self, path: str) -> None:
        """Remove a file or a whole directory subtree (a device that disappeared)."""
        path = _clean(path)
        prefix = path + "/"
        for key in [k for k in self._files if k == path or k.startswith(prefix)]:
            del self._files[key]
        for key in [k for k in self._dirs if k == path or k.startswith(prefix)]:
            del self._dirs[key]
        parent, _, name = path.rpartition("/")
        self._dirs.get(parent, set()).discard(name)

    def read_text(self, path: str) -> str:
        path = _clean(path)
        if path not in self._files:
            if path in self._dirs:
                raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        content = self._files[path]
        return content() if callable(content) else str(content)

    def listdir(self, path: str) -> list[str]:
        path = _clean(path)
        if path in self._files:
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", path)
        if path not in self._dirs:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return sorted(self._dirs[path])

    def is_dir(self, path: str) -> bool:
        path = _clean(path)
        return path in self._dirs and path not in self._files

    def exists(self, path: str) -> bool:
        path = _clean(path)
        return path in self._files or path in self._dirs
