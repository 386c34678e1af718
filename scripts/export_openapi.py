#!/usr/bin/env python3
"""`make docs`: export the ingress OpenAPI document to docs/openapi.json.

The document comes from `ingress.create_app` itself (nothing connects: the app is built, not
started), so it is exactly what `/openapi.json` serves. tests/deploy/test_supply_chain.py
fails when the committed file differs from it; run this and commit the result.

    python scripts/export_openapi.py [--output docs/openapi.json] [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "docs" / "openapi.json"


def render() -> str:
    """The OpenAPI document as committed: 2-space JSON, keys in the app's order, a final newline."""
    sys.path.insert(0, str(ROOT))
    from ingress import create_app
    from paystream.core.settings import Settings

    # The settings only have to be valid; the document does not depend on them.
    app = create_app(Settings(kafka_bootstrap="kafka:9092"))
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs, write nothing")
    args = parser.parse_args(argv)
    text = render()
    current = args.output.read_text("utf-8") if args.output.exists() else None
    if args.check:
        if current != text:
            sys.stderr.write(f"{args.output} is out of date: run `make docs`\n")
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, "utf-8")
    sys.stdout.write(f"{args.output}: {'unchanged' if current == text else 'written'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
