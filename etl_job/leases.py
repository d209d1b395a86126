"""Folders owned by a live process, told apart from those a dead one left behind.

A folder NAME comes with a lock file NAME.lock beside it, locked (flock) by its owner for as long as
it works in the folder. The kernel drops the lock when the process ends, however it ends (SIGKILL
too), so a later process can remove what a killed one could not, without touching a folder in use.
A process id would not do: in a container every job is pid 1. Only folders with a lock file are
ever swept, so anything else in the same parent is left alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

LOCK_SUFFIX = ".lock"


class Lease:
    """A new folder `parent/PREFIX<random>`, owned by this process until `release`."""

    def __init__(self, parent: Path, prefix: str):
        parent = Path(parent)
        parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd, lock_name = tempfile.mkstemp(prefix=prefix, suffix=LOCK_SUFFIX, dir=parent)
            # A sweep may have taken the fresh lock file first (and removed it): then try another name.
            if _lock(fd) and _is_file_of(Path(lock_name), fd):
                break
            os.close(fd)
        self._fd = fd
        self.lock_file = Path(lock_name)
        self.folder = self.lock_file.with_name(self.lock_file.name[:-len(LOCK_SUFFIX)])
        self.folder.mkdir()  # default mode (not mkdtemp's 0700): other users read the outputs (a server container)

    def release(self, remove: bool = True) -> None:
        """Unlocks the folder; removes it (and its lock file) unless told to keep it."""
        if self._fd < 0:
            return
        if remove:
            _remove(self.folder, self.lock_file)
        os.close(self._fd)
        self._fd = -1


def sweep(parent: Path, prefix: str = "", keep: Callable[[Path], bool] = lambda folder: False) -> list[Path]:
    """Removes the folders `parent/PREFIX*` whose owner is gone (their lock is free), except those
    `keep(folder)` is true for; `keep` is asked while the lock is held, so no owner can change the
    answer meanwhile. Returns the folders removed."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for lock_file in sorted(Path(parent).glob(f"{prefix}*{LOCK_SUFFIX}")):
            folder = lock_file.with_name(lock_file.name[:-len(LOCK_SUFFIX)])
            with _locked(lock_file) as free:
                if free and not keep(folder):
                    _remove(folder, lock_file)
                    removed.append(folder)
    return removed


def _lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _is_file_of(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def _opened(lock_file: Path) -> Iterator[int | None]:
    """A descriptor of `lock_file` (None when it cannot be opened), closed after the block: closing
    it releases a lock taken on it."""
    try:
        fd = os.open(lock_file, os.O_RDONLY)
    except OSError:
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[bool]:
    """Yields True while this process holds `lock_file`'s lock, False when another holds it (or the
    file went away, or is not ours to open)."""
    with _opened(lock_file) as fd:
        yield fd is not None and _lock(fd) and _is_file_of(lock_file, fd)


@contextlib.contextmanager
def waited(lock_file: Path) -> Iterator[bool]:
    """Waits for `lock_file`'s lock (its holders keep it for a switch or a removal, not longer) and
    yields True while held; False when the lock file is gone (its folder was removed)."""
    with _opened(lock_file) as fd:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd is not None and _is_file_of(lock_file, fd)


def _remove(folder: Path, lock_file: Path) -> None:
    # The folder first, and the lock file only once it is gone: a folder without its lock file is
    # never swept again.
    shutil.rmtree(folder, ignore_errors=True)
    if not os.path.lexists(folder):
        lock_file.unlink(missing_ok=True)
