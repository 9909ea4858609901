"""report.html: one self-contained page (inline CSS, no script, no network) from a summary and its run.

The page renders what the summary holds; the run (None when the folder could not be loaded) adds what the
summary does not carry: the note of what the run folder lacks (`rundata.gaps`, the same list as the summary's
`missing`), the run's facts (machine, versions, target, instances, times, CPU), the alerts that fired and the
links to the `prom/` exports. Plots are PNGs next to the page, each shown in the section it belongs to: latency,
delivery, users and throughput, the service side; a plot this page does not know goes under "More plots".
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from reports import fmt
from reports.alerting import notifications_summary, telling_labels, unnotified
from reports.hist import FIGURE_KEYS
from reports.machine import bound_text
from reports.plots import Plot
from reports.rundata import RunData, gaps
from reports.service_view import FINDINGS

Cell = str | tuple[str, str]  # text, or (text, css class)

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330; margin: 0;
       background: #f5f6f8; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 2px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #dde; }
.sub { color: #667; margin: 0 0 16px; }
.verdict { font-size: 34px; font-weight: 700; letter-spacing: 1px; padding: 10px 18px; border-radius: 6px;
           display: inline-block; color: #fff; }
.verdict.pass { background: #1e8e3e; } .verdict.fail { background: #c5221f; } .verdict.error { background: #7a1fa2; }
.note { margin: 10px 0; padding: 8px 12px; border-radius: 4px; background: #eef3fb; }
.warn { background: #fff4e5; border-left: 4px solid #e37400; }
.err { background: #fce8e6; border-left: 4px solid #c5221f; }
table { border-collapse: collapse; margin: 6px 0; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e4e6eb; text-align: right; vertical-align: top; }
th { background: #f0f1f4; font-weight: 600; }
th:first-child, td:first-child, td.text { text-align: left; }
td.ok { color: #1e8e3e; font-weight: 600; } td.bad { color: #c5221f; font-weight: 600; }
table.meta th { text-align: left; background: none; color: #556; font-weight: 500; }
.lacks ul { margin: 4px 0 0; padding-left: 20px; }
.caption { color: #556; margin: 0 0 4px; }
img { max-width: 100%; border: 1px solid #e4e6eb; margin: 6px 0 14px; }
footer { margin-top: 32px; color: #889; font-size: 12px; }
"""


def render_report(summary: dict[str, Any], run: RunData | None, plots: Sequence[Plot]) -> str:
    """The whole page."""
    title = f"{summary.get('scenario') or 'run'} — {summary.get('run_id')}"
    by_file = {p.file: p for p in plots}
    sections = [
        f"<h1>Load test: {escape(str(summary.get('scenario') or 'unknown scenario'))}</h1>",
        f"<p class='sub'>run {escape(str(summary.get('run_id')))}</p>",
        verdict_block(summary, run),
        lacks_block(run),
        meta_block(summary, run),
        generator_block(summary),
        slo_block(summary),
        faults_block(summary),
        stages_block(summary, run),
        capacity_section(summary, by_file),
        latency_section(summary, by_file),
        delivery_section(summary, by_file),
        load_section(by_file),
        connections_section(summary, by_file),
        service_section(run, by_file),
        machine_section(summary, by_file),
        plots_block([p for p in plots if p.file not in SECTION_PLOTS]),
        alerts_block(run),
        notifications_block(run),
        prom_block(run),
        "<footer>Figures: <a href='summary.json'>summary.json</a>. Written by <code>python -m reports build"
        "</code>.</footer>",
    ]
    body = "\n".join(s for s in sections if s)
    return (f"<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n<title>{escape(title)}</title>\n"
            f"<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n")


def verdict_block(summary: dict[str, Any], run: RunData | None) -> str:
    verdict = str(summary.get("verdict", "error"))
    parts = [f"<div class='verdict {escape(verdict)}'>{escape(verdict.upper())}</div>"]
    if summary.get("error"):
        parts.append(f"<p class='note err'>{escape(str(summary['error']))}</p>")
    capacity = summary.get("capacity")
    if capacity is not None:
        parts.append(f"<p class='note'>Capacity: <b>{fmt.number(capacity['messages_per_second'])} messages/s</b> "
                     f"(stage {capacity['stage']}, the highest stage whose SLOs all held).</p>")
    elif run is not None and run.scenario.capacity is not None and run.has_data:
        parts.append("<p class='note err'>Capacity: no stage held its SLOs.</p>")
    return "\n".join(parts)


