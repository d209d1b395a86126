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


class StreamLimitInterceptor(grpc.ServerInterceptor):
    def __init__(self, limit: int):
        self.limit = limit
        self._open = 0
        self._lock = threading.Lock()
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        wrapped = self._handlers.get(method)
        if wrapped is None:
            wrapped = self._wrap(continuation(handler_call_details))
            if wrapped is not None:  # a server's handlers never change: wrap each known method once
                self._handlers[method] = wrapped
        return wrapped

    def _wrap(self, handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler | None:
        if handler is None:
            return None
        if handler.unary_stream is not None:
            return handler._replace(unary_stream=self._streaming(handler.unary_stream))
        if handler.stream_stream is not None:
            return handler._replace(stream_stream=self._streaming(handler.stream_stream))
        if handler.stream_unary is not None:
            return handler._replace(stream_unary=self._unary_response(handler.stream_unary))
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
