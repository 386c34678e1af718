"""The log formatters' last line of defence (paystream/core/observability.py).

Before this suite, masking looked only at the top-level names of `extra`: a nested dict such
as `extra={"headers": {"stripe-signature": …}}`, a dataclass (an envelope, with its body),
raw bytes, or an exception text carrying a database row were printed as they were.
"""

from __future__ import annotations

import dataclasses
import logging
import sys

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from paystream.core.observability import REDACTED, ConsoleFormatter, JsonFormatter, scrub

SECRET = "whsec_c2VjdXJpdHktdGVzdC1zZWNyZXQ="
SIGNATURE = "t=1790000000,v1=" + "ab" * 32
STANDARD_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
PAYPAL_SIGNATURE = "KY8qkrrIcGAyKS4VNgYlgP0iWIgeFEa3Y4q14d7mStEdJQbiEMhyB9/2cR85tjTlAmJ4NFxBW3BFdrFn7Eukmd" \
                   "Sw2RFkaCfSmzZoq8Uzjp1y6h9Uo307qte0h=="
CARD = "4242424242424242"
EMAIL = "jenny.rosen@example.com"
MARKER = "s3cr3t-value-0451"  # stands for any value under a sensitive name

SENSITIVE_NAMES = ["stripe-signature", "webhook-signature", "paypal-transmission-sig", "Authorization", "ops_token",
                   "client_secret", "password", "card", "customer_email", "body", "raw_payload", "cookie", "phone"]
PLAIN_NAMES = ["provider", "status", "reason", "event_type", "partition", "headers", "data", "items", "context"]


def record(level: int = logging.INFO, msg: str = "event", args: tuple[object, ...] = (), exc: bool = False,
           **extra: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError(f"duplicate key (email)=({EMAIL}) card {CARD} secret {SECRET}")
        except ValueError:
            exc_info = sys.exc_info()
    rec = logging.LogRecord("paystream.test", level, __file__, 1, msg, args, exc_info)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def both(rec: logging.LogRecord) -> str:
    return JsonFormatter("test").format(rec) + "\n" + ConsoleFormatter().format(rec)


# Leaves are {sensitive name: MARKER}; above them any mix of plain dicts, lists and sensitive dicts.
nested = st.recursive(
    st.dictionaries(st.sampled_from(SENSITIVE_NAMES), st.just(MARKER), min_size=1, max_size=2),
    lambda inner: st.dictionaries(st.sampled_from(SENSITIVE_NAMES + PLAIN_NAMES), inner, min_size=1, max_size=3)
    | st.lists(inner, min_size=1, max_size=3) | st.tuples(st.just("plain"), inner),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(PLAIN_NAMES), value=nested)
def test_sensitive_names_are_masked_at_any_depth(name: str, value: object) -> None:
    """Every MARKER sits under a sensitive name somewhere on its path, so none may be printed."""
    text = both(record(**{name: value}))
    assert MARKER not in text, text
    assert REDACTED in text


def test_dataclasses_bytes_and_containers() -> None:
    @dataclasses.dataclass
    class Envelope:
        envelope_id: str
        body: bytes
        headers: dict[str, str]

    envelope = Envelope("e-1", f'{{"card":"{CARD}"}}'.encode(), {"stripe-signature": SIGNATURE, "x-id": "ok"})
    text = both(record(envelope=envelope, raw=b"\x00" + CARD.encode(), pair=("a", {"token": MARKER})))
    for leaked in (CARD, SIGNATURE, MARKER):
        assert leaked not in text
    assert "e-1" in text and "ok" in text and "[17 bytes]" in text


def test_warning_free_text_and_exceptions_are_scrubbed() -> None:
    error = f"(psycopg.errors.UniqueViolation) [parameters: ('{EMAIL}', '{CARD}', '{SIGNATURE}', '{SECRET}')]"
    rec = record(logging.WARNING, "database refused %s", (f"{STANDARD_SIGNATURE} {PAYPAL_SIGNATURE}",),
                 exc=True, error=error)
    text = both(rec)
    for leaked in (EMAIL, CARD, SIGNATURE.split(",")[1], SECRET, STANDARD_SIGNATURE, PAYPAL_SIGNATURE):
        assert leaked not in text, leaked
    assert "UniqueViolation" in text and "ValueError" in text
    orjson.loads(text.split("\n", 1)[0])  # still one valid JSON line


def test_info_lines_keep_ids_and_numbers() -> None:
    rec = record(request_id="3b6b447c589ff191", envelope_id="71207202-1f6b-4fa0-98e6-56744b123456",
                 provider_event_id="evt_1NG8Du2eZvKYlo2CUIXmC1AX", offset=1764250000000, duration_ms=1.25)
    line = orjson.loads(JsonFormatter().format(rec))
    assert line["provider_event_id"] == "evt_1NG8Du2eZvKYlo2CUIXmC1AX" and line["offset"] == 1764250000000


def test_scrub_shapes() -> None:
    assert scrub(f"sig {SIGNATURE} end") == f"sig t=1790000000,{REDACTED} end"
    assert scrub("card 4242 4242 4242 4242 / 4242-4242-4242-4242.") == f"card {REDACTED} / {REDACTED}."
    assert scrub("order 4242424242424241 at 1764250000000") == "order 4242424242424241 at 1764250000000"  # no Luhn
    assert scrub(f"mail {EMAIL}, done") == f"mail {REDACTED}, done"
    assert scrub(f"key {SECRET}") == f"key {REDACTED}"
    assert scrub(PAYPAL_SIGNATURE) == REDACTED
    assert scrub("plain text with v1 and 12 digits 123456789012") == "plain text with v1 and 12 digits 123456789012"
