"""PredictionServer: boot from a verified config, then start()/stop(grace).

Boot order: read the config, build the predictor that will serve, verify the config through it
(golden rows included: verified_config.py), and only then open the port and report SERVING on
health. Then the reloader (config_reloader.py) swaps in new configs, built and verified by the very
same `load_verified`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent import futures

import grpc

from absenteeism import config_io, dataflow, malloc_tuning, profile_bins
from absenteeism.v1 import serving_config_pb2
from feature_service import config_reloader
from feature_service.monitoring.metrics import Metrics
from feature_service.monitoring.monitored_predictor import Monitoring
from feature_service.monitoring.prediction_logger import require_log_folder
from feature_service.rpc import tls
from feature_service.rpc.health import Health
from feature_service.rpc.interceptors.call_metrics import MetricsInterceptor
from feature_service.rpc.interceptors.decode_guard import DecodeGuardInterceptor
from feature_service.rpc.interceptors.stream_limit import StreamLimitInterceptor
from feature_service.rpc.micro_batching import MicroBatchingPredictor
from feature_service.rpc.prediction_servicer import PredictionServicer
from feature_service.serving_state import Serving, ServingState
from feature_service.settings import Settings
from feature_service.verified_config import activate_data_set_of, load_verified

ConfigListener = Callable[[str, str, bytes], None]

log = logging.getLogger(__name__)


class PredictionServer:
    def __init__(self, settings: Settings, on_config: ConfigListener | None = None):
        """`on_config(config_id, created_at, config bytes)`: told at boot and at each reload what
        config answers calls from then on (a supervisor's child passes it on to its parent)."""
        self.settings = settings
        self._on_config = on_config
        self.metrics = Metrics()
        self.health = Health()
        self.port: int | None = None
        self.state: ServingState | None = None
        self.monitoring: Monitoring | None = None
        self._server: grpc.Server | None = None
        self._reloader: config_reloader.Reloader | None = None
        self._stream_limit: StreamLimitInterceptor | None = None
        self.malloc_tuned = False  # glibc took --malloc-keep-mib (start)

    @property
    def config(self) -> serving_config_pb2.ServingConfig | None:
        """The config being served."""
        return self.state.current.config if self.state is not None else None

    def start(self) -> int:
        """Verifies the config, binds, starts; returns the bound port. Raises config_io.ConfigError."""
        settings = self.settings
        self.malloc_tuned = malloc_tuning.keep_freed_memory(settings.malloc_keep_mib)
        booted = config_reloader.read_settled(settings.boot_config or settings.config)
        if settings.boot_config is not None:  # the supervisor's copy: the first look at --config reads it
            booted = config_reloader.Snapshot(booted.data, None, booted.sha256)
        data_set = activate_data_set_of(settings, booted.data)
        self.monitoring = Monitoring(settings.monitoring, dataflow.model_features(), self.metrics.registry,
                                     lambda: self.state.current.drift if self.state is not None else None)
        self.state = ServingState(self._verified_serving(booted.data))
        credentials = tls.server_credentials(settings)
        require_log_folder(settings.prediction_log)
        servicer = PredictionServicer(self.state, max_batch=settings.max_batch, metrics=self.metrics,
                                      stream_idle_seconds=settings.stream_idle_timeout)
        # Unary calls on the workers; streaming calls on the stream limiter's own pool.
        self._stream_limit = StreamLimitInterceptor(settings.stream_limit)
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="rpc"),
            interceptors=[MetricsInterceptor(self.metrics), self._stream_limit, DecodeGuardInterceptor()],
            options=[("grpc.max_receive_message_length", settings.max_message_bytes),
                     ("grpc.max_send_message_length", settings.max_message_bytes),
                     # 0: a port already taken is an error; 1 only for a supervisor's children,
                     # which share the port the supervisor checked is free (processes/supervisor.py)
                     ("grpc.so_reuseport", 1 if settings.reuse_port else 0)])
        data_set.service_grpc.add_PredictionServiceServicer_to_server(servicer, server)
        self.health.add_to(server, data_set.service_name)
        address = f"{settings.host}:{settings.port}"
        try:
            port = (server.add_insecure_port(address) if credentials is None
                    else server.add_secure_port(address, credentials))
        except RuntimeError as error:  # grpc's "Failed to bind"
            raise OSError(f"cannot listen on {address}: {error}") from None
        if port == 0:
            raise OSError(f"cannot listen on {address}")
        metrics_host = settings.metrics_host or settings.host  # as Settings.__post_init__ sets it
        try:
            self.metrics.serve_http(metrics_host, settings.metrics_port)
        except OSError as error:
            raise OSError(f"cannot serve metrics on {metrics_host}:{settings.metrics_port}: {error}") from None
        self.monitoring.start()
        server.start()
        self._server, self.port = server, port
        self.health.serving()
        serving = self.state.current
        self._announce(serving, booted.data)
        log.info("serving", extra={"event": "serving", **self._log_fields(serving)})
        self._reloader = config_reloader.Reloader(settings.config, booted, self.state, self._verified_serving,
                                         interval=settings.reload_interval, metrics=self.metrics,
                                         log_fields=self._log_fields, on_loaded=self._announce)
        self._reloader.start()
        return port

    def _announce(self, serving: Serving, data: bytes) -> None:
        """A config now answers calls: the config metric says which, and `on_config` is told."""
        created_at = config_reloader.created_at(serving)
        self.metrics.serving_config(serving.config_id, created_at)
        if self._on_config is not None:
            self._on_config(serving.config_id, created_at, data)

    def _verified_serving(self, data: bytes) -> Serving:
        """What the boot and every reload serve: the config in `data`, verified through its predictor."""
        config, predictor = load_verified(self.settings, data)
        if self.settings.micro_batch_rows:  # one micro-batcher per config: no batch spans two configs
            predictor = MicroBatchingPredictor(predictor, self.settings.micro_batch_rows,
                                               on_batch=lambda calls, rows: self.metrics.micro_batch_calls.observe(calls))
        if self.monitoring is None:
            raise RuntimeError("PredictionServer: a config was verified before start() set up monitoring")
        try:  # after the golden rows: they are never counted as traffic
            predictor, drift = self.monitoring.attach(config, predictor)
        except profile_bins.ProfileError as error:
            raise config_io.ConfigError(f"config file {self.settings.config}: {error}: rerun the ETL job") from None
        return Serving.of(config, predictor, drift)

    def _log_fields(self, serving: Serving) -> dict:
        """The fields of the "serving" line (repeated by each "config_loaded" line)."""
        settings = self.settings
        return {"host": settings.host, "port": self.port, "metrics_host": settings.metrics_host,
                "metrics_port": settings.metrics_port, "security": settings.security, "predictor": settings.predictor,
                "config_id": serving.config_id, "config_created_at": config_reloader.created_at(serving),
                "workers": settings.workers, "max_streams": settings.stream_limit,
                "malloc_keep_mib": settings.malloc_keep_mib if self.malloc_tuned else 0}

    def request_reload(self) -> None:
        """Reload the config now (SIGHUP); a no-op before start()."""
        if self._reloader is not None:
            self._reloader.request()

    def stop(self, grace: float | None = None) -> None:
        """Health NOT_SERVING, refuse new calls, let in-flight calls finish within `grace` seconds."""
        grace = self.settings.grace if grace is None else grace
        if self._reloader is not None:
            self._reloader.stop()
        self.health.shutting_down()
        if self._server is not None:
            log.info("stopping", extra={"event": "stopping", "grace_seconds": grace})
            self._server.stop(grace).wait()
            self._server = None
        if self._stream_limit is not None:
            self._stream_limit.pool.shutdown(wait=False)
        if self.monitoring is not None:
            self.monitoring.close()  # after the last call: the prediction log's open file is published
        self.metrics.stop_http()
        log.info("stopped", extra={"event": "stopped"})