def lacks_block(run: RunData | None) -> str:
    """What the run folder lacks and what the page cannot show because of it (nothing when it lacks nothing)."""
    found = gaps(run) if run is not None else []
    if not found:
        return ""
    items = "".join(f"<li>{escape(gap.text)}</li>" for gap in found)
    return f"<div class='note warn lacks'><b>What this report lacks</b><ul>{items}</ul></div>"


def meta_block(summary: dict[str, Any], run: RunData | None) -> str:
    """The run's facts: what ran where, with which versions, when, and how it ended."""
    meta = (run.meta if run is not None else None) or {}
    rows: list[tuple[str, str]] = [("run", str(summary.get("run_id")))]
    if run is not None:
        rows.append(("outcome", _outcome(meta, run)))
    instances = meta.get("instances")
    rows += [("target", str(meta.get("target") or fmt.MISSING)),
             ("instances", f"{', '.join(map(str, instances))} ({len(instances)})"
              if isinstance(instances, list) and instances else fmt.MISSING),
             ("service build", _build_info(meta.get("build_info")))]
    for key, label in (("harness_version", "harness"), ("locust_version", "Locust"), ("python_version", "Python")):
        rows.append((label, str(meta.get(key) or fmt.MISSING)))
    rows.append(("machine", _machine(meta.get("machine"))))
    start, end = _number_or_none(meta.get("start")), _number_or_none(meta.get("end"))
    if run is not None:
        start = start if start is not None else run.timeline.t0
        end = end if end is not None else run.timeline.end
    rows += [("start", fmt.timestamp(start)), ("end", fmt.timestamp(end)),
             ("duration", fmt.duration(end - start if start is not None and end is not None else None))]
    window = summary.get("window")
    if window:
        rows.append(("evaluated", f"{fmt.timestamp(window['start'])} → {fmt.timestamp(window['end'])} "
                                  f"({fmt.duration(window['end'] - window['start'])})"))
    if meta.get("workers") not in (None, ""):
        rows.append(("workers", str(meta["workers"])))
    if (cpu := _cpu(meta.get("cpu"))) is not None:
        rows.append(("CPU over the run", cpu))
    command = meta.get("command")
    if command not in (None, ""):
        rows.append(("command", shlex.join(map(str, command)) if isinstance(command, list) else str(command)))
    if meta.get("exit_code") not in (None, ""):
        rows.append(("exit code", str(meta["exit_code"])))
    cells = "".join(f"<tr><th>{escape(k)}</th><td class='text'>{escape(v)}</td></tr>" for k, v in rows)
    return f"<h2>Run</h2>\n<table class='meta'>{cells}</table>"


def _outcome(meta: dict[str, Any], run: RunData) -> str:
    if meta.get("aborted"):
        return "aborted"
    if run.timeline.stopped_early:
        return "stopped early" + (f": {run.timeline.stop_reason}" if run.timeline.stop_reason else "")
    exit_code = meta.get("exit_code")
    if isinstance(exit_code, int) and exit_code != 0:
        return f"Locust exited with code {exit_code}"
    return "ran to its end" if meta else "unknown (no meta.json); the timeline ran to its end"


def _build_info(info: Any) -> str:
    """The service's build_info labels, version and commit first."""
    if not isinstance(info, dict) or not info:
        return fmt.MISSING
    keys = sorted(info, key=lambda k: ({"version": 0, "commit": 1}.get(k, 2), k))
    return ", ".join(f"{k}={info[k]}" for k in keys)


def _machine(machine: Any) -> str:
    if not isinstance(machine, dict) or not machine:
        return fmt.MISSING
    parts = [str(machine.get("hostname") or "unknown host")]
    if machine.get("cpus") is not None:
        parts.append(f"{machine['cpus']} CPUs")
    if machine.get("platform"):
        parts.append(str(machine["platform"]))
    parts += [f"{k}={v}" for k, v in machine.items() if k not in ("hostname", "cpus", "platform")]
    return ", ".join(parts)


