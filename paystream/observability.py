"""Logging setup shared by every process: JSON lines (or readable console lines).

Components log with `logging.getLogger("paystream.<part>")` and pass context as
`extra={...}`; this formatter turns those extras into JSON fields. As a last line
of defence it masks any field whose name looks like a secret, signature, token
or card/customer data, so a careless `extra` can never leak one.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Literal

import orjson

__all__ = ["REDACTED", "ConsoleFormatter", "JsonFormatter", "configure_logging", "redact"]

REDACTED = "[redacted]"
_SENSITIVE_PARTS = ("secret", "signature", "password", "token", "authorization", "card", "cvc", "email",
                    "transmission-sig", "transmission_sig", "api_key", "apikey")
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName", "color_message"}


def _is_sensitive(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in _SENSITIVE_PARTS)


def redact(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: (REDACTED if _is_sensitive(k) else v) for k, v in fields.items()}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the record's extras."""

    def __init__(self, process: str = "") -> None:
        super().__init__()
        self._process = process

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self._process:
            payload["process"] = self._process
        payload.update(redact(_extras(record)))
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(payload, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    """`HH:MM:SS level logger: msg key=value …` for humans."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in redact(_extras(record)).items())
        line = f"{time.strftime('%H:%M:%S', time.localtime(record.created))} {record.levelname.lower():<7} " \
               f"{record.name}: {record.getMessage()}"
        if extras:
            line = f"{line}  {extras}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def configure_logging(fmt: Literal["json", "console"] = "json", level: str = "INFO", *, process: str = "") -> None:
    """Route all logging (ours, uvicorn's, Faust's, aiokafka's) through one handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(process) if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "faust", "mode", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uv = logging.getLogger(name)
        uv.handlers[:] = []
        uv.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
