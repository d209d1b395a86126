"""Prometheus metrics, served over HTTP at /metrics (rpc/interceptors/call_metrics.py records every call).

feature_service_requests_total{method,code}          calls by method and final status code
feature_service_request_duration_seconds{method}     latency (a stream: its whole life)
feature_service_validation_failures_total{field}     invalid fields by RawRecord field name
feature_service_batch_size                           records per PredictBatch call
feature_service_stream_messages_total{outcome}       PredictStream records: predicted / rejected
feature_service_micro_batch_calls                    calls computed together in one micro-batch
feature_service_config_reloads_total{outcome}        config reloads: loaded / refused / unchanged
feature_service_config_info{config_id,created_at}    1, labelled with the config being served
"""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    start_http_server,
)

from absenteeism.violation_table import ViolationTable

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
RELOAD_OUTCOMES = ("loaded", "refused", "unchanged")
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 100000)


class Metrics:
    """One registry per server, so that several servers (tests) can live in one process."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.requests = Counter("feature_service_requests", "gRPC calls by method and status code",
                                ["method", "code"], registry=self.registry)
        self.latency = Histogram("feature_service_request_duration_seconds", "gRPC call latency",
                                 ["method"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.validation_failures = Counter("feature_service_validation_failures",
                                           "invalid record fields by field", ["field"], registry=self.registry)
        self.batch_size = Histogram("feature_service_batch_size", "records per PredictBatch call",
                                    buckets=_BATCH_BUCKETS, registry=self.registry)
        self.stream_messages = Counter("feature_service_stream_messages", "PredictStream records by outcome",
                                       ["outcome"], registry=self.registry)
        self.micro_batch_calls = Histogram("feature_service_micro_batch_calls",
                                           "concurrent calls computed together in one micro-batch",
                                           buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64),
                                           registry=self.registry)
        self.config_reloads = Counter("feature_service_config_reloads", "config reloads by outcome", ["outcome"],
                                      registry=self.registry)
        for outcome in RELOAD_OUTCOMES:  # every outcome shows from the start, at 0
            self.config_reloads.labels(outcome=outcome)
        self.config_info = Info("feature_service_config", "the config being served", registry=self.registry)
        self._http: WSGIServer | None = None

    def serving_config(self, config_id: str, created_at: str) -> None:
        self.config_info.info({"config_id": config_id, "created_at": created_at})

    def record_violations(self, table: ViolationTable) -> None:
        for column, count in table.counts_by_column().items():
            self.validation_failures.labels(field=column).inc(count)

    def serve_http(self, host: str, port: int) -> None:
        if port:
            self._http, _ = start_http_server(port, addr=host, registry=self.registry)

    def stop_http(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