def _cpu(cpu: Any) -> str | None:
    """The CPU the load generator and each service instance used over the run, in cores on average."""
    if not isinstance(cpu, dict) or not isinstance(cpu.get("wall_seconds"), int | float) or cpu["wall_seconds"] <= 0:
        return None
    wall = float(cpu["wall_seconds"])
    parts = []
    if isinstance(cpu.get("generator_seconds"), int | float):
        parts.append(f"load generator {cpu['generator_seconds'] / wall:.2f} cores")
    service = cpu.get("service_seconds")
    if isinstance(service, dict):
        restarted = cpu.get("restarted") or []
        parts += [f"{name} {seconds / wall:.2f} cores" if isinstance(seconds, int | float)
                  else f"{name} not known (restarted during the run)" if name in restarted
                  else f"{name} not known" for name, seconds in service.items()]
    return "; ".join(parts) + f" (over {fmt.duration(wall)})" if parts else None


def generator_block(summary: dict[str, Any]) -> str:
    gen = summary.get("generator")
    if not gen:
        return ""
    figures = table(["target messages/s", "achieved messages/s", "schedule lag p99"],
                    [[fmt.number(gen.get("target_messages_per_second")),
                      fmt.number(gen.get("achieved_messages_per_second")),
                      f"{fmt.ms(gen.get('schedule_lag_p99'))} ms"]])
    warning = ""
    if gen.get("behind"):
        warning = ("<p class='note warn'><b>The generator fell behind:</b> its schedule lag p99 is over 100 ms, so "
                   "the run measured less load than the target (coordinated omission made visible).</p>")
    return f"<h2>Load generator</h2>\n{warning}{figures}"


def slo_block(summary: dict[str, Any]) -> str:
    slos = summary.get("slos")
    if not slos:
        return ""
    rows = [[s["name"], (s["kind"], "text"), fmt.slo_figure(s["kind"], s["target"]),
             fmt.slo_figure(s["kind"], s["value"]), _margin(s.get("margin")), _passed(s["passed"])] for s in slos]
    return ("<h2>SLOs</h2>\n<p class='caption'>Margin: the headroom as a share of the target (negative: by how much "
            "it breaks).</p>\n" + table(["SLO", "kind", "target", "value", "margin", "passed"], rows))


def _margin(value: float | None) -> Cell:
    if value is None:
        return fmt.MISSING
    return (f"{value:+.0%}", "ok" if value >= 0.2 else "" if value >= 0 else "bad")


def requests_block(summary: dict[str, Any]) -> str:
    requests = summary.get("requests")
    if not requests:
        return ""
    rows = [[name, (r["method"], "text"), fmt.number(r["count"]), _failures(r["failures"]), fmt.number(r["rps"], 2),
             *(fmt.ms(r.get(key)) for key in FIGURE_KEYS)] for name, r in requests.items()]
    headers = ["request", "method", "count", "failures", "rps", *(f"{k} ms" for k in FIGURE_KEYS)]
    return "<h3>Requests</h3>\n" + table(headers, rows)


def delivery_block(summary: dict[str, Any]) -> str:
    delivery = summary.get("delivery")
    if not delivery:
        return ""
    row = [fmt.number(delivery["count"]), *(fmt.ms(delivery.get(key)) for key in FIGURE_KEYS)]
    return ("<p class='sub'>message:new at the receiver, counted up to the end of the run (the drain included)."
            "</p>\n" + table(["count", *(f"{k} ms" for k in FIGURE_KEYS)], [row]))


def checker_block(summary: dict[str, Any]) -> str:
    checker = summary.get("checker")
    if not checker:
        return ""
    rows: list[list[Cell]] = [[key, _failures(value) if key in _CHECKER_PROBLEMS else fmt.number(value)]
                              for key, value in checker.items()]
    return ("<h3>Delivery checker</h3>\n<p class='sub'>Every message sent, followed to its receiver: lost, "
            "duplicated, redelivered and out of order.</p>\n" + table(["counter", "value"], rows))


