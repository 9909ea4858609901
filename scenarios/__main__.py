"""Command line: `python -m scenarios list | validate [NAME_OR_PATH ...] | run NAME [options]`.

`run` is implemented by `scenarios.runner.main(args)`, imported only when `run` is asked for.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

from scenarios.model import (
    Scenario,
    ScenarioError,
    display_path,
    format_duration,
    load_scenario,
    parse_duration,
    resolve_scenario_path,
    scenario_paths,
)

DEFAULT_TARGET = "http://127.0.0.1:5240"
DEFAULT_METRICS_PORT = 9646

_EPILOG = """\
examples:
  python -m scenarios list
  python -m scenarios validate                      # every scenario in scenarios/
  python -m scenarios validate smoke ./my-test.yaml
  python -m scenarios run smoke
  python -m scenarios run capacity --workers 4 --prometheus http://127.0.0.1:9090
  python -m scenarios run baseline --duration 1m    # scale the stages to one minute

A NAME is a file in scenarios/ without .yaml; anything with a / or ending in .yaml/.yml is a path.
Durations are seconds or a number with a unit: 250ms, 30s, 5m, 1h. See docs/loadtests.md."""


def _duration_arg(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return seconds


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scenarios", description="List, validate and run load scenarios.",
                                epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("list", help="a table of the scenarios in scenarios/",
                   description="One row per scenario in scenarios/: send duration, peak messages/s, the most pairs "
                               "and REST users of any stage, the number of SLOs, the description's first line.")
    validate = sub.add_parser("validate", help="check scenario files against the schema",
                              description="Check scenario files against the schema: 'ok <file>' or one line per "
                                          "problem ('<file>: <location>: <message>'). Exit status 0 when every "
                                          "file is valid, 2 otherwise.")
    validate.add_argument("scenarios", nargs="*", metavar="NAME_OR_PATH",
                          help="scenario names or file paths (default: every scenario in scenarios/)")
    run = sub.add_parser("run", help="run a scenario against a target and write a run folder",
                         description="Run a scenario with Locust against a running service and write "
                                     "runs/<UTC time>-<name>/ (see docs/loadtests.md, 'A run folder').")
    run.add_argument("scenario", metavar="NAME", help="a scenario name or a path to a scenario file")
    run.add_argument("--target", default=DEFAULT_TARGET, metavar="URL",
                     help="the service's base URL (default: %(default)s)")
    run.add_argument("--instances", default=None, metavar="URL[,URL...]",
                     help="the service instances behind a load-balanced --target, read directly for their CPU "
                          "and build (default: the targets)")
    run.add_argument("--workers", type=_int_between(1, 1024), default=None, metavar="N",
                     help="Locust worker processes generating the load (default: 1, or as many as the scenario's "
                          "connected users need under one process's open-file limit)")
    run.add_argument("--source-addresses", default="auto", metavar="ADDR[,ADDR...]|auto|none",
                     help="local addresses the socket.io clients bind to, round robin by user (127.0.0.x: one "
                          "address reaches about 28k ports per target); auto: 127.0.0.1..N when the scenario "
                          "holds more than 25,000 users (default: %(default)s)")
    run.add_argument("--duration", type=_duration_arg, default=None, metavar="DURATION",
                     help="scale the stages to last this long in all (250ms, 30s, 5m, 1h; default: as written)")
    run.add_argument("--rate", type=float, default=None, metavar="MSG_PER_S",
                     help="scale the stages' send rates so that the peak is this many messages/s")
    run.add_argument("--run-dir-root", type=Path, default=Path("runs"), metavar="PATH",
                     help="where the run folder is created (default: %(default)s)")
    run.add_argument("--prometheus", default=None, metavar="URL",
                     help="a Prometheus to export the run window's series and alerts from (prom/)")
    run.add_argument("--alert-sink", default=None, metavar="URL",
                     help="an alert sink (python -m stack.alertsink) to read the run's notifications from "
                          "(notifications.json); python -m stack run passes the stack's")
    run.add_argument("--jwt-secret", default=None, metavar="SECRET",
                     help="secret to mint the load users' tokens; default: JWT_SECRET from the environment or "
                          "--env-file")
    run.add_argument("--env-file", type=Path, default=None, metavar="PATH",
                     help="a KEY=VALUE file read for JWT_SECRET and DATABASE_URL")
    run.add_argument("--database-url", default=None, metavar="URL",
                     help="the service's database, for seeding the scenario's data volume; default: DATABASE_URL "
                          "from the environment or --env-file")
    run.add_argument("--no-seed", action="store_true", help="do not seed the scenario's data volume")
    run.add_argument("--metrics-port", type=_int_between(1, 65535), default=DEFAULT_METRICS_PORT, metavar="PORT",
                     help="port of the load generator's Prometheus metrics endpoint (default: %(default)s)")
    run.add_argument("--web", action="store_true",
                     help="run the Locust web UI (http://127.0.0.1:8089) instead of headless; start it there")
    run.add_argument("--fault-command", default=None, metavar="COMMAND",
                     help="what injects the scenario's faults, called as 'COMMAND begin|end ACTION --instance N' "
                          "(python -m stack run passes its own; see docs/chaos.md)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            return _list()
        if args.command == "validate":
            return _validate(args.scenarios)
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `python -m scenarios list | head`: no traceback, nothing more to write
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _list() -> int:
    rows = [("NAME", "SEND", "PEAK MSG/S", "PAIRS", "REST USERS", "SLOS", "DESCRIPTION")]
    failed = False
    for path in scenario_paths():
        try:
            scenario = load_scenario(path)
        except ScenarioError as exc:
            print(exc, file=sys.stderr)
            rows.append((path.stem, "-", "-", "-", "-", "-", "(invalid: see python -m scenarios validate)"))
            failed = True
            continue
        rows.append(_row(scenario))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) if column == 0 else cell.rjust(width)
                 for column, (cell, width) in enumerate(zip(row, widths, strict=False))]
        print("  ".join([*cells, row[-1]]).rstrip())
    return 2 if failed else 0


def _row(scenario: Scenario) -> tuple[str, str, str, str, str, str, str]:
    stages = scenario.resolved_stages()
    description = scenario.description.strip().splitlines()[0]
    return (scenario.name, _human_duration(scenario.send_duration), f"{scenario.peak_messages_per_second:g}",
            str(max(stage.pairs for stage in stages)), str(max(stage.rest_users for stage in stages)),
            str(len(scenario.slos)), description)


def _human_duration(seconds: float) -> str:
    """`45s`, `5m`, `1h`, `1m30s`; under a second in ms."""
    if seconds < 1:
        return format_duration(seconds)
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{value}{unit}" for value, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if value)


def _validate(names: list[str]) -> int:
    targets: list[str | Path] = list(names) if names else list(scenario_paths())
    if not targets:
        print("no scenario files in scenarios/")
        return 2
    failed = False
    for target in targets:
        try:
            path = resolve_scenario_path(target)
            load_scenario(path)
        except ScenarioError as exc:
            print(exc)
            failed = True
        else:
            print(f"ok {display_path(path)}")
    return 2 if failed else 0


def _run(args: argparse.Namespace) -> int:
    try:
        runner = importlib.import_module("scenarios.runner")
    except ModuleNotFoundError as exc:
        if exc.name == "scenarios.runner":
            print("run is not available yet", file=sys.stderr)
        else:
            print(f"run is not available: {exc}", file=sys.stderr)
        return 2
    run_main = cast(Callable[[argparse.Namespace], int], runner.main)
    return run_main(args)


if __name__ == "__main__":
    sys.exit(main())
