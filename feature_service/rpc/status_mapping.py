"""The one boundary where exceptions become gRPC status codes.

| what                                   | status              | details                              |
|----------------------------------------|---------------------|--------------------------------------|
| InvalidRecords                         | INVALID_ARGUMENT    | google.rpc.BadRequest, one field      |
|                                        |                     | violation per (record, field); capped |
|                                        |                     | (see bad_request_status)              |
| request bytes that do not decode       | INVALID_ARGUMENT    | message names the expected type       |
| converters.ColumnsError (a column of   | INVALID_ARGUMENT    | BadRequest names the column           |
| PredictColumns that cannot be read)    |                     | (records.columns[j]) and the fault    |
| request_ids.BadRequestId (metadata     | INVALID_ARGUMENT    | message and BadRequest name the key   |
| x-request-id too long, empty, ...)     |                     |                                       |
| BatchTooLarge (over --max-batch)       | RESOURCE_EXHAUSTED  | message names the cap                 |
| message over --max-message-bytes       | RESOURCE_EXHAUSTED  | (refused by gRPC itself)              |
| a stream over --max-streams            | RESOURCE_EXHAUSTED  | message names the limit               |
| deadline passed before the work        | DEADLINE_EXCEEDED   |                                       |
| streaming.StreamIdle                   | DEADLINE_EXCEEDED   | message names --stream-idle-timeout   |
| FailedPrecondition (e.g. no drift      | FAILED_PRECONDITION | message says why and what to do       |
| monitoring for this config)            |                     |                                       |
| anything else                          | INTERNAL            | "internal error"; trace in server log |

Servicer methods raise; they never call context.abort themselves.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from absenteeism import raw_schema
from absenteeism.online.converters import ColumnsError
from absenteeism.online.predictor import InvalidRecords
from absenteeism.v1 import prediction_service_pb2
from absenteeism.violation_table import ViolationTable
from feature_service.monitoring.request_ids import KEY as REQUEST_ID_KEY
from feature_service.monitoring.request_ids import BadRequestId
from feature_service.rpc import streaming

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


@dataclass(frozen=True)
class FieldPath:
    """Where a violation is in the request: "record.age" (Predict) or "records[3].age" (PredictBatch)."""

    request_field: str  # the request's field that holds the records
    indexed: bool

    def __call__(self, violation: raw_schema.Violation) -> str:
        index = f"[{violation.row}]" if self.indexed else ""
        return f"{self.request_field}{index}.{violation.column}"


single_record_field = FieldPath("record", indexed=False)
batch_record_field = FieldPath("records", indexed=True)

# The BadRequest detail travels in a trailer, and gRPC clients refuse trailers over 8 KiB of
# decoded bytes (some at random between 8 and 16 KiB): the detail lists the first violations, within
# both caps, and one more entry saying how many it leaves out. With the message, the trailers stay
# under 6 KiB. A single record (20 fields) always fits whole.
MAX_LISTED_VIOLATIONS = 100
MAX_LISTED_BYTES = 4096  # the encoded field violations listed
MESSAGE_VIOLATIONS = 5  # violations quoted in the status message


def _grpc_status(code: int, message: str, details: Sequence[any_pb2.Any] = ()) -> grpc.Status:
    return rpc_status.to_status(status_pb2.Status(code=code, message=message, details=list(details)))


def bad_request_status(table: ViolationTable, field_path: FieldPath) -> grpc.Status:
    """INVALID_ARGUMENT with a BadRequest of at most MAX_LISTED_VIOLATIONS entries and
    MAX_LISTED_BYTES bytes (plus the line that counts the rest), whatever the number of violations."""
    bad_request, size = error_details_pb2.BadRequest(), 0
    for violation in table.first(MAX_LISTED_VIOLATIONS):
        entry = error_details_pb2.BadRequest.FieldViolation(field=field_path(violation),
                                                            description=violation.describe())
        size += entry.ByteSize() + 3  # + its tag and length
        if size > MAX_LISTED_BYTES:
            break
        bad_request.field_violations.append(entry)
    listed, total = len(bad_request.field_violations), len(table)
    summary = f"{total} invalid field(s) in {table.record_count()} record(s)"
    if listed < total:
        summary += f"; the details list the first {listed}, {total - listed} left out"
        bad_request.field_violations.add(field=field_path.request_field,
                                         description=f"{total - listed} more invalid field(s) not listed ({summary})")
    detail = any_pb2.Any()
    detail.Pack(bad_request)
    quoted = table.first(MESSAGE_VIOLATIONS)
    message = (f"{summary}: " + "; ".join(f"{field_path(v)}: {v.describe()}" for v in quoted)
               + ("; ..." if total > len(quoted) else ""))
    return _grpc_status(code_pb2.INVALID_ARGUMENT, message, [detail])


def _bad_request_of(field: str, description: str, message: str) -> grpc.Status:
    """INVALID_ARGUMENT with a BadRequest naming one field of the request."""
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field=field, description=description)]))
    return _grpc_status(code_pb2.INVALID_ARGUMENT, message, [detail])


def too_many_streams_status(limit: int) -> grpc.Status:
    return _grpc_status(code_pb2.RESOURCE_EXHAUSTED,
                        f"the server allows {limit} open streams at once (--max-streams) and all are in use: "
                        "retry later, or use Predict/PredictBatch")


def record_error(violations: Sequence[raw_schema.Violation]) -> prediction_service_pb2.RecordError:
    """A stream's per-record error: fields as RawRecord field names, as the contract says."""
    return prediction_service_pb2.RecordError(
        message="; ".join(v.describe() for v in violations),
        field_violations=[prediction_service_pb2.FieldViolation(field=v.column, rule=v.rule, description=v.describe())
                          for v in violations])


