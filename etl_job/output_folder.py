"""The output folder always holds one whole run: each run writes into a folder of its own, and is
published, all files at once, by renaming one symlink (the layout Kubernetes gives a ConfigMap volume):

    OUT/serving_config.pb -> ..data/serving_config.pb     one link per output file, never changed
    OUT/..data -> .runs/ID                                the published run: switched by one rename
    OUT/.runs/ID/                                         the files of run ID
    OUT/.runs/ID/.published_at                            when run ID was published (a kept run)
    OUT/.runs/ID.lock                                     held (flock) while run ID works: leases.py

Links are relative, so the folder reads the same wherever it is mounted (the server's /config).
A run that fails or is stopped removes its folder; after one that rejected rows and failed (bad data),
only its rejects.csv is kept, in its run folder, for the user to read. Each run starts by removing
what earlier runs left beside the kept runs: a killed run's folder, the last failed run's rejects.
The published runs are kept as history (`rollback` publishes one of them again): after each publish,
the newest `keep` by publication time, and the published one whatever its age. A folder is only
ever removed under its lock, so a run another process works on (a job, a rollback) is never removed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from absenteeism.dataset import atomic
from etl_job import leases

log = logging.getLogger(__name__)

RUNS = ".runs"
CURRENT = "..data"
PUBLISHED_AT = ".published_at"  # in a run folder: the ISO time it was first published
DEFAULT_KEEP = 10


class RunFolder:
    """A new run's folder in the output folder `out`, for the files `names`; `publish` makes it the
    published run (and keeps the newest `history` published runs), and leaving the block without
    publishing (or `keep`) removes it."""

    def __init__(self, out: Path, names: Iterable[str], history: int = DEFAULT_KEEP):
        if history < 1:
            raise ValueError(f"history {history} is not >= 1")
        self.out = Path(out)
        self.names = tuple(names)
        self.history = history
        self._runs = self.out / RUNS
        for folder in leases.sweep(self._runs, keep=lambda folder: is_kept(self.out, folder)):
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
            _switch(self.out, self.path, self.names, self.path)
            self.published = True
            # After the switch: a run killed before it never published, and is swept as a leftover.
            try:
                atomic.write_text(self.path / PUBLISHED_AT, datetime.now(UTC).isoformat())
            except OSError as error:  # published all the same; it just will not be kept once replaced
                log.warning("run %s is published but its publication time could not be recorded (%s): "
                            "it is not kept for rollback once another run is published", self.path.name, error)
        self._lease.release(remove=False)
        for folder in prune(self.out, self.history):
            log.debug("removed %s, beyond the newest %d runs kept", folder, self.history)

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


def published(out: Path) -> str | None:
    """The id of the run `out` publishes, if any."""
    try:
        target = os.readlink(Path(out) / CURRENT)
    except OSError:
        return None
    return target[len(RUNS) + 1:] if target.startswith(f"{RUNS}/") else None


def published_at(folder: Path) -> datetime | None:
    """When the run in `folder` was first published; None for one that never was (or is gone)."""
    try:
        return datetime.fromisoformat((Path(folder) / PUBLISHED_AT).read_text().strip())
    except (OSError, ValueError):
        return None


def is_kept(out: Path, folder: Path) -> bool:
    """A published run's folder (the published one, or one in the history), as opposed to a leftover."""
    return folder.name == published(out) or published_at(folder) is not None


def kept_runs(out: Path) -> list[Path]:
    """The folders of the kept runs, newest publication first (the published one too, should it
    have no publication time: it then comes first)."""
    runs = Path(out) / RUNS
    try:
        folders = [runs / lock.name[:-len(leases.LOCK_SUFFIX)] for lock in runs.glob(f"*{leases.LOCK_SUFFIX}")]
    except OSError:
        return []
    kept = [(published_at(folder), folder) for folder in folders if folder.is_dir() and is_kept(out, folder)]
    far_future = datetime.max.replace(tzinfo=UTC)
    return [folder for _, folder in sorted(kept, key=lambda pair: (pair[0] or far_future, pair[1].name),
                                           reverse=True)]


def prune(out: Path, history: int) -> list[Path]:
    """Removes leftovers (folders never published, their owner gone) and the published runs beyond
    the newest `history`, except the published one; each is asked under its lock, so a folder a
    live process works on (a job, a rollback switching to it) is never removed. Returns them."""
    kept = kept_runs(out)
    newest = {folder.name for folder in kept[:history]}
    # A run published while this prune works (by another job) is newer than the oldest one kept.
    oldest_kept = published_at(kept[history - 1]) if len(kept) >= history else None

    def keep(folder: Path) -> bool:
        if folder.name == published(out) or folder.name in newest:
            return True
        when = published_at(folder)
        return when is not None and (oldest_kept is None or when > oldest_kept)

    return leases.sweep(Path(out) / RUNS, keep=keep)


class UnknownRun(LookupError):
    """No kept run of that id in the output folder."""


def rollback(out: Path, run_id: str, names: Iterable[str], check: Callable[[Path], None]) -> bool:
    """Publishes the kept run `run_id` again, with the switch a new run makes, after `check(folder)`
    (which raises for a run that is not whole: nothing changes then); UnknownRun for an id no kept
    run has. Its lock is held meanwhile, so no prune removes it under the switch. False when it is
    already the published run."""
    out, names = Path(out), tuple(names)
    runs = out / RUNS
    folder = runs / run_id
    if "/" in run_id or run_id in ("", ".", "..") or not folder.is_dir() or not is_kept(out, folder):
        raise UnknownRun(f"no kept run {run_id!r} in {out} (`runs list` shows them)")
    with leases.waited(folder.with_name(folder.name + leases.LOCK_SUFFIX)) as held:
        if not held or not folder.is_dir():  # removed meanwhile (a prune took it first)
            raise UnknownRun(f"no kept run {run_id!r} in {out} (`runs list` shows them)")
        if published(out) == run_id:
            return False
        check(folder)
        scratch = leases.Lease(runs, "rollback-")  # its links are made there: a kill leaves them to the next sweep
        try:
            with _signals_held():
                _switch(out, folder, names, scratch.folder)
        finally:
            scratch.release()
    return True


def _switch(out: Path, folder: Path, names: tuple[str, ...], scratch: Path) -> None:
    """`..data` to `folder` (one rename: every link now reads it), then any link still missing
    (the first run into a folder)."""
    _replace_with_link(out / CURRENT, f"{RUNS}/{folder.name}", scratch)
    for name in names:
        link, target = out / name, f"{CURRENT}/{name}"
        if not (link.is_symlink() and os.readlink(link) == target):
            _replace_with_link(link, target, scratch)
    atomic.fsync_dir(out)


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