def faults_block(summary: dict[str, Any]) -> str:
    faults = summary.get("faults")
    if faults is None:
        return ""
    if not faults:
        return "<h2>Faults</h2>\n<p class='bad'>The scenario plans faults, and none was injected (no faults.json).</p>"
    rows: list[list[Cell]] = []
    for f in faults:
        what = f"{f['action']} {f['instance']}" if f["action"] == "kill-instance" else str(f["action"])
        end = fmt.MISSING if f["end"] is None else f"{f['end']:.1f} s"
        unhealthy = ", ".join(f"{name.rsplit(':', 1)[-1]} {fmt.MISSING if s is None else f'{s:.1f} s'}"
                              for name, s in f["unhealthy"].items()) or "none"
        rows.append([what, f"{f['start']:.1f} s", end, _passed(bool(f["applied"])),
                     _seconds(f["client_recovery"]), fmt.number(f["failures"]), _seconds(f["service_back"]),
                     unhealthy])
    return ("<h2>Faults</h2>\n<p class='sub'>Injected during the run (shaded on the plots). Client recovery: from the "
            "fault's start to the last failed request before the clients were quiet again (5 s, once the fault was "
            "undone, with no failed request and sends acked); failures: the requests that failed meanwhile; "
            "instances back: from the fault being undone to every /health answering 200; unhealthy: how long "
            "each instance's /health did not answer 200.</p>\n" + table(
                ["fault", "start", "undone", "applied", "client recovery", "failures", "instances back",
                 "unhealthy (port)"], rows))


def _seconds(value: float | None) -> str:
    return fmt.MISSING if value is None else f"{value:.1f} s"


def stages_block(summary: dict[str, Any], run: RunData | None) -> str:
    stages = summary.get("stages")
    if not stages:
        return ""
    names = list(dict.fromkeys(s["name"] for st in stages for s in st["slos"]))  # an SLO may be one stage's
    t0 = run.timeline.t0 if run is not None else stages[0]["window"]["start"]
    rows = []
    for st in stages:
        by_name = {s["name"]: s for s in st["slos"]}
        rows.append([str(st["index"]), fmt.number(st["messages_per_second"]),
                     f"{st['window']['start'] - t0:.0f} to {st['window']['end'] - t0:.0f} s",
                     *(_slo_cell(by_name[n]) if n in by_name else fmt.MISSING for n in names), _passed(st["passed"])])
    headers = ["stage", "messages/s", "plateau (since start)", *names, "passed"]
    return ("<h2>Stages</h2>\n<p class='sub'>Each stage on its plateau (start + settle to end; connect latency over "
            "the whole stage).</p>\n") + table(
        headers, rows)


SECTION_PLOTS = ("latency.png", "client_vs_server.png", "delivery_cdf.png", "users.png", "connections.png",
                 "throughput.png",
                 "schedule_lag.png", "service.png", "capacity.png", "machine.png")
CAPTIONS = {
    "client_vs_server.png": "The p99 the load generator measured against the p99 the service measured itself "
                            "(Prometheus, over the export's rate window, interpolated within the service's "
                            "histogram buckets), with the band of the bucket the service's p99 falls in: it is "
                            "known only to within that band. A client p99 inside the band is the buckets' "
                            "resolution, not a difference; only one above it is time spent in the network, nginx "
                            "and the queue in front of the service.",
    "delivery_cdf.png": "The share of deliveries (and of message:send acks) at or below a latency, and the share "
                        "slower than it: the tail on a log scale.",
    "connections.png": "The socket.io connections the load generator held (sampled with each report, about every "
                       "3 s) and what each instance counted open (sampled by the runner every 5 s), against the "
                       "connected users each stage asks for; below, the resident memory of each process.",
    "users.png": "Users and what they did: all requests per second and the failures per second.",
    "schedule_lag.png": "How late the load generator sent against its open-model schedule: over 100 ms it could "
                        "not keep the target rate.",
    "capacity.png": "Left: each plateau's throughput against its concurrency, with the fitted USL curve. Right: "
                    "each plateau's latency against its throughput; the dashed line is the knee.",
    "machine.png": "The CPU of the machine the runner ran on, by part (the runner reads every process's CPU time "
                   "every 2 s): the load generator (the runner and its Locust processes), each local service "
                   "instance, PostgreSQL, Redis, nginx and the monitoring, stacked; the black line is the "
                   "machine's busy cores, the dashed one its CPU count.",
    "service.png": "Per service instance (Prometheus): CPU in cores, resident memory, the database pool, the "
                   "WebSocket connections, the event-loop lag p99 and the errors the service counted; the alerts "
                   "that fired are shaded.",
}


