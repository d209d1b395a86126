"""`python -m feature_service serve` as a real subprocess on loopback, for tests and benchmarks."""

from __future__ import annotations

import json
import os
import signal as signals
import subprocess
import sys
import threading
from pathlib import Path
from typing import Self

from testkit.loopback import LOOPBACK


class ServerProcess:
    """`python -m feature_service serve` on 127.0.0.1, port 0; use as a context manager.

    `port` is read from the server's JSON "serving" log line (with --processes N > 1, the supervisor's,
    once every child serves: the children's own lines carry a "worker" field); `logs` holds every
    stderr line and `entries` the JSON ones."""

    def __init__(self, config: Path | str | None, *args: str, insecure: bool = True, metrics_port: int = 0,
                 env: dict[str, str] | None = None, cwd: Path | str | None = None):
        self.command = [sys.executable, "-m", "feature_service", "serve", "--host", LOOPBACK, "--port", "0",
                        "--metrics-port", str(metrics_port)]
        if config is not None:
            self.command += ["--config", str(config)]
        if insecure:
            self.command.append("--insecure")
        self.command += list(args)
        self.metrics_port = metrics_port
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd  # `python -m` looks in the working folder first
        self.logs: list[str] = []
        self.entries: list[dict] = []
        self.port: int | None = None
        self.serving_entry: dict | None = None
        self.returncode: int | None = None
        self._serving = threading.Event()
        self._process: subprocess.Popen[str] | None = None

    @property
    def target(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def _launched(self) -> subprocess.Popen[str]:
        if self._process is None:
            raise RuntimeError("the server process is not launched: call start() or launch() first")
        return self._process

    @property
    def pid(self) -> int:
        return self._launched().pid

    def _read(self) -> None:
        stderr = self._launched().stderr
        if stderr is None:
            raise RuntimeError("the server's stderr is not piped")  # launch() pipes it
        for line in stderr:
            self.logs.append(line.rstrip("\n"))
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, dict):
                continue
            self.entries.append(entry)
            if entry.get("event") == "serving" and "worker" not in entry:
                self.port = int(entry["port"])
                self.serving_entry = entry
                self._serving.set()
        self._serving.set()  # stderr closed: the process is gone

    def events(self, name: str) -> list[dict]:
        """The JSON log entries of event `name` so far."""
        return [entry for entry in list(self.entries) if entry.get("event") == name]

    def start(self, timeout: float = 60.0) -> Self:
        self.launch()
        if not self._serving.wait(timeout) or self.port is None:
            code = self.stop()
            raise RuntimeError(f"server did not start (exit {code}):\n" + "\n".join(self.logs))
        return self

    def launch(self) -> Self:
        """Starts the process without waiting for it to serve."""
        self._process = subprocess.Popen(self.command, env=self.env, cwd=self.cwd, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def run_to_exit(self, timeout: float = 60.0) -> int:
        """For servers expected to refuse to start: waits for the exit code."""
        self.launch()
        try:
            self.returncode = self._launched().wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        self._reader.join(5)
        return self.returncode

    def signal(self, sig: int = signals.SIGTERM) -> None:
        self._launched().send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        self.returncode = self._launched().wait(timeout)
        self._reader.join(5)
        return self.returncode

    def stop(self, sig: int = signals.SIGTERM, timeout: float = 30.0) -> int:
        if self._process is None:
            return -1
        if self._process.poll() is None:
            self._process.send_signal(sig)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        return self.wait()

    def __enter__(self) -> Self:
        return self.start() if self._process is None else self

    def __exit__(self, *exc) -> None:
        self.stop()