def to_status(error: BaseException, method: str, field_path: FieldPath | None) -> grpc.Status:
    """The status for an exception raised while serving `method`; logs what the caller will not see."""
    if isinstance(error, InvalidRecords) and field_path is not None:
        return bad_request_status(error.table, field_path)
    if isinstance(error, UndecodableRequest):
        return _grpc_status(code_pb2.INVALID_ARGUMENT, str(error))
    if isinstance(error, ColumnsError):
        return _bad_request_of(error.field, error.description, str(error))
    if isinstance(error, BadRequestId):
        return _bad_request_of(REQUEST_ID_KEY, str(error), str(error))
    if isinstance(error, BatchTooLarge):
        return _grpc_status(code_pb2.RESOURCE_EXHAUSTED, str(error))
    if isinstance(error, DeadlineExceeded):
        return _grpc_status(code_pb2.DEADLINE_EXCEEDED, "deadline exceeded before the prediction was made")
    if isinstance(error, streaming.StreamIdle):
        return _grpc_status(code_pb2.DEADLINE_EXCEEDED, str(error))
    if isinstance(error, FailedPrecondition):
        return _grpc_status(code_pb2.FAILED_PRECONDITION, str(error))
    log.error("unexpected error", extra={"event": "internal_error", "method": method},
              exc_info=(type(error), error, error.__traceback__))
    return _grpc_status(code_pb2.INTERNAL, INTERNAL_MESSAGE)


def abort(context: grpc.ServicerContext, status: grpc.Status) -> None:
    """context.abort_with_status, spelled so that grpcio-testing's context supports it too."""
    context.set_trailing_metadata(status.trailing_metadata)
    context.abort(status.code, status.details)


def unary_boundary(field_path: FieldPath | None = None):
    """Decorates a unary servicer method: any exception becomes one status (see the table above).
    `field_path` names a record's fields in BadRequest details; None for a method that takes none."""

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, request, context: grpc.ServicerContext):
            try:
                return method(self, request, context)
            except Exception as error:  # noqa: BLE001 - this is the boundary
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
