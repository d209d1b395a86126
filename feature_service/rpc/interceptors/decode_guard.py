"""Undecodable request bytes -> INVALID_ARGUMENT, for every method of the server.

gRPC's own answer would be INTERNAL ("Exception deserializing request!"); a caller's garbage is the
caller's error, so a tolerant deserializer hands a marker on and the behaviour refuses it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import grpc

from feature_service.rpc import status_mapping
from feature_service.rpc.interceptors.method_wrapping import (
    MethodWrappingInterceptor,
    wrap_behavior,
)


class _Undecodable:
    __slots__ = ("type_name",)

    def __init__(self, type_name: str):
        self.type_name = type_name


def _tolerant(deserializer: Callable[[bytes], object] | None) -> Callable[[bytes], object] | None:
    if deserializer is None:
        return None
    type_name = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)
    type_name = type_name.full_name if type_name is not None else "request"

    def deserialize(data: bytes):
        try:
            return deserializer(data)
        except Exception:  # noqa: BLE001 - any decode failure
            return _Undecodable(type_name)

    return deserialize


def _checked(requests: Iterable[object]) -> Iterator[object]:
    for request in requests:
        if isinstance(request, _Undecodable):
            raise status_mapping.UndecodableRequest(request.type_name)
        yield request


class DecodeGuardInterceptor(MethodWrappingInterceptor):
    """Undecodable request bytes -> INVALID_ARGUMENT, for every method of the server."""

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        guarded = self._stream if handler.request_streaming else self._unary
        return wrap_behavior(handler, guarded, request_deserializer=_tolerant(handler.request_deserializer))

    @staticmethod
    def _unary(behavior):
        def guarded(request, context):
            if isinstance(request, _Undecodable):
                status_mapping.abort(context, status_mapping.to_status(status_mapping.UndecodableRequest(request.type_name), "", status_mapping.single_record_field))
            return behavior(request, context)

        return guarded

    @staticmethod
    def _stream(behavior):
        def guarded(request_iterator, context):
            return behavior(_checked(request_iterator), context)

        return guarded
