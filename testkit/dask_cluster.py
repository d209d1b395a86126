"""A Dask cluster of real processes on loopback (a scheduler and single-thread workers), for the
ETL job's Dask engine in tests and benchmarks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from distributed import Client

from testkit.loopback import LOOPBACK, free_port
from testkit.process_control import stop_processes


class DaskDeployment:
    """A `dask scheduler` and `workers` `dask worker` processes (one thread each, no nanny: a worker
    killed stays dead) on 127.0.0.1, started with `env`, stopped by their process ids."""

    def __init__(self, workers: int, env: dict | None = None, cwd: Path | None = None):
        self.dask = str(Path(sys.executable).with_name("dask"))
        self.port = free_port()
        self.address = f"tcp://{LOOPBACK}:{self.port}"
        self.env, self.cwd = env, cwd
        self.scheduler = self._start([self.dask, "scheduler", "--host", LOOPBACK, "--port", str(self.port),
                                      "--no-dashboard"])
        self.workers = [self.add_worker() for _ in range(workers)]
        self.wait_for_workers(workers)

    def _start(self, command: list[str], env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=env or self.env, cwd=self.cwd)

    def add_worker(self, env: dict | None = None) -> subprocess.Popen:
        return self._start([self.dask, "worker", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                            "--host", LOOPBACK], env)

    def wait_for_workers(self, count: int, timeout: float = 60.0) -> None:
        with Client(self.address, timeout=30) as client:
            client.wait_for_workers(count, timeout=timeout)

    def stop(self) -> None:
        stop_processes(self.workers, timeout=15)  # first: a worker that lost its scheduler retries
        stop_processes([self.scheduler], timeout=15)
