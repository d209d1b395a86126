"""--processes N > 1: N server processes share one port (SO_REUSEPORT), supervised by this parent.

One Python process is one GIL, so one server never uses more than one core. Here the parent serves
no gRPC itself. It
1. verifies the config once, as a lone server does at boot (a refused config exits 78 before
   anything listens), then checks that the port is free the way a lone server binds it (no
   SO_REUSEPORT: a port another process holds exits 1). With --port 0 it picks the free port here
   and hands it to every child (another process could take it in between: the children then fail
   to bind and the start fails with 1);
2. starts the children with multiprocessing's spawn: fresh interpreters, so no gRPC object, thread
   or lock of the parent ever crosses into a child (gRPC forbids forking a process that already
   holds gRPC objects). Each child (supervised_child.py) runs the single-process `serve()` of
   lone_server.py on the shared port, health and reflection included, and reports on its pipe each
   config it serves and once it serves. Children boot on the config last verified (the parent's at
   boot, then the newest a child reported), kept in a temp folder of the parent's, and reload from
   --config as a lone server does: a file refused at --config never stops a replacement;
3. serves the one /metrics endpoint: the children write prometheus_client's multiprocess files into
   a temp folder the parent owns (PROMETHEUS_MULTIPROC_DIR), summed over the children at each
   scrape and removed at exit; plus its own figures (processes serving, restarts per slot) and the
   drift gauges, from the drift windows the children share (drift_window.py, SharedWindows: a file
   in a temp folder of the parent's, removed at exit);
4. forwards SIGTERM and SIGINT (as SIGTERM) and SIGHUP to every child; replaces a child that exits
   when nobody asked it to (logged, counted), after a backoff that grows while the slot keeps
   failing early;
5. exits 0 once every child has drained after SIGTERM; during the start, a child that fails ends
   the whole start with that child's exit code.

A child whose parent disappears (kill -9) stops by itself: it watches its end of the pipe. The
parent's temp folders are named after its pid (temp_folders.py): the next parent removes those of
one that was killed outright. A stop caught by __main__ while the modules loaded ends the start.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from absenteeism import config_io
from absenteeism.dataset import atomic
from feature_service.config_reloader import read_settled
from feature_service.monitoring.drift_window import SupervisorDrift
from feature_service.monitoring.monitored_predictor import SharedSlot
from feature_service.monitoring.prediction_logger import require_log_folder
from feature_service.processes.lone_server import EXIT_BIND, EXIT_CONFIG
from feature_service.processes.process_signals import ShutdownSignal
from feature_service.processes.supervised_child import run_child
from feature_service.processes.temp_folders import owned_folder, sweep_abandoned
from feature_service.rpc.tls import server_credentials
from feature_service.settings import Settings
from feature_service.verified_config import activate_data_set_of, load_verified

EXIT_FAILED = 1  # a child failed or did not stop cleanly (a child's own exit code is passed on as it is)
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
VERIFIED_CONFIG = "verified.pb"
FIRST_BACKOFF, MAX_BACKOFF = 0.5, 30.0  # seconds before a slot's replacement starts, doubling
STEADY = 30.0  # seconds a child must have served for its slot's backoff to start over
STOP_MARGIN = 10.0  # seconds past --grace before a child that does not stop is killed

log = logging.getLogger("feature_service.supervisor")
_SPAWN = multiprocessing.get_context("spawn")


def run(settings: Settings, early: ShutdownSignal | None = None) -> int:
    """`early`: the handler __main__ installed before the modules loaded; a stop it caught is honoured."""
    return Supervisor(settings, early).run()


def probe_port(host: str, port: int) -> int:
    """Binds host:port (0: any free port) as a lone server does, without SO_REUSEPORT, and lets go;
    returns the port. Raises OSError when another process holds it."""
    family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]") or None, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC: TIME_WAIT leftovers do not count
        sock.bind(address)
        return sock.getsockname()[1]


@dataclass
class _Child:
    index: int
    process: multiprocessing.process.BaseProcess
    conn: Connection  # the parent's end of the pipe
    serving_since: float | None = None
    config: tuple[str, str] | None = None  # (config_id, created_at) it serves, as it reported

    @property
    def pid(self) -> int:
        if self.process.pid is None:  # _start() starts the process before it keeps the _Child
            raise RuntimeError(f"server process {self.index} was never started")
        return self.process.pid


class _SupervisorMetrics:
    """The parent's own figures, beside the children's summed ones."""

    def __init__(self, supervisor: Supervisor):
        self._supervisor = supervisor

    def collect(self):
        serving = GaugeMetricFamily("feature_service_processes", "server processes serving now")
        children = list(self._supervisor.children.values())  # a copy: the main thread changes the dict
        serving.add_metric([], sum(child.serving_since is not None for child in children))
        yield serving
        # A lone server's Info metric; in multiprocess mode prometheus_client keeps no Info, so the
        # parent says what its children serve (more than one config only while a reload spreads).
        info = InfoMetricFamily("feature_service_config", "the config being served")
        for config_id, created_at in sorted({child.config for child in children if child.config is not None}):
            info.add_metric([], {"config_id": config_id, "created_at": created_at})
        yield info
        restarts = CounterMetricFamily("feature_service_process_restarts",
                                       "server processes replaced after an unexpected exit, by slot", labels=["worker"])
        for index in range(self._supervisor.count):
            restarts.add_metric([str(index)], self._supervisor.restarts.get(index, 0))
        yield restarts


class Supervisor:
    def __init__(self, settings: Settings, early: ShutdownSignal | None = None):
        self.settings = settings
        self._early = early
        self.count = settings.process_count
        self.port: int | None = None
        self.children: dict[int, _Child] = {}
        self.restarts: dict[int, int] = {}
        self._early_failures: dict[int, int] = {}
        self._restart_at: dict[int, float] = {}  # slot -> time.monotonic() of its replacement
        self._signals: list[int] = []
        self._wake_read, self._wake_write = os.pipe()  # signals wake the wait() of the main loop
        self._metrics_dir: str | None = None
        self._drift: SupervisorDrift | None = None
        self._http: WSGIServer | None = None
        self._config_id = ""
        self._config_dir: Path | None = None  # verified.pb: the config children boot on
        self._verified: bytes | None = None  # what verified.pb holds

    # --- the whole life ------------------------------------------------------------------------

    def run(self) -> int:
        self._install_signals()
        if self._early is not None and self._early.requested:  # a stop while the modules loaded
            log.info("stopped before the start", extra={"event": "stopped", "clean": True})
            return 0
        for folder in sweep_abandoned():
            log.info("removed a temp folder a stopped server left", extra={"event": "temp_swept",
                                                                          "path": str(folder)})
        try:
            code = self._prepare()
            if code is not None:
                return code
            code = self._start_all()
            if code is not None:
                return code
            return self._supervise()
        finally:
            self._close()

    def _prepare(self) -> int | None:
        settings = self.settings
        try:
            booted = read_settled(settings.config)
            activate_data_set_of(settings, booted.data)
            config, _ = load_verified(settings, booted.data)
            server_credentials(settings)  # TLS files readable (spawned children share no gRPC state with this)
            require_log_folder(settings.prediction_log)
        except config_io.ConfigError as error:
            log.error(str(error), extra={"event": "config_refused", "config": str(settings.config)})
            print(f"feature_service: {error}", file=sys.stderr)
            return EXIT_CONFIG
        try:
            self.port = probe_port(settings.host, settings.port)
        except OSError as error:
            return self._cannot_start(f"cannot listen on {settings.host}:{settings.port}: {error}")
        if settings.drift_window:
            monitoring = settings.monitoring
            self._drift = SupervisorDrift(owned_folder("drift"), self.count,
                                          settings.drift_window, monitoring.thresholds, settings.config, config)
        self._config_dir = owned_folder("config")
        self._keep_verified(booted.data)
        try:
            self._serve_metrics()
        except OSError as error:
            return self._cannot_start(f"cannot serve metrics on {settings.host}:{settings.metrics_port}: {error}")
        self._config_id = config.content_sha256
        return 0 if self._stop_requested() else None  # SIGTERM during verification: stop cleanly

    def _cannot_start(self, message: str) -> int:
        log.error(message, extra={"event": "bind_failed"})
        print(f"feature_service: {message}", file=sys.stderr)
        return EXIT_BIND

    def _start_all(self) -> int | None:
        """Starts every slot and waits until all serve. None once they do, else the exit code."""
        log.info("starting processes", extra={"event": "processes_starting", "processes": self.count,
                                               "port": self.port})
        for index in range(self.count):
            self._start(index)
        while any(child.serving_since is None for child in self.children.values()):
            self._wait(None)
            if self._stop_requested():
                return self._stop_all()
            self._read_reports()
            for child in self._exited():
                log.error("process failed to start", extra={"event": "process_failed", "worker": child.index,
                                                            "pid": child.process.pid,
                                                            "exit_code": child.process.exitcode})
                del self.children[child.index]
                self._stop_all()
                code = child.process.exitcode
                return code if code is not None and code > 0 else EXIT_FAILED
        settings = self.settings
        log.info("serving", extra={"event": "serving", "host": settings.host, "port": self.port,
                                   "metrics_port": settings.metrics_port, "security": settings.security,
                                   "predictor": settings.predictor, "config_id": self._config_id,
                                   "workers": settings.workers, "processes": self.count,
                                   "pids": [self.children[i].process.pid for i in sorted(self.children)]})
        return None

    def _supervise(self) -> int:
        while True:
            due = min(self._restart_at.values(), default=None)
            self._wait(None if due is None else max(0.0, due - time.monotonic()))
            for signum in self._take_signals():
                if signum == signal.SIGHUP:
                    self._forward(signal.SIGHUP)
                else:
                    return self._stop_all()
            self._read_reports()
            for child in self._exited():
                self._replace_later(child)
            now = time.monotonic()
            for index, at in list(self._restart_at.items()):
                if at <= now:
                    del self._restart_at[index]
                    self._start(index)

    # --- children ------------------------------------------------------------------------------

    def _start(self, index: int) -> None:
        if self.port is None:
            raise RuntimeError("a server process started before the supervisor probed its port (_prepare)")
        shared = None if self._drift is None else SharedSlot(self._drift.windows.path, index, self.count,
                                                             self._drift.windows.width)
        if self._config_dir is None:
            raise RuntimeError("a server process started before the supervisor verified the config (_prepare)")
        settings = dataclasses.replace(self.settings, port=self.port, metrics_port=0, processes=1, reuse_port=True,
                                       drift_shared=shared, boot_config=self._config_dir / VERIFIED_CONFIG)
        parent_end, child_end = _SPAWN.Pipe()
        process = _SPAWN.Process(target=run_child, args=(settings, index, child_end),
                                 name=f"feature_service-{index}", daemon=False)
        process.start()
        child_end.close()  # the child holds the only copy: its exit closes the pipe
        self.children[index] = _Child(index, process, parent_end)
        log.info("process started", extra={"event": "process_started", "worker": index, "pid": process.pid})

    def _read_reports(self) -> None:
        for child in self.children.values():
            try:
                while child.conn.poll():
                    message, *fields = child.conn.recv()
                    if message == "serving":
                        child.serving_since = time.monotonic()
                        log.info("process serving", extra={"event": "process_serving", "worker": child.index,
                                                           "pid": child.process.pid, "port": fields[0]})
                    elif message == "config":
                        config_id, created_at, data = fields
                        child.config = (config_id, created_at)
                        self._keep_verified(data)
            except (EOFError, OSError):
                pass  # it exited: _exited() sees it

    def _keep_verified(self, data: bytes) -> None:
        """The newest config a child (or this process, at boot) verified: what a child started from
        now on boots on, so that a refused file at --config never costs a process."""
        if self._config_dir is not None and data != self._verified:  # every child reports the same config
            atomic.write_bytes(self._config_dir / VERIFIED_CONFIG, data)
            self._verified = data

    def _exited(self) -> list[_Child]:
        gone = [child for child in self.children.values() if child.process.exitcode is not None]
        for child in gone:
            child.process.join()
            child.conn.close()
            if self._metrics_dir is not None:
                mark_process_dead(child.process.pid, self._metrics_dir)
        return gone

    def _replace_later(self, child: _Child) -> None:
        index = child.index
        del self.children[index]
        served = child.serving_since is not None and time.monotonic() - child.serving_since >= STEADY
        self._early_failures[index] = 0 if served else self._early_failures.get(index, 0) + 1
        delay = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** max(0, self._early_failures[index] - 1))
        self.restarts[index] = self.restarts.get(index, 0) + 1
        self._restart_at[index] = time.monotonic() + delay
        log.error("process exited unexpectedly: replacing it", extra={
            "event": "process_exited", "worker": index, "pid": child.process.pid,
            "exit_code": child.process.exitcode, "restart_in_seconds": delay, "restarts": self.restarts[index]})

    def _forward(self, signum: int) -> None:
        for child in self.children.values():
            if child.process.exitcode is None:
                os.kill(child.pid, signum)

    def _stop_all(self) -> int:
        """SIGTERM to every child, wait for each to drain; 0 when all stopped cleanly."""
        self._restart_at.clear()
        grace = self.settings.grace
        log.info("stopping", extra={"event": "stopping", "grace_seconds": grace, "processes": len(self.children)})
        self._forward(signal.SIGTERM)
        deadline = time.monotonic() + grace + STOP_MARGIN
        clean = True
        for child in self.children.values():
            child.process.join(max(0.0, deadline - time.monotonic()))
            if child.process.exitcode is None:
                log.error("process did not stop: killing it", extra={"event": "process_killed",
                                                                    "worker": child.index, "pid": child.process.pid})
                child.process.kill()
                child.process.join()
            code = child.process.exitcode
            # A child stopped before it served held no call: killed by the SIGTERM is a clean stop too.
            clean &= code == 0 or (code == -signal.SIGTERM and child.serving_since is None)
        self._exited()
        self.children.clear()
        log.info("stopped", extra={"event": "stopped", "clean": clean})
        return 0 if clean else EXIT_FAILED

    # --- signals, metrics, clean-up ------------------------------------------------------------

    def _install_signals(self) -> None:
        os.set_blocking(self._wake_write, False)
        os.set_blocking(self._wake_read, False)
        signal.set_wakeup_fd(self._wake_write, warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda number, frame: self._signals.append(number))

    def _take_signals(self) -> list[int]:
        taken, self._signals[:] = list(self._signals), []
        return taken

    def _stop_requested(self) -> bool:
        taken = self._take_signals()
        self._signals.extend(s for s in taken if s == signal.SIGHUP)  # kept for the main loop
        return any(s != signal.SIGHUP for s in taken)

    def _wait(self, timeout: float | None) -> None:
        """Until a child reports or exits, a signal arrives, or `timeout` seconds pass."""
        objects: list[Connection | int] = [self._wake_read]
        for child in self.children.values():
            objects.append(child.process.sentinel)
            objects.append(child.conn)  # its reports: serving, and each config it serves
        if self._wake_read in wait(objects, timeout):
            try:
                while os.read(self._wake_read, 512):
                    pass
            except BlockingIOError:
                pass

    def _serve_metrics(self) -> None:
        if not self.settings.metrics_port:
            return
        self._metrics_dir = str(owned_folder("metrics"))
        os.environ[MULTIPROC_DIR_ENV] = self._metrics_dir  # read by prometheus_client in each spawned child
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self._metrics_dir)
        registry.register(_SupervisorMetrics(self))
        if self._drift is not None:
            self._drift.register_metrics(registry)
        self._http, _ = start_http_server(self.settings.metrics_port, addr=self.settings.host, registry=registry)

    def _close(self) -> None:
        for child in self.children.values():  # only after an unexpected error of the supervisor itself
            if child.process.exitcode is None:
                child.process.kill()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._metrics_dir is not None:
            os.environ.pop(MULTIPROC_DIR_ENV, None)
            shutil.rmtree(self._metrics_dir, ignore_errors=True)
        if self._drift is not None:
            shutil.rmtree(self._drift.windows.path.parent, ignore_errors=True)
        if self._config_dir is not None:
            shutil.rmtree(self._config_dir, ignore_errors=True)
        signal.set_wakeup_fd(-1)
        os.close(self._wake_read)
        os.close(self._wake_write)