def capacity_section(summary: dict[str, Any], plots: dict[str, Plot]) -> str:
    """Step-load runs: each plateau's throughput, concurrency and latency, the knee, the USL fit and its plot."""
    analysis = summary.get("capacity_analysis")
    if not analysis:
        return ""
    rows: list[list[Cell]] = [
        [str(p["stage"]), fmt.number(p["target"]), fmt.number(p["throughput"]), f"{p['concurrency']:.3g}",
         fmt.ms(p["p50"]), fmt.ms(p["p99"]), fmt.ms(p["delivery_p99"]),
         ("held" if p["passed"] else "breached: " + ", ".join(p["breached"]), "ok" if p["passed"] else "bad")]
        for p in analysis["plateaus"]]
    of = analysis["throughput_of"]
    parts = [f"<p class='caption'>Throughput: successful {escape(of if isinstance(of, str) else ', '.join(of))} "
             "per second on each plateau; concurrency: requests in flight by Little's law (throughput × mean "
             "latency).</p>",
             table(["stage", "target/s", "throughput/s", "concurrency", "p50 ms", "p99 ms", "delivery p99 ms",
                     "SLOs"], rows)]
    knee = analysis.get("knee")
    parts.append(f"<p class='note'>Knee: stage {knee['stage']} ({fmt.number(knee['target'])}/s) is the first "
                 f"plateau that breaks an SLO ({escape(', '.join(knee['breached']))}).</p>" if knee else
                 "<p class='note'>Knee: every plateau held its SLOs; the knee lies beyond the highest stage.</p>")
    parts.append(_fit_block(analysis))
    parts.append(_images(plots, ("capacity.png",)))
    return _section("Capacity", parts)


def _fit_block(analysis: dict[str, Any]) -> str:
    fit = analysis.get("fit")
    if fit is None:
        return f"<p class='note warn'>No Universal Scalability Law fit: {escape(analysis.get('fit_error', ''))}.</p>"
    err = fit["stderr"]
    peak = (f"peak <b>{fmt.number(fit['peak_throughput'])}/s</b> at concurrency {fit['peak_concurrency']:.3g}"
            if fit["peak_concurrency"] is not None else
            f"no peak: throughput levels off towards <b>{fmt.number(fit['peak_throughput'])}/s</b>"
            if fit["peak_throughput"] is not None else "no limit measured")
    text = (f"Universal Scalability Law over {fit['points']} plateaus: σ (contention) {fit['sigma']:.3g} ± "
            f"{err['sigma']:.2g}, κ (crosstalk) {fit['kappa']:.3g} ± {err['kappa']:.2g}, λ (throughput of one) "
            f"{fit['lambda']:.4g} ± {err['lambda']:.2g}/s, R² {fit['r2']:.3f}; {peak}.")
    notes = "".join(f"<br>{escape(n)}" for n in fit.get("notes", []))
    if fit["quality"] == "poor":
        problems = "".join(f"<li>{escape(p)}</li>" for p in fit["problems"])
        return f"<div class='note warn'><b>The fit is poor</b>: {text}{notes}<ul>{problems}</ul></div>"
    return f"<p class='note'>{text}{notes}</p>"


def latency_section(summary: dict[str, Any], plots: dict[str, Plot]) -> str:
    parts = [requests_block(summary), _images(plots, ("latency.png", "client_vs_server.png")),
             client_vs_service_block(summary)]
    return _section("Latency", parts)


