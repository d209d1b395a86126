"""The job's steps as a person watching it sees them: each timed (report.json) and logged, a bar
through the steps and another through the rows of the long ones. Every engine reports through it."""

from __future__ import annotations

import contextlib
import logging
import resource
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

log = logging.getLogger(__name__)

STEPS = ("extract_validate", "analyze", "transform_fit", "load", "parity", "write_config")

T = TypeVar("T")


class StepProgress:
    """Times each step, logs it, and advances the progress bar."""

    def __init__(self, progress: bool):
        self.progress = progress
        self.timings: dict[str, float] = {}
        self._bar = tqdm(total=len(STEPS), desc="etl", unit="step", disable=not progress)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        self._bar.set_description(f"etl: {name}")
        log.info("%s ...", name)
        start = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - start
        log.info("%s done in %.3f s (peak RSS so far %.0f MiB)", name, self.timings[name],
                 resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        self._bar.update(1)

    def rows(self, chunks: Iterable[T], desc: str, total: int | None = None,
             size: Callable[[T], int] = len) -> Iterator[T]:  # type: ignore[assignment]
        """`chunks`, with a bar counting their rows (`size(chunk)` each)."""
        with tqdm(total=total, desc=desc, unit="row", unit_scale=True, leave=False,
                  disable=not self.progress) as bar:
            for chunk in chunks:
                yield chunk
                bar.update(size(chunk))

    def close(self) -> None:
        self._bar.close()

