from __future__ import annotations

import pytest

from schemas.dlq import dlq_headers, parse_dlq_headers


def test_round_trip_and_truncation() -> None:
    headers = dlq_headers(original_topic="payments.events.v1", original_partition=3, original_offset=42,
                          stage="normalize", error=ValueError("x" * 5000), reason="bad_amount")
    info = parse_dlq_headers(headers)
    assert (info.original_topic, info.original_partition, info.original_offset) == ("payments.events.v1", 3, 42)
    assert (info.stage, info.exception_class, info.reason, info.attempts) == ("normalize", "ValueError",
                                                                              "bad_amount", 1)
    assert len(info.exception_message) == 2000


def test_unknown_stage_is_refused() -> None:
    with pytest.raises(ValueError, match="stage"):
        dlq_headers(original_topic="t", original_partition=0, original_offset=0, stage="nowhere")
