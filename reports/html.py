"""report.html: one self-contained page (inline CSS, no script, no network) from a summary and its run.

The page renders what the summary holds; the run (None when the folder could not be loaded) adds the meta
block, the Prometheus alerts and the links to the `prom/` exports. Plots are PNGs next to the page.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from reports import fmt
from reports.hist import FIGURE_KEYS
from reports.plots import Plot
from reports.rundata import RunData

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
img { max-width: 100%; border: 1px solid #e4e6eb; margin: 6px 0 14px; }
footer { margin-top: 32px; color: #889; font-size: 12px; }
"""


def render_report(summary: dict[str, Any], run: RunData | None, plots: Sequence[Plot]) -> str:
    """The whole page."""
    title = f"{summary.get('scenario') or 'run'} — {summary.get('run_id')}"
    sections = [
        f"<h1>Load test: {escape(str(summary.get('scenario') or 'unknown scenario'))}</h1>",
        f"<p class='sub'>run {escape(str(summary.get('run_id')))}</p>",
        verdict_block(summary, run),
        meta_block(summary, run),
        generator_block(summary),
        slo_block(summary),
        requests_block(summary),
        delivery_block(summary),
        checker_block(summary),
        stages_block(summary, run),
        plots_block(plots),
        alerts_block(run),
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


def meta_block(summary: dict[str, Any], run: RunData | None) -> str:
    meta = (run.meta if run is not None else None) or {}
    rows: list[tuple[str, str]] = [("run", str(summary.get("run_id")))]
    if meta.get("target"):
        rows.append(("target", str(meta["target"])))
    if isinstance(meta.get("build_info"), dict) and meta["build_info"]:
        rows.append(("build", ", ".join(f"{k}={v}" for k, v in sorted(meta["build_info"].items()))))
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
    for key, label in (("workers", "workers"), ("harness_version", "harness"), ("locust_version", "Locust"),
                       ("python_version", "Python"), ("command", "command"), ("exit_code", "exit code")):
        if meta.get(key) not in (None, ""):
            rows.append((label, str(meta[key])))
    if isinstance(meta.get("machine"), dict):
        rows.append(("machine", ", ".join(f"{k}={v}" for k, v in meta["machine"].items())))
    if meta.get("aborted") or (run is not None and run.timeline.stopped_early):
        rows.append(("note", "aborted" if meta.get("aborted") else "stopped early (capacity breach)"))
    cells = "".join(f"<tr><th>{escape(k)}</th><td class='text'>{escape(v)}</td></tr>" for k, v in rows)
    return f"<h2>Run</h2>\n<table class='meta'>{cells}</table>"


def generator_block(summary: dict[str, Any]) -> str:
    gen = summary.get("generator")
    if not gen:
        return ""
    table = _table(["target messages/s", "achieved messages/s", "schedule lag p99"],
                   [[fmt.number(gen.get("target_messages_per_second")),
                     fmt.number(gen.get("achieved_messages_per_second")),
                     f"{fmt.ms(gen.get('schedule_lag_p99'))} ms"]])
    warning = ""
    if gen.get("behind"):
        warning = ("<p class='note warn'><b>The generator fell behind:</b> its schedule lag p99 is over 100 ms, so "
                   "the run measured less load than the target (coordinated omission made visible).</p>")
    return f"<h2>Load generator</h2>\n{warning}{table}"


def slo_block(summary: dict[str, Any]) -> str:
    slos = summary.get("slos")
    if not slos:
        return ""
    rows = [[s["name"], (s["kind"], "text"), fmt.slo_figure(s["kind"], s["target"]),
             fmt.slo_figure(s["kind"], s["value"]), _passed(s["passed"])] for s in slos]
    return "<h2>SLOs</h2>\n" + _table(["SLO", "kind", "target", "value", "passed"], rows)


def requests_block(summary: dict[str, Any]) -> str:
    requests = summary.get("requests")
    if not requests:
        return ""
    rows = [[name, (r["method"], "text"), fmt.number(r["count"]), _failures(r["failures"]), fmt.number(r["rps"], 2),
             *(fmt.ms(r.get(key)) for key in FIGURE_KEYS)] for name, r in requests.items()]
    headers = ["request", "method", "count", "failures", "rps", *(f"{k} ms" for k in FIGURE_KEYS)]
    return "<h2>Requests</h2>\n" + _table(headers, rows)


def delivery_block(summary: dict[str, Any]) -> str:
    delivery = summary.get("delivery")
    if not delivery:
        return ""
    row = [fmt.number(delivery["count"]), *(fmt.ms(delivery.get(key)) for key in FIGURE_KEYS)]
    return ("<h2>Delivery</h2>\n<p class='sub'>message:new at the receiver, counted up to the end of the run "
            "(the drain included).</p>\n" + _table(["count", *(f"{k} ms" for k in FIGURE_KEYS)], [row]))


def checker_block(summary: dict[str, Any]) -> str:
    checker = summary.get("checker")
    if not checker:
        return ""
    rows: list[list[Cell]] = [[key, _failures(value) if key in _CHECKER_PROBLEMS else fmt.number(value)]
                              for key, value in checker.items()]
    return "<h2>Delivery checker</h2>\n" + _table(["counter", "value"], rows)


def stages_block(summary: dict[str, Any], run: RunData | None) -> str:
    stages = summary.get("stages")
    if not stages:
        return ""
    names = [s["name"] for s in stages[0]["slos"]]
    t0 = run.timeline.t0 if run is not None else stages[0]["window"]["start"]
    rows = [[str(st["index"]), fmt.number(st["messages_per_second"]),
             f"{st['window']['start'] - t0:.0f} to {st['window']['end'] - t0:.0f} s",
             *(_slo_cell(s) for s in st["slos"]), _passed(st["passed"])] for st in stages]
    headers = ["stage", "messages/s", "plateau (since start)", *names, "passed"]
    return "<h2>Stages</h2>\n<p class='sub'>Each stage on its plateau (start + settle to end).</p>\n" + _table(
        headers, rows)


def plots_block(plots: Sequence[Plot]) -> str:
    if not plots:
        return ""
    images = "\n".join(f"<h3>{escape(p.title)}</h3>\n<img src='{escape(p.file)}' alt='{escape(p.title)}'>"
                       for p in plots)
    return f"<h2>Over time</h2>\n{images}"


def alerts_block(run: RunData | None) -> str:
    if run is None or run.alerts is None:
        return ""
    if not run.alerts:
        return "<h2>Alerts</h2>\n<p>No alert was pending or firing.</p>"
    rows: list[list[Cell]] = [[_alert_name(a), (str(a.get("state", "")), "text"), (_labels(a.get("labels")), "text"),
                               (str(a.get("active_at") or a.get("activeAt") or ""), "text"),
                               (_alert_extra(a), "text")] for a in run.alerts]
    return "<h2>Alerts</h2>\n" + _table(["alert", "state", "labels", "active at", "more"], rows)


def prom_block(run: RunData | None) -> str:
    if run is None or not run.prom_files:
        return ""
    links = ", ".join(f"<a href='prom/{escape(name)}'>{escape(name)}</a>" for name in run.prom_files)
    return f"<h2>Prometheus exports</h2>\n<p>{links}</p>"


_CHECKER_PROBLEMS = {"lost", "duplicated", "redelivered", "out_of_order", "send_failed"}
_ALERT_SHOWN = {"alertname", "state", "labels", "active_at", "activeAt"}


def _table(headers: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>\n" for row in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}</table>"


def _cell(cell: Cell) -> str:
    text, css = cell if isinstance(cell, tuple) else (cell, "")
    return f"<td class='{css}'>{escape(text)}</td>" if css else f"<td>{escape(text)}</td>"


def _passed(passed: bool) -> Cell:
    return ("yes", "ok") if passed else ("NO", "bad")


def _failures(value: int) -> Cell:
    return (fmt.number(value), "bad") if value else fmt.number(value)


def _slo_cell(slo: dict[str, Any]) -> Cell:
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
