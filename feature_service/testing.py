"""Helpers for tests (ours and other parts'): run the real server as a subprocess on loopback, make
throwaway TLS certificates with openssl, run a Dask cluster of real processes on loopback."""

from __future__ import annotations

import json
import os
import signal as signals
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


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
        self._process: subprocess.Popen | None = None

    @property
    def target(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        return self._process.pid

    def _read(self) -> None:
        for line in self._process.stderr:
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

    def start(self, timeout: float = 60.0) -> ServerProcess:
        self.launch()
        if not self._serving.wait(timeout) or self.port is None:
            code = self.stop()
            raise RuntimeError(f"server did not start (exit {code}):\n" + "\n".join(self.logs))
        return self

    def launch(self) -> ServerProcess:
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
            self.returncode = self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        self._reader.join(5)
        return self.returncode

    def signal(self, sig: int = signals.SIGTERM) -> None:
        self._process.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        self.returncode = self._process.wait(timeout)
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

    def __enter__(self) -> ServerProcess:
        return self.start() if self._process is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(folder: Path) -> dict[str, Path]:
    """A CA, a server cert for localhost/127.0.0.1 signed by it, a client cert signed by it, and a
    client cert signed by another CA. Returns name -> path (ca, server.crt, server.key, client.crt,
    client.key, other.crt, other.key, other_ca)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for ca in ("ca", "other_ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=test {ca}",
                 "-keyout", f"{ca}.key", "-out", f"{ca}.crt", cwd=folder)
    (folder / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                       "extendedKeyUsage=serverAuth\n")
    (folder / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, ca, ext in (("server", "ca", "server.ext"), ("client", "ca", "client.ext"),
                          ("other", "other_ca", "client.ext")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", cwd=folder)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                 "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", f"{name}.crt", cwd=folder)
    return {"ca": folder / "ca.crt", "other_ca": folder / "other_ca.crt",
            **{f"{n}.{s}": folder / f"{n}.{s}" for n in ("server", "client", "other") for s in ("crt", "key")}}


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
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            client.wait_for_workers(count, timeout=timeout)

    def stop(self) -> None:
        stop_processes(self.workers, timeout=15)  # first: a worker that lost its scheduler retries
        stop_processes([self.scheduler], timeout=15)
