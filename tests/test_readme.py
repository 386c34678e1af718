"""The README documents every setting, keeps the two quick-start commands, and its links lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

from paystream.core.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")


def test_every_setting_is_documented() -> None:
    missing = [f"PAYSTREAM_{name.upper()}" for name in Settings.model_fields
               if f"PAYSTREAM_{name.upper()}" not in README]
    assert missing == []


def test_quick_start_is_two_commands() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("##", 1)[0]
    block = quick_start.split("```console", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in block.strip().splitlines()] == ["make run", "make test"]


def test_relative_links_lead_somewhere() -> None:
    """The headline figures link their reports; a renamed report must not leave a dead link."""
    root = Path(__file__).resolve().parents[1]
    documents = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    dead = []
    for document in documents:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", document.read_text("utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (document.parent / target).exists():
                dead.append(f"{document.relative_to(root)} -> {target}")
    assert dead == []


def test_measured_figures_are_read_from_their_reports() -> None:
    """The ingress and sink rows of the Measured table copy their reports: every figure shown is in the
    report, and the verdict says "not met" exactly when the report's worst run misses a target."""
    root = Path(__file__).resolve().parents[1]
    table = README.split("## Measured", 1)[1].split("\n\n", 2)[2]
    checked = 0
    for row in table.splitlines():
        link = re.search(r"\]\((bench/reports/(ingress|sink)\.md)\)", row)
        if not row.startswith("|") or link is None:
            continue
        cells = [c.strip() for c in row.strip("|").split("|")]
        shown, verdict = cells[1], cells[3]
        report = (root / link.group(1)).read_text("utf-8").replace(",", "")
        figures = [f.replace(",", "") for f in re.findall(r"\d[\d,]*\.\d+|\d{1,3}(?:,\d{3})+|\d{3,}", shown)]
        assert figures, row
        assert [f for f in figures if f not in report] == [], f"{link.group(2)}: figures not in its report"
        assert ("not met" in verdict) == ("not met" in report), f"{link.group(2)}: verdict differs from the report"
        checked += 1
    assert checked == 2
