"""`python -m dashboards [--check]`: write dashboards/json/<name>.json from every dashboards/<name>.dashboard.py
(or check the committed JSON is current)."""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "json"
SUFFIX = ".dashboard.py"


def sources() -> list[Path]:
    return sorted(HERE.glob(f"*{SUFFIX}"))


def build(path: Path) -> dict[str, Any]:
    """Run one dashboard file; it defines `dashboard`, the JSON as a dict."""
    board = runpy.run_path(str(path))["dashboard"]
    if not isinstance(board, dict):
        raise TypeError(f"{path.name}: `dashboard` must be the dict style.board() returns")
    return board


def render(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, sort_keys=True) + "\n"


def outputs() -> dict[Path, str]:
    return {OUT / (path.name.removesuffix(SUFFIX) + ".json"): render(build(path)) for path in sources()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed JSON file differs")
    args = parser.parse_args(argv)
    wanted = outputs()
    stale = sorted(set(OUT.glob("*.json")) - set(wanted))
    if args.check:
        bad = [p for p, text in wanted.items() if not p.is_file() or p.read_text() != text] + stale
        for path in bad:
            print(f"{path} is out of date: run `python -m dashboards`", file=sys.stderr)
        return 1 if bad else 0
    OUT.mkdir(exist_ok=True)
    for path in stale:
        path.unlink()
    for path, text in wanted.items():
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
