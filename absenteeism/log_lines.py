"""Log lines of every command (the job, the server), on stderr, one record a line, as text or as
one JSON object: the same fields either way (time, level, logger, message, and what a call puts in
`extra={...}`, such as the server's `event`)."""

from __future__ import annotations

import json
import logging
import sys
import time

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}
FORMATS = ("text", "json")


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _extra(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {"ts": _timestamp(record), "level": record.levelname.lower(), "logger": record.name,
                 "message": record.getMessage()}
        entry.update(_extra(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """`<ts> <LEVEL> <logger>: <message> key=value ...`: what a person reads in a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        fields = "".join(f" {k}={json.dumps(v, default=str)}" for k, v in _extra(record).items())
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}{fields}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(level: str = "INFO", log_format: str = "json") -> None:
    """Every log line of this process goes to stderr in `log_format` ("text" or "json")."""
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r}: choose one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class _Fields(logging.Filter):
    def __init__(self, fields: dict[str, object]):
        super().__init__()
        self._fields = fields

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in self._fields.items():
            setattr(record, name, value)
        return True


def add_fields(**fields: object) -> None:
    """Every line from now on carries `fields` (a supervisor's child: its worker slot and pid)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(_Fields(fields))
