"""The README documents every setting and keeps the two quick-start commands."""

from __future__ import annotations

from pathlib import Path

from paystream.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")


def test_every_setting_is_documented() -> None:
    missing = [f"PAYSTREAM_{name.upper()}" for name in Settings.model_fields
               if f"PAYSTREAM_{name.upper()}" not in README]
    assert missing == []


def test_quick_start_is_two_commands() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("##", 1)[0]
    block = quick_start.split("```console", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in block.strip().splitlines()] == ["make run", "make test"]