def client_vs_service_block(summary: dict[str, Any]) -> str:
    """Each request's client p99 beside the service's over the send window, and what their difference shows."""
    found = summary.get("client_vs_service")
    if found is None:
        return ("<p class='sub'>The service's own p99 over the send window is not known: the run folder has no "
                "prom/window.json (no Prometheus, or a run exported before it).</p>")
    entries = found["requests"]
    if not entries:
        return ""
    span, length = found.get("service_seconds"), found["window_seconds"]
    covered = (" The scrapes inside the window are not known: both over the whole window." if span is None else
               f" Both over the {span:.0f} s of the {length:.0f} s send window between the service's first and "
               "last scrape inside it.")
    rows = []
    for e in entries:
        service = e["service"]
        bucket = f"{fmt.ms(service['lower'])} .. {fmt.ms(service['upper']) if service['upper'] is not None else '∞'}"
        text = FINDINGS[e["finding"]].format(beyond=f"{fmt.ms(e['beyond'])} ms", why=e.get("why", ""))
        rows.append([e["request"], fmt.ms(e["client"]["p99"]), fmt.number(e["client"]["count"]),
                     fmt.ms(service["p99"]), bucket, fmt.number(service["count"]),
                     (text, "bad" if e["finding"] == "client_below" else "text")])
    return ("<h3>Client against service, over the send window</h3>\n<p class='sub'>The client's p99 from its "
            "full-resolution histograms (1 %), the service's from the counters' own difference across the window "
            f"(Prometheus), known only to within the bucket it falls in.{covered}</p>\n"
            + table(["request", "client p99 ms", "client count", "service p99 ms", "service bucket ms",
                     "service count", "the difference"], rows))


def delivery_section(summary: dict[str, Any], plots: dict[str, Plot]) -> str:
    return _section("Delivery", [delivery_block(summary), _images(plots, ("delivery_cdf.png",)),
                                 checker_block(summary)])


def load_section(plots: dict[str, Plot]) -> str:
    return _section("Users and throughput", [_images(plots, ("users.png", "throughput.png", "schedule_lag.png"))])


def connections_section(summary: dict[str, Any], plots: dict[str, Plot]) -> str:
    """Users held: the highest connected-user plateau within the SLOs, memory per connection, connect figures."""
    c = summary.get("connections")
    if not c:
        return ""

    def kib(values: dict[str, Any]) -> str:
        if not any(v is not None for v in values.values()):
            return "not known (connections did not ramp, or memory did not grow with them)"
        return "; ".join(f"{escape(k)}: {fmt.number(v / 1024)} KiB" if v is not None else f"{escape(k)}: not known"
                         for k, v in values.items())

    held = c.get("users_held")
    lead = (f"<p class='note'>Users held: <b>{held:,}</b> connected users on a plateau within the SLOs "
            f"(of {c.get('users_asked', 0):,} asked).</p>" if held is not None else
            "<p class='note err'>Users held: none: no plateau held its connected users within the SLOs.</p>")
    rows = [
        ["peak connected (generator)", fmt.number(c.get("peak_connected"), 0)],
        ["memory per connection, service (slope of RSS on connections)",
         kib(c.get("service_bytes_per_connection") or {})],
        ["memory per connection, generator", kib(c.get("generator_bytes_per_connection") or {})],
        ["connects (failed)", f"{c.get('connects', 0):,} ({c.get('connect_failures', 0):,})"],
        ["connect p50 / p99", f"{fmt.number(c.get('connect_p50_ms'))} / {fmt.number(c.get('connect_p99_ms'))} ms"],
        ["connect-rate ceiling (accepted/s, all instances, 5 s samples)", fmt.number(c.get("connect_rate_ceiling"))],
        ["connects refused by the service", fmt.number(c.get("connects_refused"), 0)],
        ["reconnects: users back / p99 / slowest", f"{c.get('reconnects', 0):,} / "
                                                   f"{fmt.number(c.get('reconnect_p99_ms'))} / "
                                                   f"{fmt.number(c.get('reconnect_max_ms'))} ms"],
        ["generator's collector: seconds in all / longest pause, per process",
         "; ".join(f"{escape(k)}: {fmt.number(v['seconds'])} s / {fmt.number(v['longest_seconds'] * 1000)} ms"
                   for k, v in (c.get("generator_gc") or {}).items()) or "not known"],
        ["open files, peak per instance", "; ".join(f"{escape(k)}: {v:,}" for k, v in
                                                    (c.get("service_peak_open_fds") or {}).items()) or "-"],
    ]
    plateaus = table(["stage", "users asked", "held (fewest on the plateau)", "SLOs"],
                     [[str(p["stage"]), f"{p['users']:,}", "-" if p["held"] is None else f"{p['held']:,}",
                       "held" if p["passed"] else "broken"] for p in c.get("plateaus") or []])
    return _section("Users held", [lead, table(["figure", "value"], rows), plateaus,
                                   _images(plots, ("connections.png",))])


