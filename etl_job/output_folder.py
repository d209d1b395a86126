"""The output folder always holds one whole run: each run writes into a folder of its own, and is
published, all files at once, by renaming one symlink (the layout Kubernetes gives a ConfigMap volume):

    OUT/serving_config.pb -> ..data/serving_config.pb     one link per output file, never changed
    OUT/..data -> .runs/ID                                the published run: switched by one rename
    OUT/.runs/ID/                                         the files of run ID
    OUT/.runs/ID.lock                                     held (flock) while run ID works: leases.py

Links are relative, so the folder reads the same wherever it is mounted (the server's /config).
A run that fails or is stopped removes its folder; after one that rejected rows and failed (bad data),
only its rejects.csv is kept, in its run folder, for the user to read. Each run starts by removing
what earlier runs left beside the published one: a killed run's folder, the last failed run's rejects.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from absenteeism.dataset import atomic
from etl_job import leases

log = logging.getLogger(__name__)

RUNS = ".runs"
CURRENT = "..data"


class RunFolder:
    """A new run's folder in the output folder `out`, for the files `names`; `publish` makes it the
    published run, and leaving the block without publishing (or `keep`) removes it."""

    def __init__(self, out: Path, names: Iterable[str]):
        self.out = Path(out)
        self.names = tuple(names)
        self._runs = self.out / RUNS
        for folder in leases.sweep(self._runs, keep=self._is_published):
            log.info("removed %s, left by an earlier run", folder)
        for stale in _legacy_temp_files(self.out, self.names):
            stale.unlink(missing_ok=True)
        self._lease = leases.Lease(self._runs, datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-"))
        self.path = self._lease.folder
        self.published = False

    def publish(self) -> None:
        """Switches the output folder to this run: `..data` first (one rename: every link now reads
        this run), then any link still missing (the first run into a folder). Signals wait until the
        switch is done, so a stop never leaves it half made."""
        atomic.fsync_dir(self.path)
        with _signals_held():
            _replace_with_link(self.out / CURRENT, f"{RUNS}/{self.path.name}", self.path)
            self.published = True
            for name in self.names:
                link, target = self.out / name, f"{CURRENT}/{name}"
                if not (link.is_symlink() and os.readlink(link) == target):
                    _replace_with_link(link, target, self.path)
            atomic.fsync_dir(self.out)
        self._lease.release(remove=False)
        for folder in leases.sweep(self._runs, keep=self._is_published):
            log.debug("removed %s, the run this one replaced", folder)

    def keep(self, name: str) -> Path:
        """Ends a failed run keeping only its file `name` (left for the user; the next run removes it)."""
        for entry in self.path.iterdir():
            if entry.name != name:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        self._lease.release(remove=False)
        return self.path / name

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self._lease.release(remove=not self.published)

    def _is_published(self, folder: Path) -> bool:
        try:
            return os.readlink(self.out / CURRENT) == f"{RUNS}/{folder.name}"
        except OSError:
            return False


def _replace_with_link(path: Path, target: str, scratch: Path) -> None:
    """`path` becomes a symlink to `target` in one rename (made in `scratch` first, so a kill
    before the rename leaves it there, in a folder that is removed anyway)."""
    fresh = scratch / f".{path.name}.link"
    fresh.unlink(missing_ok=True)
    os.symlink(target, fresh)
    os.replace(fresh, path)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGTERM and SIGINT are delivered when the block ends (main thread only: signals are)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGTERM, signal.SIGINT}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _legacy_temp_files(out: Path, names: tuple[str, ...]) -> list[Path]:
    """Temp files that jobs before this layout left when killed (`.rejects.csv.<random>.tmp`)."""
    return [stale for name in names for stale in out.glob(f".{name}.*.tmp")]
