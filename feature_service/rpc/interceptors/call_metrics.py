"""Counts, times and logs every call into the server's Metrics, whatever its method and outcome."""

from __future__ import annotations

import logging
import time

import grpc
from prometheus_client import Counter, Histogram

from feature_service.monitoring.metrics import Metrics
from feature_service.rpc.interceptors.method_wrapping import (
    MethodWrappingInterceptor,
    wrap_behavior,
)

log = logging.getLogger(__name__)


def _final_code(context: grpc.ServicerContext, raised: bool) -> str:
    code = context.code()
    if code is not None:
        return code.name
    if not context.is_active():
        remaining = context.time_remaining()
        return (grpc.StatusCode.DEADLINE_EXCEEDED if remaining is not None and remaining <= 0
                else grpc.StatusCode.CANCELLED).name
    return (grpc.StatusCode.INTERNAL if raised else grpc.StatusCode.OK).name


class MetricsInterceptor(MethodWrappingInterceptor):
    """Counts, times and logs (DEBUG) every call, whatever its method and outcome."""

    def __init__(self, metrics: Metrics):
        super().__init__()
        self._metrics = metrics
        # Label children looked up once: .labels() builds a key and takes a lock on every call.
        self._requests: dict[tuple[str, str], Counter] = {}
        self._latency: dict[str, Histogram] = {}

    def _done(self, method: str, context, started: float, raised: bool) -> None:
        elapsed = time.perf_counter() - started
        code = _final_code(context, raised)
        requests = self._requests.get((method, code))
        if requests is None:
            requests = self._requests[method, code] = self._metrics.requests.labels(method, code)
        requests.inc()
        latency = self._latency.get(method)
        if latency is None:
            latency = self._latency[method] = self._metrics.latency.labels(method)
        latency.observe(elapsed)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("call", extra={"event": "call", "method": method, "code": code,
                                     "duration_ms": round(elapsed * 1000, 3), "peer": context.peer()})

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        timed = self._wrap_stream if handler.response_streaming else self._wrap_unary
        return wrap_behavior(handler, lambda behavior: timed(method, behavior))

    def _wrap_unary(self, method, behavior):
        def timed(request, context):
            started, raised = time.perf_counter(), True
            try:
                response = behavior(request, context)
                raised = False
                return response
            finally:
                self._done(method, context, started, raised)

        return timed

    def _wrap_stream(self, method, behavior):
        def timed(request, context):
            started, raised = time.perf_counter(), True
            try:
                yield from behavior(request, context)
                raised = False
            finally:
                self._done(method, context, started, raised)

        return timed
