"""The one settings object: every flag of `python -m feature_service serve`, each also readable from
the environment as FEATURE_SERVICE_<UPPER_SNAKE> (e.g. FEATURE_SERVICE_PORT). Flags win over env."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from absenteeism import log_lines, malloc_tuning
from feature_service import predictor_registry
from feature_service.monitoring.drift_window import DEFAULT_WINDOW, Thresholds, row_width
from feature_service.monitoring.monitored_predictor import (
    MonitoringSettings,
    SharedSlot,
    log_settings,
)

ENV_PREFIX = "FEATURE_SERVICE_"
# The drift window holds a row of float64s per record (raw values, features, prediction): a million
# records are about 300 MB per process, the most a window is allowed.
WINDOW_ROW_BYTES = 8 * row_width()
MAX_DRIFT_WINDOW = 1_000_000
MAX_STREAMS = 10_000  # a thread each: far more than one process can serve
MAX_MALLOC_KEEP_MIB = malloc_tuning.MAX_KEEP_MIB
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """The flags/environment cannot make a server (e.g. neither --insecure nor TLS files)."""


@dataclass(frozen=True)
class Settings:
    config: Path
    host: str = "0.0.0.0"
    port: int = 50051  # 0: pick a free port (logged in the "serving" line)
    metrics_port: int = 9464  # 0: no metrics endpoint
    metrics_host: str | None = None  # None: the gRPC --host (metrics have no authentication)
    insecure: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # set: mutual TLS, clients must present a cert it signed
    grace: float = 10.0
    workers: int = 2  # threads for unary calls; more only contend for the GIL (docs/performance.md)
    max_batch: int = 10_000
    max_message_bytes: int = 16 * 1024 * 1024
    predictor: str = "fast"
    micro_batch_rows: int = 0  # 0: off (measured slower on 2 cores, see README); N: batch up to N records
    reload_interval: float = 5.0  # seconds between checks of --config for a new file; 0: no watching (SIGHUP only)
    max_streams: int = 4  # streaming calls open at once, each on a thread of the streams' own pool
    stream_idle_timeout: float = 60.0  # seconds a stream may send nothing; 0: no limit
    # freed memory glibc keeps for the next call (absenteeism/malloc_tuning.py); 0: glibc's defaults
    malloc_keep_mib: int = malloc_tuning.DEFAULT_KEEP_MIB
    log_level: str = "INFO"
    log_format: str = "json"  # "json" (one object a line, for log pipelines) or "text"
    processes: int = 1  # 0: one per available core; >1: a supervisor runs that many (processes/supervisor.py)
    reuse_port: bool = False  # not a flag: set by the supervisor for its children (SO_REUSEPORT)
    # Monitoring (feature_service/monitoring/): drift against the config's training profile, prediction log.
    drift_window: int = DEFAULT_WINDOW  # records; 0: off
    drift_psi_threshold: float = Thresholds.psi
    drift_jensen_shannon_threshold: float = Thresholds.jensen_shannon
    drift_l_infinity_threshold: float = Thresholds.l_infinity
    drift_min_records: int = Thresholds.min_records  # no entry is judged drifted over fewer records
    prediction_log: Path | None = None  # a folder; None: no log
    prediction_log_sample_rate: float = 0.01
    prediction_log_rotate_bytes: int = 64 * 1024 * 1024
    prediction_log_rotate_seconds: float = 300.0
    drift_shared: SharedSlot | None = None  # not a flag: set by the supervisor for its children (shared windows)
    # Not a flag: set by the supervisor for its children. The file of the config the supervisor last
    # verified, which a child boots on; --config stays the file it watches and reloads from.
    boot_config: Path | None = None

    def __post_init__(self) -> None:
        if not self.metrics_host:
            object.__setattr__(self, "metrics_host", self.host)
        if not 0 <= self.port <= 65535 or not 0 <= self.metrics_port <= 65535:
            raise SettingsError("ports must be in 0..65535")
        if self.micro_batch_rows < 0:
            raise SettingsError("--micro-batch-rows must be >= 0")
        if not 0 <= self.reload_interval <= 86_400:  # also refuses nan
            raise SettingsError("--reload-interval must be in 0..86400 seconds (0 turns watching off)")
        if self.processes < 0:
            raise SettingsError("--processes must be >= 0 (0: one per available core)")
        if self.grace < 0 or self.workers < 1 or self.max_batch < 1 or self.max_message_bytes < 1024:
            raise SettingsError("--grace must be >= 0, --workers and --max-batch >= 1, --max-message-bytes >= 1024")
        if not 0 <= self.max_streams <= MAX_STREAMS:
            raise SettingsError(f"--max-streams must be in 0..{MAX_STREAMS}: each open stream holds a thread")
        if not 0 <= self.malloc_keep_mib <= MAX_MALLOC_KEEP_MIB:
            raise SettingsError(f"--malloc-keep-mib must be in 0..{MAX_MALLOC_KEEP_MIB} (0: glibc's defaults)")
        if self.stream_idle_timeout < 0:
            raise SettingsError("--stream-idle-timeout must be >= 0 (0: no limit)")
        if self.log_format not in log_lines.FORMATS:
            raise SettingsError(f"--log-format must be one of {', '.join(log_lines.FORMATS)}, got {self.log_format!r}")
        if self.predictor not in predictor_registry.names():
            raise SettingsError(f"unknown predictor {self.predictor!r}: choose one of {predictor_registry.names()}")
        tls = self.tls_cert is not None or self.tls_key is not None or self.tls_client_ca is not None
        if self.insecure and tls:
            raise SettingsError("--insecure and --tls-* flags exclude each other")
        if not self.insecure and (self.tls_cert is None or self.tls_key is None):
            raise SettingsError("TLS is required: pass --tls-cert and --tls-key (and --tls-client-ca for mutual TLS), "
                                "or --insecure for plaintext")
        if not 0 <= self.drift_window <= MAX_DRIFT_WINDOW:
            raise SettingsError(f"--drift-window must be in 0..{MAX_DRIFT_WINDOW} records (0 turns drift monitoring "
                                f"off; each record held costs {WINDOW_ROW_BYTES} bytes)")
        for flag, threshold in (("--drift-psi-threshold", self.drift_psi_threshold),
                                ("--drift-jensen-shannon-threshold", self.drift_jensen_shannon_threshold),
                                ("--drift-l-infinity-threshold", self.drift_l_infinity_threshold)):
            if not (math.isfinite(threshold) and threshold >= 0):  # nan would silently turn drift off
                raise SettingsError(f"{flag} must be a finite number >= 0, got {threshold}")
        if self.drift_min_records < 1 or (self.drift_window and self.drift_min_records > self.drift_window):
            raise SettingsError(f"--drift-min-records must be in 1..--drift-window ({self.drift_window}), got "
                                f"{self.drift_min_records}: a window smaller than the minimum never judges drift; "
                                "lower --drift-min-records to accept reports that vary more by chance")
        if not 0 <= self.prediction_log_sample_rate <= 1:
            raise SettingsError("--prediction-log-sample-rate must be in 0..1")
        if self.prediction_log_rotate_bytes < 1 or self.prediction_log_rotate_seconds <= 0:
            raise SettingsError("--prediction-log-rotate-bytes must be >= 1 and --prediction-log-rotate-seconds > 0")

    @property
    def stream_limit(self) -> int:
        """Streaming calls let in at once (their threads are not the workers: unary calls keep those)."""
        return self.max_streams

    @property
    def process_count(self) -> int:
        """--processes with 0 resolved: the cores this process may run on (its CPU affinity)."""
        return self.processes or len(os.sched_getaffinity(0))

    @property
    def security(self) -> str:
        return "plaintext" if self.insecure else ("mtls" if self.tls_client_ca else "tls")

    @property
    def monitoring(self) -> MonitoringSettings:
        thresholds = Thresholds(self.drift_psi_threshold, self.drift_jensen_shannon_threshold,
                                self.drift_l_infinity_threshold, self.drift_min_records)
        return MonitoringSettings(self.drift_window, thresholds, log_settings(
            self.prediction_log, self.prediction_log_sample_rate, self.prediction_log_rotate_bytes,
            self.prediction_log_rotate_seconds), self.drift_shared)


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {text!r}")


def env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


# flag, type, default, help. The table is the documentation (docs/grpc.md repeats it).
OPTIONS: tuple[tuple[str, Callable[[str], object], object, str], ...] = (
    ("--config", Path, None, "ServingConfig file written by the ETL job (serving_config.pb); required"),
    ("--host", str, Settings.host, "listen address"),
    ("--port", int, Settings.port, "gRPC port; 0 picks a free port"),
    ("--metrics-port", int, Settings.metrics_port, "Prometheus /metrics HTTP port; 0 turns metrics off"),
    ("--metrics-host", str, None, "listen address of /metrics (plain HTTP, no authentication); default: --host"),
    ("--insecure", _bool, False, "serve plaintext (otherwise TLS is required)"),
    ("--tls-cert", Path, None, "server certificate chain (PEM)"),
    ("--tls-key", Path, None, "server private key (PEM)"),
    ("--tls-client-ca", Path, None, "CA (PEM) that signs client certificates: turns on mutual TLS"),
    ("--grace", float, Settings.grace, "seconds in-flight calls get to finish at shutdown"),
    ("--workers", int, Settings.workers,
     "threads serving unary calls (Predict, PredictBatch, PredictColumns, health checks)"),
    ("--max-streams", int, Settings.max_streams,
     ("most streaming calls open at once, each on a thread of the streams' own pool (never a worker); "
      "extra ones get RESOURCE_EXHAUSTED")),
    ("--stream-idle-timeout", float, Settings.stream_idle_timeout,
     "seconds a PredictStream may send nothing before the server ends it; 0: no limit"),
    ("--malloc-keep-mib", int, Settings.malloc_keep_mib,
     "MiB of freed memory glibc keeps for the next call instead of giving it back to the kernel; 0: glibc's defaults"),
    ("--max-batch", int, Settings.max_batch, "most records in one PredictBatch call"),
    ("--max-message-bytes", int, Settings.max_message_bytes, "largest request/response message"),
    ("--predictor", str, Settings.predictor, "online path: " + ", ".join(predictor_registry.names())),
    ("--micro-batch-rows", int, Settings.micro_batch_rows,
     "most records of concurrent small calls computed together; 0 turns micro-batching off"),
    ("--reload-interval", float, Settings.reload_interval,
     "seconds between checks of --config for a new file (SIGHUP reloads at once); 0 turns watching off"),
    ("--log-level", str, Settings.log_level, "DEBUG logs every call; INFO, WARNING, ERROR"),
    ("--log-format", str, Settings.log_format, "log lines on stderr: json (one object a line) or text"),
    ("--processes", int, Settings.processes,
     "server processes sharing the port (SO_REUSEPORT) under one supervisor; 0: one per available core"),
    ("--drift-window", int, Settings.drift_window,
     "records the drift report compares with the training profile (the last N served); 0 turns drift monitoring off"),
    ("--drift-psi-threshold", float, Settings.drift_psi_threshold, "numeric values: PSI above this is drift"),
    ("--drift-jensen-shannon-threshold", float, Settings.drift_jensen_shannon_threshold,
     "numeric values: Jensen-Shannon divergence (base 2) above this is drift"),
    ("--drift-l-infinity-threshold", float, Settings.drift_l_infinity_threshold,
     "categorical values: L-infinity distance above this is drift"),
    ("--drift-min-records", int, Settings.drift_min_records,
     "records the window must hold before any entry is judged drifted (fewer differ from training by chance)"),
    ("--prediction-log", Path, None, "folder to log sampled predictions to (Parquet); unset: no log"),
    ("--prediction-log-sample-rate", float, Settings.prediction_log_sample_rate,
     "share of predictions logged, 0..1"),
    ("--prediction-log-rotate-bytes", int, Settings.prediction_log_rotate_bytes,
     "a log file is closed and published once it holds this many bytes"),
    ("--prediction-log-rotate-seconds", float, Settings.prediction_log_rotate_seconds,
     "... or once it is this many seconds old"),
)


def add_arguments(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    for flag, kind, default, help_text in OPTIONS:
        env = env_name(flag)
        # argparse runs `type` over a string default, so env values are parsed like flags.
        value = environ.get(env, default)
        help_full = f"{help_text} [env {env}; default {default}]"
        if flag == "--insecure":
            parser.add_argument(flag, nargs="?", const=True, type=_bool, default=value, help=help_full)
        else:
            parser.add_argument(flag, type=kind, default=value, help=help_full,
                                choices=predictor_registry.names() if flag == "--predictor" else None)


def from_namespace(args: argparse.Namespace) -> Settings:
    if args.config is None:
        raise SettingsError(f"--config is required (or {env_name('--config')})")
    return Settings(**{flag.lstrip("-").replace("-", "_"): getattr(args, flag.lstrip("-").replace("-", "_"))
                       for flag, *_ in OPTIONS})


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from `serve`'s arguments (without the subcommand) and the environment."""
    parser = argparse.ArgumentParser(prog="python -m feature_service serve")
    add_arguments(parser, os.environ if environ is None else environ)
    return from_namespace(parser.parse_args(list(argv)))