def machine_section(summary: dict[str, Any], plots: dict[str, Plot]) -> str:
    """Where the machine's CPU went over the send window, part by part (the runner's 2 s samples)."""
    m = summary.get("machine")
    if not m:
        return ""
    lead = f"<p class='note{' err' if m.get('at_capacity') else ''}'>{escape(bound_text(m))}</p>"
    rows = [[escape(name), f"{v['cores']:.2f}", f"{v['peak']:.2f}", f"{v['share']:.0%}"]
            for name, v in m["parts"].items()]
    rows.append(["machine busy", f"{m['busy_cores']:.2f}", f"{m['busy_peak']:.2f}",
                 f"{m['busy_cores'] / m['cpus']:.0%}"])
    return _section("The machine's CPU", [lead, table(["part", "cores (mean)", "cores (busiest 2 s)",
                                                       f"share of {m['cpus']} CPUs"], rows),
                                          _images(plots, ("machine.png",))])


def service_section(run: RunData | None, plots: dict[str, Plot]) -> str:
    images = _images(plots, ("service.png",))
    if not images and run is not None:
        images = "<p>Nothing to show: prom/ holds no series of the service (see what this report lacks).</p>"
    return _section("Service side", [images])


def _section(title: str, parts: Sequence[str]) -> str:
    body = "\n".join(part for part in parts if part)
    return f"<h2>{escape(title)}</h2>\n{body}" if body else ""


def _images(plots: dict[str, Plot], files: Sequence[str]) -> str:
    return "\n".join(_image(plots[file]) for file in files if file in plots)


def _image(plot: Plot) -> str:
    caption = f"<p class='caption'>{escape(CAPTIONS[plot.file])}</p>\n" if plot.file in CAPTIONS else ""
    return f"<h3>{escape(plot.title)}</h3>\n{caption}<img src='{escape(plot.file)}' alt='{escape(plot.title)}'>"


def plots_block(plots: Sequence[Plot]) -> str:
    if not plots:
        return ""
    return "<h2>More plots</h2>\n" + "\n".join(_image(p) for p in plots)


def alerts_block(run: RunData | None) -> str:
    if run is None or run.alerts is None:
        return ""
    if not run.alerts:
        return "<h2>Alerts</h2>\n<p>No alert fired during the run.</p>"
    t0 = run.timeline.t0
    rows: list[list[Cell]] = [[_alert_name(a), (str(a.get("state", "")), "text"), (_labels(a.get("labels")), "text"),
                               (_when(a.get("active_at") or a.get("activeAt"), t0), "text"),
                               (_when(a.get("last_seen"), t0), "text"),
                               ("; ".join(x for x in (_long_window(a), _alert_extra(a)) if x), "text")]
                              for a in run.alerts]
    return ("<h2>Alerts</h2>\n<p class='sub'>The alerts Prometheus had firing during the run.</p>\n"
            + table(["alert", "state", "labels", "active at", "last seen", "more"], rows))


def _long_window(alert: dict[str, Any]) -> str:
    """An SLO burn-rate alert whose long window held less data than it spans, when it fired."""
    from scenarios.notifications import long_window_note

    raw = alert.get("labels")
    labels: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return long_window_note({**labels, "alertname": _alert_name(alert)}, [alert]) or ""


