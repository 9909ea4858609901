"""`make bench`: the service measured against this machine's own limits, every figure a ratio or a latency taken
side by side in one run (absolute rates on a shared machine drift from run to run).

Sections (each starts its own processes on free ports and a database of its own):
  send       durable socket.io sends/s vs pgbench running the same transaction at the same concurrency, and the
             receivers' delivery latency at half of that rate (benchmarks/send.py)
  query      inbox and history requests/s on 100k conversations / 2M messages vs a bare aiohttp JSON endpoint,
             and their p99 at half of their maximum (benchmarks/query.py)
  generator  the Locust process's CPU per delivered message vs the service's (benchmarks/generator.py)
  connections  bytes per idle socket.io connection (service and generator process, by slope), connections per
             GiB, and the connects/s one instance takes next to its connect bucket's rate (benchmarks/connections.py)
  report     building the report of a 5M-sample run (benchmarks/report_build.py)

Writes OUT/results.json (every figure, its target, the raw sections, the commit) and OUT/results.md (the table);
`--before FILE` puts an earlier results.json's figures next to these. `--profile` samples the service with py-spy
during the sends and the query maxima (OUT/profile/*.raw, collapsed stacks; top entries in results.md).

    python -m benchmarks [--only send,query] [--out bench] [--before FILE] [--profile] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import connections, generator, query, report_build, send

SECTIONS = ("send", "query", "generator", "connections", "report")


@dataclass(frozen=True)
class Figure:
    key: str
    name: str
    section: str
    unit: str
    value: Callable[[dict[str, Any]], float | None]   # None: not measured in this run
    target: str
    met: Callable[[Any, dict[str, Any]], bool | None]   # None: shown to read another figure, no target


FIGURES = (
    Figure("send_over_pgbench", "durable sends/s, socket.io (ack after commit) / pgbench, same transaction and "
           "concurrency", "send", "ratio", lambda r: r["socketio_over_pgbench"], ">= 0.5, then >= 1.0",
           lambda v, r: v >= 0.5),
    Figure("inbox_over_bare", "inbox requests/s / bare aiohttp JSON endpoint, same client", "query", "ratio",
           lambda r: r["inbox_over_bare"], ">= 0.3, then >= 0.5", lambda v, r: v >= 0.3),
    Figure("history_over_bare", "history requests/s / bare aiohttp JSON endpoint, same client", "query", "ratio",
           lambda r: r["history_over_bare"], ">= 0.3, then >= 0.5", lambda v, r: v >= 0.3),
    Figure("inbox_over_bare_orjson", "inbox requests/s / the bare endpoint encoding with orjson as the service does",
           "query", "ratio", lambda r: r["inbox_over_bare_orjson"], "(for reading the one above)", lambda v, r: None),
    Figure("inbox_cpu_over_bare", "inbox by CPU per request: the bare endpoint's / the service's", "query", "ratio",
           lambda r: r.get("inbox_cpu_over_bare"), "(the requests/s ratio if both were CPU bound)", lambda v, r: None),
    Figure("history_cpu_over_bare", "history by CPU per request: the bare endpoint's / the service's", "query",
           "ratio", lambda r: r.get("history_cpu_over_bare"), "(the same, for history)", lambda v, r: None),
    Figure("inbox_p99_half", "inbox p99 at half of its maximum (open loop, 8 s)", "query", "ms",
           lambda r: r["half_max_open_loop"]["inbox"]["p99_ms"], "<= 10 ms", lambda v, r: v <= 10 and _all(r, "inbox")),
    Figure("inbox_p99_half_window", "the same, median of the 2 s windows' p99", "query", "ms",
           lambda r: r["half_max_open_loop"]["inbox"]["p99_median_window_ms"], "<= 10 ms",
           lambda v, r: v <= 10 and _all(r, "inbox")),
    Figure("history_p99_half", "history p99 at half of its maximum (open loop, 8 s)", "query", "ms",
           lambda r: r["half_max_open_loop"]["history"]["p99_ms"], "<= 10 ms",
           lambda v, r: v <= 10 and _all(r, "history")),
    Figure("history_p99_half_window", "the same, median of the 2 s windows' p99", "query", "ms",
           lambda r: r["half_max_open_loop"]["history"]["p99_median_window_ms"], "<= 10 ms",
           lambda v, r: v <= 10 and _all(r, "history")),
    Figure("delivery_p99_half", "delivery p99 at the receivers, at half of the maximum send rate", "send", "ms",
           lambda r: r["half_max_open_loop"]["delivery_ms"]["p99"], "<= 20 ms",
           lambda v, r: v <= 20 and _delivered_all(r["half_max_open_loop"])),
    Figure("generator_over_service_cpu", "CPU per delivered message, Locust process / service", "generator", "ratio",
           lambda r: r["cpu_per_delivered"]["generator_over_service"], "< 1", lambda v, r: v < 1),
    Figure("idle_connections", "idle socket.io connections one generator process holds", "connections",
           "connections", lambda r: r["alive_after_hold"], ">= 5,000 under 1 GiB",
           lambda v, r: v >= 5000 and r["rss_bytes"] < 2**30),
    Figure("service_kib_per_connection", "service memory per idle connection (slope of RSS)", "connections", "KiB",
           lambda r: r["service_kib_per_connection"], "<= 20 KiB", lambda v, r: v is not None and v <= 20),
    Figure("generator_kib_per_connection", "generator memory per idle connection (slope of RSS)", "connections",
           "KiB", lambda r: r["generator_kib_per_connection"], "<= 10 KiB", lambda v, r: v is not None and v <= 10),
    Figure("service_connections_per_gib", "idle connections per GiB, service", "connections", "connections",
           lambda r: r["service_connections_per_gib"], ">= 52,429 (20 KiB each)",
           lambda v, r: v is not None and v >= 2**30 / 20480),
    Figure("generator_connections_per_gib", "idle connections per GiB, generator", "connections", "connections",
           lambda r: r["generator_connections_per_gib"], ">= 104,858 (10 KiB each)",
           lambda v, r: v is not None and v >= 2**30 / 10240),
    Figure("connects_per_second", "new connections/s one instance takes (its connect bucket off), one generator "
           "process", "connections", "connects/s", lambda r: r["connects_per_second"],
           "(for reading the one below)", lambda v, r: None),
    Figure("connect_ceiling_over_admission", "that ceiling / the connect bucket's default rate "
           "(CONNECT_ADMISSION_PER_SECOND)", "connections", "ratio", lambda r: r["ceiling_over_admission"],
           ">= 1 (the bucket sheds before the instance saturates)",
           lambda v, r: v is not None and v >= 1 and r["failures"] == 0),
    Figure("service_cpu_ms_per_disconnect", "service CPU per disconnect, all 10,000 closing at once", "connections",
           "ms", lambda r: r["service_cpu_ms_per_disconnect"], "<= its CPU per connect",
           lambda v, r: v is not None and r["service_cpu_ms_per_connect"] is not None
           and v <= r["service_cpu_ms_per_connect"]),
    Figure("service_cpu_ms_per_connect", "service CPU per connect (token check, session, rooms)", "connections",
           "ms", lambda r: r["service_cpu_ms_per_connect"], "(for reading the one above)", lambda v, r: None),
    Figure("connect_service_busy", "service CPU over the connects (a core = 100 %)", "connections", "%",
           lambda r: r["service_busy_percent"], "(near 100: the service bounds the ceiling)", lambda v, r: None),
    Figure("connect_generator_busy", "generator CPU over the connects", "connections", "%",
           lambda r: r["generator_busy_percent"], "(near 100: the generator bounds it)", lambda v, r: None),
    Figure("report_build_seconds", "report build of a 5M-sample one-hour run", "report", "s",
           lambda r: r["build_seconds_median"], "<= 15 s, <= 2 GiB", lambda v, r: bool(r["within_target"])),
)


def _delivered_all(run: dict[str, Any]) -> bool:
    return bool(run["errors"] == 0 and run["delivered"] == run["sent"] == run["scheduled"])


def _all(section: dict[str, Any], kind: str) -> bool:
    """Every scheduled request answered, none failed: a latency over the successes alone could flatter."""
    run = section["half_max_open_loop"][kind]
    return bool(run["errors"] == 0 and run["completed"] == run["scheduled"])


async def run_section(name: str, quick: bool, profile: Path | None) -> dict[str, Any]:
    seconds = 4 if quick else 10
    if name == "send":
        return await send.main(20, seconds, profile)
    if name == "query":
        return await query.main(3 if quick else 8, 32, reseed=False, profile=profile)
    if name == "generator":
        return await generator.main(60, 300, 8 if quick else 20)
    if name == "connections":
        return await connections.main(1000 if quick else 10_000, 2 if quick else 5)
    return await asyncio.to_thread(report_build.main, 1_000_000 if quick else 5_000_000, 1.0, 1, None)


def figures(sections: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for f in FIGURES:
        if f.section not in sections:
            continue
        raw = sections[f.section]
        value = f.value(raw)
        rows.append({"key": f.key, "name": f.name, "value": value, "unit": f.unit, "target": f.target,
                     "met": f.met(value, raw)})
    return rows


def _cell(value: float | None, unit: str) -> str:
    """A figure's value and unit (ratios bare); empty where a run did not measure it (an older results file)."""
    return "" if value is None else f"{value:g} {unit}".replace(" ratio", "")


