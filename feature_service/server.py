"""PredictionServer: boot from a verified config, then start()/stop(grace).

Boot order: read the config, build the predictor that will serve, verify the config through it
(golden rows included), and only then open the port and report SERVING on health.
"""

from __future__ import annotations

import logging
from concurrent import futures

import grpc

from absenteeism import config_io, profile
from absenteeism.v1 import prediction_service_pb2_grpc, serving_config_pb2
from feature_service import errors, predictors
from feature_service.monitoring import Monitoring
from feature_service.micro_batching import MicroBatchingPredictor
from feature_service.health import Health
from feature_service.metrics import Metrics, MetricsInterceptor
from feature_service.servicer import PredictionServicer
from feature_service.settings import Settings

log = logging.getLogger(__name__)


def load_verified(settings: Settings) -> tuple[serving_config_pb2.ServingConfig, predictors.Predictor]:
    """Raises config_io.ConfigError unless the config is intact and reproduces its golden rows
    through the very predictor that will serve."""
    config = config_io.read_config(settings.config)
    try:
        predictor = predictors.create(settings.predictor, config)
    except Exception as error:  # a config too broken to even build a predictor from
        config_io.verify_config(config)  # gives the precise reason when there is one
        raise config_io.ConfigError(f"cannot build the {settings.predictor} predictor from the config ({error}): "
                                    "rerun the ETL job") from None
    config_io.verify_config(config, predictor)
    return config, predictor


def _read(path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise config_io.ConfigError(f"cannot read TLS file {path}: {error.strerror}") from None


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    if settings.insecure:
        return None
    client_ca = _read(settings.tls_client_ca) if settings.tls_client_ca else None
    return grpc.ssl_server_credentials([(_read(settings.tls_key), _read(settings.tls_cert))],
                                       root_certificates=client_ca, require_client_auth=client_ca is not None)


class PredictionServer:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.metrics = Metrics()
        self.health = Health()
        self.port: int | None = None
        self.config: serving_config_pb2.ServingConfig | None = None
        self.monitoring: Monitoring | None = None
        self.drift = None  # the drift monitor of the config being served
        self._server: grpc.Server | None = None

    def start(self) -> int:
        """Verifies the config, binds, starts; returns the bound port. Raises config_io.ConfigError."""
        settings = self.settings
        self.config, predictor = load_verified(settings)
        if settings.micro_batch_rows:
            predictor = MicroBatchingPredictor(predictor, settings.micro_batch_rows,
                                               on_batch=lambda calls, rows: self.metrics.micro_batch_calls.observe(calls))
        self.monitoring = Monitoring(settings.monitoring, self.config.feature_names, self.metrics.registry,
                                     lambda: self.drift)
        try:
            predictor, self.drift = self.monitoring.attach(self.config, predictor)
        except profile.ProfileError as error:
            raise config_io.ConfigError(f"config {error}: rerun the ETL job") from None
        credentials = server_credentials(settings)
        servicer = PredictionServicer(self.config, predictor, max_batch=settings.max_batch, metrics=self.metrics,
                                      drift=self.drift)
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="rpc"),
            interceptors=[MetricsInterceptor(self.metrics), errors.DecodeGuardInterceptor()],
            options=[("grpc.max_receive_message_length", settings.max_message_bytes),
                     ("grpc.max_send_message_length", settings.max_message_bytes),
                     ("grpc.so_reuseport", 0)])
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
        self.health.add_to(server)
        address = f"{settings.host}:{settings.port}"
        try:
            port = (server.add_insecure_port(address) if credentials is None
                    else server.add_secure_port(address, credentials))
        except RuntimeError as error:  # grpc's "Failed to bind"
            raise OSError(f"cannot listen on {address}: {error}") from None
        if port == 0:
            raise OSError(f"cannot listen on {address}")
        try:
            self.metrics.serve_http(settings.host, settings.metrics_port)
        except OSError as error:
            raise OSError(f"cannot serve metrics on {settings.host}:{settings.metrics_port}: {error}") from None
        self.monitoring.start()
        server.start()
        self._server, self.port = server, port
        self.health.serving()
        log.info("serving", extra={"event": "serving", "host": settings.host, "port": port,
                                   "metrics_port": settings.metrics_port, "security": settings.security,
                                   "predictor": settings.predictor, "config_id": self.config.content_sha256,
                                   "workers": settings.workers})
        return port

    def stop(self, grace: float | None = None) -> None:
        """Health NOT_SERVING, refuse new calls, let in-flight calls finish within `grace` seconds."""
        grace = self.settings.grace if grace is None else grace
        self.health.shutting_down()
        if self._server is not None:
            log.info("stopping", extra={"event": "stopping", "grace_seconds": grace})
            self._server.stop(grace).wait()
            self._server = None
        if self.monitoring is not None:
            self.monitoring.close()  # after the last call: the prediction log's open file is published
        self.metrics.stop_http()
        log.info("stopped", extra={"event": "stopped"})

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return self._server.wait_for_termination(timeout) if self._server is not None else True
