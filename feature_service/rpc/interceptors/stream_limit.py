"""At most `limit` streaming calls open at once, so that unary calls and health checks always find a
worker thread.

A streaming call (PredictStream, health Watch, reflection) holds one of the server's worker threads
for as long as it is open, sending or not: as many idle streams as workers would leave none for
Predict or a health Check (they would wait until their deadline). With the limit below the worker
count, one stream too many is refused at once with RESOURCE_EXHAUSTED naming the limit.
"""

from __future__ import annotations

import threading

import grpc

from feature_service.rpc import status_mapping
from feature_service.rpc.interceptors.method_wrapping import (
    MethodWrappingInterceptor,
    wrap_behavior,
)


class StreamLimitInterceptor(MethodWrappingInterceptor):
    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit
        self._open = 0
        self._lock = threading.Lock()

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if handler.response_streaming:
            return wrap_behavior(handler, self._streaming)
        if handler.request_streaming:
            return wrap_behavior(handler, self._unary_response)
        return handler  # unary: never limited

    def _enter(self, context: grpc.ServicerContext) -> None:
        with self._lock:
            admitted = self._open < self.limit
            if admitted:
                self._open += 1
        if not admitted:
            status_mapping.abort(context, status_mapping.too_many_streams_status(self.limit))

    def _leave(self) -> None:
        with self._lock:
            self._open -= 1

    def _streaming(self, behavior):
        def limited(request, context):
            self._enter(context)
            try:
                yield from behavior(request, context)
            finally:
                self._leave()

        return limited

    def _unary_response(self, behavior):
        def limited(request_iterator, context):
            self._enter(context)
            try:
                return behavior(request_iterator, context)
            finally:
                self._leave()

        return limited
