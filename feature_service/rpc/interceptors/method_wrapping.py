"""The scaffold the interceptors share: each method's handler is wrapped once, on its first call,
and the wrapped one reused (a server's handlers never change), whatever the method's kind."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import grpc

# A method's behaviour: (request or request iterator, context) -> response or response iterator.
Behavior = Callable[[Any, grpc.ServicerContext], Any]

_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")

# gRPC (pinned in pyproject.toml) runs a method whose behaviour has this attribute, a
# ThreadPoolExecutor, on that pool instead of the server's (grpc/_server.py,
# _select_thread_pool_for_behavior); tests/feature_service/test_stream_limits.py proves it does.
THREAD_POOL = "experimental_thread_pool"


class MethodWrappingInterceptor(grpc.ServerInterceptor):
    """Subclasses say how to wrap one method's handler (`wrap`); this class caches it per method."""

    def __init__(self) -> None:
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        wrapped = self._handlers.get(method)
        if wrapped is None:
            handler = continuation(handler_call_details)
            if handler is None:  # not a method of this server: gRPC answers UNIMPLEMENTED
                return None
            wrapped = self._handlers[method] = self.wrap(method, handler)
        return wrapped

    @abc.abstractmethod
    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """The handler that serves `method` (its full name) from now on."""


def wrap_behavior(handler: grpc.RpcMethodHandler, wrapper: Callable[[Behavior], Behavior],
                  **changes: Any) -> grpc.RpcMethodHandler:
    """`handler` with its behaviour, of whichever kind, replaced by `wrapper(behaviour)`; `changes`
    replace other fields of the handler (e.g. request_deserializer)."""
    kind = next(kind for kind in _KINDS if getattr(handler, kind) is not None)
    behavior = getattr(handler, kind)
    wrapped = wrapper(behavior)
    if hasattr(behavior, THREAD_POOL):  # the pool the method runs on stays with it
        setattr(wrapped, THREAD_POOL, getattr(behavior, THREAD_POOL))
    return handler._replace(**{kind: wrapped}, **changes)