def markdown(result: dict[str, Any], before: dict[str, Any] | None) -> str:
    earlier = {row["key"]: row["value"] for row in (before or {}).get("figures", [])}
    head = "| figure | value | target | met |" if before is None else "| figure | before | after | target | met |"
    lines = [f"`make bench` at {result['commit']} on {result['machine']['cpus']} cores, {result['started']}"
             + (f"; before: {before['commit']}" if before else ""), "", head,
             "|---|---|---|---|" if before is None else "|---|---|---|---|---|"]
    for row in result["figures"]:
        cells = [row["name"], _cell(row["value"], row["unit"]), row["target"],
                 {True: "yes", False: "**no**", None: ""}[row["met"]]]
        if before is not None:
            cells.insert(1, _cell(earlier.get(row["key"]), row["unit"]))
        lines.append("| " + " | ".join(cells) + " |")
    sections = result["sections"]
    profiles = {"the closed-loop sends": sections.get("send", {}).get("profile", {}).get("top"),
                **{f"wrk on {kind}": top for kind, top in sections.get("query", {}).get("profile", {}).items()}}
    for during, top in profiles.items():
        if top:
            lines += ["", f"Service profile during {during} (py-spy, share of samples):", "",
                      "| function | self % | inclusive % |", "|---|---|---|"]
            lines += [f"| `{e['function']}` | {e['self_percent']} | {e['inclusive_percent']} |" for e in top]
    return "\n".join(lines) + "\n"


