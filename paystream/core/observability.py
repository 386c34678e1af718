"""Logging setup shared by every process: JSON lines (or readable console lines).

Components log with `logging.getLogger("paystream.<part>")` and pass context as
`extra={...}`; this formatter turns those extras into JSON fields. As a last line
of defence it masks any field whose name looks like a secret, signature, token,
body or card/customer data — at any depth of nested dicts, lists and dataclasses —
and never prints raw bytes, so a careless `extra` can never leak one. Warnings,
errors and exception texts (where foreign text such as a library's error message
ends up) are also scrubbed of anything shaped like a webhook secret, a signature,
a card number or an email address; the per-request INFO lines are not, because
they carry only our own ids and they are the hot path.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
import time
from typing import Any, Literal

import orjson

__all__ = ["REDACTED", "ConsoleFormatter", "JsonFormatter", "configure_logging", "redact", "scrub"]

REDACTED = "[redacted]"
_SENSITIVE_PARTS = ("secret", "signature", "password", "token", "authorization", "card", "cvc", "email",
                    "transmission-sig", "transmission_sig", "api_key", "apikey", "cookie", "body", "payload",
                    "phone", "iban", "account_number", "private_key")
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName", "color_message"}
_MAX_DEPTH = 6

# Shapes of what must never be printed, for free text (messages, exception texts, error strings).
_SIGNATURE_SHAPES = re.compile(
    r"whsec_[A-Za-z0-9+/=_\-]{6,}"            # Stripe / Standard Webhooks endpoint secrets
    r"|v[01]=[0-9a-fA-F]{32,}"                 # Stripe-Signature entries
    r"|v1a?,[A-Za-z0-9+/]{20,}={0,2}"          # webhook-signature entries
)
_BASE64_BLOB = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{100,}={0,2}")  # PayPal signatures, keys, bodies
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_CARD = re.compile(r"(?<![0-9])[2-6](?:[ -]?[0-9]){12,18}(?![0-9])")


def _is_sensitive(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in _SENSITIVE_PARTS)


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = "".join(c for c in match.group() if c.isdigit())
    return REDACTED if 13 <= len(digits) <= 19 and _luhn(digits) else match.group()


def scrub(text: str) -> str:
    """`text` with secrets, signatures, card numbers and email addresses masked."""
    if "whsec_" in text or "v1" in text or "v0=" in text:
        text = _SIGNATURE_SHAPES.sub(REDACTED, text)
    if "@" in text:
        text = _EMAIL.sub(REDACTED, text)
    if len(text) >= 13:
        text = _CARD.sub(_card, text)
    if len(text) >= 100:
        text = _BASE64_BLOB.sub(REDACTED, text)
    return text


_PLAIN = (str, int, float, bool, type(None))
_BYTES = (bytes, bytearray, memoryview)
_SEQUENCES = (list, tuple, set, frozenset)


def _mask(value: Any, depth: int = 0) -> Any:
    """Key-based masking inside containers and dataclasses; bytes never printed."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, _BYTES):
        return f"[{len(value)} bytes]"
    if depth >= _MAX_DEPTH:
        return REDACTED
    if isinstance(value, dict):
        return {k: (REDACTED if isinstance(k, str) and _is_sensitive(k) else _mask(v, depth + 1))
                for k, v in value.items()}
    if isinstance(value, _SEQUENCES):
        return [_mask(v, depth + 1) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _mask({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, depth + 1)
    return value


def redact(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: (REDACTED if _is_sensitive(k) else _mask(v)) for k, v in fields.items()}


def _scrub_all(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_all(v) for v in value]
    if isinstance(value, _PLAIN):
        return value
    return scrub(str(value))


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's extras, masked; at WARNING and above their free text is scrubbed too."""
    fields = redact(_extras(record))
    return _scrub_all(fields) if record.levelno >= logging.WARNING else fields


def _message(record: logging.LogRecord) -> str:
    message = record.getMessage()
    return scrub(message) if record.levelno >= logging.WARNING or record.args else message


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


def _default(value: Any) -> str:
    """How orjson prints what it cannot: as text, scrubbed (an object's repr may carry anything)."""
    return scrub(str(value))


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
            "msg": _message(record),
        }
        if self._process:
            payload["process"] = self._process
        payload.update(_fields(record))
        if record.exc_info:
            payload["exc"] = scrub(self.formatException(record.exc_info))
        return orjson.dumps(payload, default=_default).decode()


class ConsoleFormatter(logging.Formatter):
    """`HH:MM:SS level logger: msg key=value …` for humans."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{time.strftime('%H:%M:%S', time.localtime(record.created))} {record.levelname.lower():<7} " \
               f"{record.name}: {_message(record)}"
        if extras:
            line = f"{line}  {extras}"
        if record.exc_info:
            line = f"{line}\n{scrub(self.formatException(record.exc_info))}"
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
