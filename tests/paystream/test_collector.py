"""The garbage collector of a pipeline process (`paystream/core/collector.py`), in a fresh interpreter each time:
start-up objects frozen, young collections every `young_threshold` net allocations, and cycles still collected."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import gc, json, sys
from paystream.core.collector import tune_collector

tune_collector(int(sys.argv[1]))
frozen, thresholds = gc.get_freeze_count(), gc.get_threshold()
young = {"runs": 0, "collected": 0}

def count(phase, info):
    if phase == "stop" and info["generation"] == 0:
        young["runs"] += 1
        young["collected"] += info["collected"]

gc.callbacks.append(count)
for _ in range(300_000):  # cyclic garbage only the collector can free
    node = {}
    node["self"] = node
print(json.dumps({"frozen": frozen, "thresholds": thresholds, "young": young}))
"""


def probe(young_threshold: int) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, str(young_threshold)], capture_output=True, text=True,
                         check=True, timeout=60)
    return json.loads(out.stdout)


def test_start_up_objects_are_frozen_and_young_collections_are_rarer_but_still_free_cycles() -> None:
    default, tuned = probe(0), probe(100_000)
    assert default["frozen"] == 0 and default["thresholds"][0] == 700  # 0 keeps CPython's behaviour
    assert tuned["frozen"] > 5_000  # modules, classes, functions: what the process keeps for its lifetime
    assert tuned["thresholds"] == [100_000, *default["thresholds"][1:]]
    assert default["young"]["runs"] >= 300 and 0 < tuned["young"]["runs"] <= 3  # 300,000 cycles
    assert tuned["young"]["collected"] >= 150_000  # still found, every 100,000