def _commit() -> str:
    done = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def main(args: argparse.Namespace) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    before = json.loads(args.before.read_text()) if args.before else None
    chosen = [s for s in SECTIONS if s in args.only]
    result: dict[str, Any] = {
        "commit": _commit(), "started": datetime.now(UTC).isoformat(timespec="seconds"), "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "sections": {}, "seconds": {}}
    for i, name in enumerate(chosen, 1):
        print(f"[{i}/{len(chosen)}] {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        result["sections"][name] = asyncio.run(run_section(name, args.quick, out / "profile" if args.profile else None))
        result["seconds"][name] = round(time.perf_counter() - t0, 1)
        print(f"[{i}/{len(chosen)}] {name} done in {result['seconds'][name]:.0f} s", file=sys.stderr, flush=True)
    result["figures"] = figures(result["sections"])
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    table = markdown(result, before)
    (out / "results.md").write_text(table)
    print(table)
    print(f"written: {out / 'results.json'}, {out / 'results.md'}", file=sys.stderr)
    return 0


def _sections(raw: str) -> list[str]:
    names = [s.strip() for s in raw.split(",") if s.strip()]
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"sections are {', '.join(SECTIONS)}; got {raw!r}")
    return names


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--only", type=_sections, default=list(SECTIONS), metavar="SECTION[,SECTION]",
                        help=f"run these sections only ({', '.join(SECTIONS)})")
    parser.add_argument("--out", type=Path, default=Path("bench"), help="folder for results.json and results.md")
    parser.add_argument("--before", type=Path, default=None, metavar="FILE",
                        help="an earlier results.json: its figures go in a 'before' column")
    parser.add_argument("--profile", action="store_true", help="sample the service with py-spy during the sends")
    parser.add_argument("--quick", action="store_true", help="short runs (a check that everything works, not figures)")
    parsed = parser.parse_args()
    if parsed.before is not None and not parsed.before.is_file():
        parser.error(f"--before: no such file {parsed.before}")
    sys.exit(main(parsed))
