"""Command line: `python -m reports build RUN_DIR | compare BASE CANDIDATE | trend RUNS_DIR`.

Exit codes: build 0 pass, 1 fail, 2 error; compare 0 no regression, 1 regression, 2 error; trend 0, 1 with
--fail-on-regression when the latest level regressed, 2 error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reports import compare, fmt, trend
from reports.build import REPORT_FILE, build

EXIT_CODES = {"pass": 0, "fail": 1}
EXIT_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reports", description="Summaries and reports of load-test runs.")
    sub = p.add_subparsers(dest="command", required=True)
    build_cmd = sub.add_parser("build", help="regenerate summary.json, report.html and the plots of a run folder")
    build_cmd.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="a run folder (runs/<id>-<scenario>)")
    build_cmd.set_defaults(handler=_build)
    compare.add_parser(sub)
    trend.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    code: int = args.handler(args)
    return code


def _build(args: argparse.Namespace) -> int:
    summary = build(args.run_dir)
    if summary.get("scenario") is None:  # the folder could not be loaded at all
        print(f"error: {summary['error']}", file=sys.stderr)
        return EXIT_ERROR
    print(verdict_table(summary))
    print(f"report: {args.run_dir / REPORT_FILE}")
    if summary["verdict"] == "error":
        print(f"error: {summary.get('error')}", file=sys.stderr)
    return EXIT_CODES.get(summary["verdict"], EXIT_ERROR)


def verdict_table(summary: dict[str, Any]) -> str:
    """A few lines: the verdict, one line per SLO, capacity and the generator's state."""
    lines = [f"{summary['scenario']}  {summary['run_id']}  verdict: {str(summary['verdict']).upper()}"]
    slos = summary.get("slos") or []
    width = max((len(s["name"]) for s in slos), default=0)
    for slo in slos:
        mark = "ok  " if slo["passed"] else "FAIL"
        lines.append(f"  {mark}  {slo['name']:<{width}}  {fmt.slo_figure(slo['kind'], slo['value']):>12}"
                     f"  (target {fmt.slo_figure(slo['kind'], slo['target'])})")
    stages = summary.get("stages") or []
    for stage in stages if len(stages) > 1 else []:
        failed = ", ".join(s["name"] for s in stage["slos"] if s["passed"] is False)
        lines.append(f"  stage {stage['index']}  {fmt.number(stage['messages_per_second'])} messages/s  "
                     + (f"FAIL: {failed}" if failed else "ok"))
    capacity = summary.get("capacity")
    if capacity is not None:
        lines.append(f"  capacity: {fmt.number(capacity['messages_per_second'])} messages/s "
                     f"(stage {capacity['stage']})")
    generator = summary.get("generator") or {}
    if generator.get("behind"):
        lines.append(f"  WARNING: the generator fell behind (schedule lag p99 {fmt.ms(generator['schedule_lag_p99'])}"
                     " ms > 100 ms): the run measured less load than the target")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