def notifications_block(run: RunData | None) -> str:
    """What the alert sink received (notifications.json), and the fired alerts it received nothing of, with why."""
    if run is None:
        return ""
    found = notifications_summary(run)
    if found is None:
        sink = (run.meta or {}).get("alert_sink")
        if sink:
            return (f"<h2>Notifications</h2>\n<p class='note warn'>The alert sink at {escape(str(sink))} did not "
                    "answer after the run: what Alertmanager notified is unknown.</p>")
        if run.alerts:
            return ("<h2>Notifications</h2>\n<p class='sub'>Not read: the run had no alert sink (--alert-sink; "
                    "python -m stack run passes the stack's), so whether the alerts above were notified is "
                    "unknown.</p>")
        return ""
    parts = ["<h2>Notifications</h2>",
             "<p class='sub'>What Alertmanager sent to the alert sink from the run's start until the runner read it"
             + (f" (it waited {found['waited']:.0f} s for notifications still due)"
                if isinstance(found.get("waited"), int | float) and found["waited"] >= 1 else "") + ".</p>"]
    if found["list"]:
        shown = telling_labels(found["list"])
        rows: list[list[Cell]] = [
            [f"+{n['at']:.0f} s" if n["at"] is not None else fmt.MISSING, (str(n["receiver"]), "text"),
             (str(n["alertname"]), "text"),
             (str(n["status"]), "bad" if n["status"] == "firing" else "ok"), (str(n["severity"] or ""), "text"),
             (", ".join(f"{k}={v}" for k, v in labels.items()), "text"), (n.get("note", ""), "text")]
            for n, labels in zip(found["list"], shown, strict=True)]
        parts.append(table(["received (since start)", "receiver", "alert", "status", "severity", "labels", "note"],
                           rows))
    else:
        parts.append("<p>The alert sink received no notification during the run.</p>")
    missing = unnotified(run)
    if missing:
        items = "".join(f"<li><b>{escape(e.labels['alertname'])}</b> ({escape(_labels(e.labels))}): "
                        f"{escape(why)}</li>" for e, why in missing)
        parts.append(f"<div class='note warn lacks'><b>Fired without a notification</b><ul>{items}</ul></div>")
    return "\n".join(parts)


def _when(value: Any, t0: float) -> str:
    """An alert's time: epoch seconds as a time and its offset from the start; anything else as it is."""
    if isinstance(value, int | float):
        return f"{fmt.timestamp(float(value))} ({float(value) - t0:+.0f} s)"
    return "" if value is None else str(value)


def prom_block(run: RunData | None) -> str:
    if run is None or not run.prom_files:
        return ""
    links = ", ".join(f"<a href='prom/{escape(name)}'>{escape(name)}</a>" for name in run.prom_files)
    return f"<h2>Prometheus exports</h2>\n<p>{links}</p>"


_CHECKER_PROBLEMS = {"lost", "duplicated", "redelivered", "out_of_order", "send_failed"}
_ALERT_SHOWN = {"alertname", "state", "labels", "active_at", "activeAt", "last_seen", "long_window",
                "long_window_held"}


def table(headers: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    """An HTML table; a cell is text, or (text, css class), where the class `html` marks text that is markup
    already (escaped by its maker)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>\n" for row in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}</table>"


def _cell(cell: Cell) -> str:
    text, css = cell if isinstance(cell, tuple) else (cell, "")
    if css == "html":
        return f"<td class='text'>{text}</td>"
    return f"<td class='{css}'>{escape(text)}</td>" if css else f"<td>{escape(text)}</td>"


def _passed(passed: bool | None) -> Cell:
    return "no data" if passed is None else ("yes", "ok") if passed else ("NO", "bad")


def _failures(value: int) -> Cell:
    return (fmt.number(value), "bad") if value else fmt.number(value)


def _slo_cell(slo: dict[str, Any]) -> Cell:
    if slo["passed"] is None:
        return "no data"
    return (fmt.slo_figure(slo["kind"], slo["value"]), "ok" if slo["passed"] else "bad")


def _alert_name(alert: dict[str, Any]) -> str:
    labels = alert.get("labels")
    from_labels = labels.get("alertname") if isinstance(labels, dict) else None
    return str(alert.get("alertname") or from_labels or "?")


def _labels(labels: Any) -> str:
    if not isinstance(labels, dict):
        return "" if labels is None else str(labels)
    return ", ".join(f"{k}={v}" for k, v in labels.items() if k != "alertname")


def _alert_extra(alert: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in alert.items() if k not in _ALERT_SHOWN)


def _number_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None
