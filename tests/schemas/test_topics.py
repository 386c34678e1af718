"""`partition_for` places keys exactly where Kafka's Java client and aiokafka do."""

from __future__ import annotations

import random

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from schemas.topics import murmur2, partition_for

# Kafka's own expectations (org.apache.kafka.common.utils.UtilsTest#testMurmur2), as signed Java ints
JAVA = {"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536,
        "a-little-bit-longer-string": -1486304829, "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        "abc": 479470107}


@pytest.mark.parametrize(("text", "expected"), JAVA.items())
def test_murmur2_is_javas(text: str, expected: int) -> None:
    assert murmur2(text.encode()) == expected & 0xFFFFFFFF


def test_murmur2_matches_aiokafka_for_every_tail_length() -> None:
    rng = random.Random(16)
    for length in range(70):
        for _ in range(20):
            key = rng.randbytes(length)
            assert murmur2(key) == aiokafka_murmur2(key), key


def test_payment_keys_land_where_aiokafka_puts_them() -> None:
    for n in range(2000):
        key = f"stripe:pi_{n:024x}".encode()
        assert partition_for(key, 8) == (aiokafka_murmur2(key) & 0x7FFFFFFF) % 8
