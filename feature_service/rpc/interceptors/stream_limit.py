"""At most `limit` streaming calls open at once, each on a thread of the streams' own pool, so that
unary calls and health checks always find a worker thread.

A streaming call (PredictStream, health Watch, reflection) holds a thread for as long as it is open,
sending or not. Streams run on a pool of their own (`limit` threads, and one more to refuse the next
stream at once), never on the server's workers: the workers are few (as many as serve unary calls
best: more only contend for the GIL), and an idle stream must not take one. One stream too many is
refused with RESOURCE_EXHAUSTED naming the limit.
"""

from __future__ import annotations

import threading
from concurrent import futures

import grpc

from feature_service.rpc import status_mapping
from feature_service.rpc.interceptors.method_wrapping import (
    THREAD_POOL,
    MethodWrappingInterceptor,
    wrap_behavior,
)


class StreamLimitInterceptor(MethodWrappingInterceptor):
    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit
        self.pool = futures.ThreadPoolExecutor(max_workers=limit + 1, thread_name_prefix="stream")
        self._open = 0
        self._lock = threading.Lock()

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if handler.response_streaming:
            return wrap_behavior(handler, self._on_pool(self._streaming))
        if handler.request_streaming:
            return wrap_behavior(handler, self._on_pool(self._unary_response))
        return handler  # unary: never limited, on the server's workers

    def _on_pool(self, wrapper):
        def wrapped_on_pool(behavior):
            limited = wrapper(behavior)
            setattr(limited, THREAD_POOL, self.pool)
            return limited

        return wrapped_on_pool

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
