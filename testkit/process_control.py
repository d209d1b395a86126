"""Stopping the processes a test started, and telling when a process is ready for a signal."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def stop_processes(processes: list[subprocess.Popen], timeout: float = 20.0) -> None:
    """SIGTERM to each living process, then a wait for all; a process still running after `timeout`
    seconds is killed."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def catches(pid: int, signum: int) -> bool:
    """Whether process `pid` has a handler for `signum` now (Linux: SigCgt in /proc/PID/status)."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught & (1 << (signum - 1)))


def wait_until_catches(pid: int, signum: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not catches(pid, signum):
        if time.monotonic() > deadline:
            raise TimeoutError(f"process {pid} does not catch signal {signum}")
        time.sleep(0.005)
