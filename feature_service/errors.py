"""The one boundary where exceptions become gRPC status codes.

| what                                   | status              | details                              |
|----------------------------------------|---------------------|--------------------------------------|
| InvalidRecords                  | INVALID_ARGUMENT    | google.rpc.BadRequest, one field      |
|                                        |                     | violation per (record, field)         |
| request bytes that do not decode       | INVALID_ARGUMENT    | message names the expected type       |
| BatchTooLarge (over --max-batch)       | RESOURCE_EXHAUSTED  | message names the cap                 |
| message over --max-message-bytes       | RESOURCE_EXHAUSTED  | (refused by gRPC itself)              |
| deadline passed before the work        | DEADLINE_EXCEEDED   |                                       |
| FailedPrecondition (e.g. no drift      | FAILED_PRECONDITION | message says why and what to do       |
| monitoring for this config)            |                     |                                       |
| anything else                          | INTERNAL            | "internal error"; trace in server log |

Servicer methods raise; they never call context.abort themselves.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from absenteeism import raw_schema
from absenteeism.online.predictor import InvalidRecords
from absenteeism.v1 import prediction_service_pb2

log = logging.getLogger(__name__)

INTERNAL_MESSAGE = "internal error (details are in the server log)"


class BatchTooLarge(Exception):
    def __init__(self, size: int, cap: int):
        super().__init__(f"batch of {size} records exceeds the server's cap of {cap} (--max-batch): split it")


class DeadlineExceeded(Exception):
    pass


class FailedPrecondition(Exception):
    """The server cannot answer this call in its present state; the message says why."""


class UndecodableRequest(Exception):
    def __init__(self, type_name: str):
        super().__init__(f"request is not a valid {type_name} message")


FieldPath = Callable[[raw_schema.Violation], str]


def single_record_field(violation: raw_schema.Violation) -> str:
    return f"record.{violation.column}"


def batch_record_field(violation: raw_schema.Violation) -> str:
    return f"records[{violation.row}].{violation.column}"


def _grpc_status(code: int, message: str, details: Sequence[any_pb2.Any] = ()) -> grpc.Status:
    return rpc_status.to_status(status_pb2.Status(code=code, message=message, details=list(details)))


def bad_request_status(violations: Sequence[raw_schema.Violation], field_path: FieldPath) -> grpc.Status:
    bad_request = error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field=field_path(v), description=v.describe())
        for v in violations])
    detail = any_pb2.Any()
    detail.Pack(bad_request)
    records = sorted({v.row for v in violations}, key=str)
    message = (f"{len(violations)} invalid field(s) in {len(records)} record(s): "
               + "; ".join(f"{field_path(v)}: {v.describe()}" for v in violations[:5])
               + ("; ..." if len(violations) > 5 else ""))
    return _grpc_status(code_pb2.INVALID_ARGUMENT, message, [detail])


def record_error(violations: Sequence[raw_schema.Violation]) -> prediction_service_pb2.RecordError:
    """A stream's per-record error: fields as RawRecord field names, as the contract says."""
    return prediction_service_pb2.RecordError(
        message="; ".join(v.describe() for v in violations),
        field_violations=[prediction_service_pb2.FieldViolation(field=v.column, rule=v.rule, description=v.describe())
                          for v in violations])


def to_status(error: BaseException, method: str, field_path: FieldPath) -> grpc.Status:
    """The status for an exception raised while serving `method`; logs what the caller will not see."""
    if isinstance(error, InvalidRecords):
        return bad_request_status(error.violations, field_path)
    if isinstance(error, UndecodableRequest):
        return _grpc_status(code_pb2.INVALID_ARGUMENT, str(error))
    if isinstance(error, BatchTooLarge):
        return _grpc_status(code_pb2.RESOURCE_EXHAUSTED, str(error))
    if isinstance(error, DeadlineExceeded):
        return _grpc_status(code_pb2.DEADLINE_EXCEEDED, "deadline exceeded before the prediction was made")
    if isinstance(error, FailedPrecondition):
        return _grpc_status(code_pb2.FAILED_PRECONDITION, str(error))
    log.error("unexpected error", extra={"event": "internal_error", "method": method},
              exc_info=(type(error), error, error.__traceback__))
    return _grpc_status(code_pb2.INTERNAL, INTERNAL_MESSAGE)


def abort(context: grpc.ServicerContext, status: grpc.Status) -> None:
    """context.abort_with_status, spelled so that grpcio-testing's context supports it too."""
    context.set_trailing_metadata(status.trailing_metadata)
    context.abort(status.code, status.details)


def unary_boundary(field_path: FieldPath):
    """Decorates a unary servicer method: any exception becomes one status (see the table above).

    The servicer's `on_violations(violations)` is told about invalid records (metrics)."""

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, request, context: grpc.ServicerContext):
            try:
                return method(self, request, context)
            except Exception as error:  # noqa: BLE001 - this is the boundary
                if isinstance(error, InvalidRecords):
                    self.on_violations(error.violations)
                status = to_status(error, method.__name__, field_path)
            abort(context, status)

        return wrapper

    return decorate


def stream_boundary(method):
    """Decorates a streaming servicer method: an exception ends the stream with one status."""

    @functools.wraps(method)
    def wrapper(self, request_iterator, context: grpc.ServicerContext):
        try:
            yield from method(self, request_iterator, context)
            return
        except Exception as error:  # noqa: BLE001 - this is the boundary
            status = to_status(error, method.__name__, single_record_field)
        abort(context, status)

    return wrapper


# --- requests whose bytes do not decode -------------------------------------------------------
# gRPC's own answer would be INTERNAL ("Exception deserializing request!"); a caller's garbage is
# the caller's error, so a tolerant deserializer hands a marker on and the behaviour refuses it.


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
            raise UndecodableRequest(request.type_name)
        yield request


class DecodeGuardInterceptor(grpc.ServerInterceptor):
    """Undecodable request bytes -> INVALID_ARGUMENT, for every method of the server."""

    def __init__(self):
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
        changes = {"request_deserializer": _tolerant(handler.request_deserializer)}
        if handler.unary_unary is not None:
            changes["unary_unary"] = self._unary(handler.unary_unary)
        elif handler.unary_stream is not None:
            changes["unary_stream"] = self._unary(handler.unary_stream)
        elif handler.stream_unary is not None:
            changes["stream_unary"] = self._stream(handler.stream_unary)
        elif handler.stream_stream is not None:
            changes["stream_stream"] = self._stream(handler.stream_stream)
        return handler._replace(**changes)

    @staticmethod
    def _unary(behavior):
        def guarded(request, context):
            if isinstance(request, _Undecodable):
                abort(context, to_status(UndecodableRequest(request.type_name), "", single_record_field))
            return behavior(request, context)

        return guarded

    @staticmethod
    def _stream(behavior):
        def guarded(request_iterator, context):
            return behavior(_checked(request_iterator), context)

        return guarded
