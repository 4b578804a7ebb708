"""Structured logs: one JSON object per line on stdout, formatted by python-json-logger."""

from __future__ import annotations

import logging
import sys
import time

from pythonjsonlogger.json import JsonFormatter


class _UtcJsonFormatter(JsonFormatter):
    """`{"ts", "level", "logger", "message", ...}` with the `extra=` keys of the call; ts in UTC with ms."""

    def converter(self, timestamp: float | None) -> time.struct_time:  # UTC, where logging's default is local
        return time.gmtime(timestamp)

    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"


def formatter() -> logging.Formatter:
    """The formatter of every log line."""
    return _UtcJsonFormatter(
        "{asctime}{levelname}{name}{message}",
        style="{",
        rename_fields={"asctime": "ts", "levelname": "level", "name": "logger", "exc_info": "exception"},
        reserved_attrs=[
            *logging.LogRecord("", 0, "", 0, "", (), None).__dict__,
            "message",
            "color_message",
            "taskName",
        ],
        json_default=str,
    )


def configure(level: str) -> None:
    """Send every logger (ours and uvicorn's) to stdout as JSON at `level`."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)  # the audit log keeps every request
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
