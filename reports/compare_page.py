"""compare.html and compare.png: the comparison a reviewer reads before merging a change.

The plot has one row per request: the relative change of p50 and p99 (dots) with their bootstrap intervals
(bars), the noise band of ±threshold shaded; regressions red, improvements green. The page holds the verdict, the
warnings about how the runs differ, the regressions in words, then the tables.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from reports import fmt
from reports.compare import COMPARE_HTML, COMPARE_PNG, FIGURES
from reports.html import CSS, Cell, table
from reports.options import write_text

COLOURS = {"regression": "tab:red", "improvement": "tab:green", "within noise": "tab:orange",
           "unchanged": "0.35", "not judged": "0.7"}
VERDICT_CSS = {"regression": "fail", "improvement": "pass", "unchanged": "pass"}


def write_page(result: dict[str, Any], out: Path) -> None:
    plotted = write_plot(result, out / COMPARE_PNG)
    if not plotted:
        (out / COMPARE_PNG).unlink(missing_ok=True)
    write_text(out / COMPARE_HTML, render(result, plotted))


def write_plot(result: dict[str, Any], path: Path) -> bool:
    judged = [(label, e) for label, e in result["requests"].items() if e["verdict"] != "not judged"]
    if not judged:
        return False
    threshold = result["settings"]["threshold"]
    fig, ax = plt.subplots(figsize=(10, 0.9 + 0.45 * len(judged) * len(FIGURES)))
    try:
        ticks, labels = [], []
        y = 0.0
        for label, entry in reversed(judged):
            for key, _ in reversed(FIGURES):
                figure = entry[key]
                low, high = figure["interval"]
                colour = COLOURS[figure["verdict"]]
                ax.errorbar(figure["change"] * 100, y, xerr=[[(figure["change"] - low) * 100],
                                                             [(high - figure["change"]) * 100]],
                            fmt="o", color=colour, capsize=3, markersize=5)
                ticks.append(y)
                labels.append(f"{label} {key}")
                y += 1
            y += 0.5
        ax.axvspan(-threshold * 100, threshold * 100, color="0.92", zorder=0, label=f"±{threshold:.0%} noise band")
        ax.axvline(0, color="0.4", linewidth=1)
        ax.set_yticks(ticks, labels, fontsize=8)
        ax.set_xlabel("change of the candidate against the base, % (bars: bootstrap interval)")
        ax.set_title(f"{result['base']['run_id']} → {result['candidate']['run_id']}", fontsize=10, loc="left")
        ax.grid(True, axis="x", linewidth=0.3)
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return True


def render(result: dict[str, Any], plotted: bool) -> str:
    base, candidate = result["base"], result["candidate"]
    verdict = result["verdict"]
    settings = result["settings"]
    parts = [
        f"<h1>Comparison: {escape(candidate['scenario'])}</h1>",
        f"<p class='sub'>base {escape(base['run_id'])} → candidate {escape(candidate['run_id'])}</p>",
        f"<div class='verdict {VERDICT_CSS.get(verdict, 'error')}'>{escape(verdict.upper())}</div>",
    ]
    parts += [f"<p class='note warn'><b>The runs differ:</b> {escape(w)}</p>" for w in result["warnings"]]
    parts += [f"<p class='note'>{escape(n)}</p>" for n in result["notes"]]
    if len(result["base_runs"]) > 1:
        parts.append(f"<p class='note'>Base: {len(result['base_runs'])} runs pooled ("
                     f"{escape(', '.join(result['base_runs']))}); the spread of each figure between them widens "
                     "its interval.</p>")
    if result["regressions"]:
        items = "".join(f"<li>{escape(line)}</li>" for line in result["regressions"])
        parts.append(f"<p class='note err'><b>Regressions</b></p><ul>{items}</ul>")
    parts.append(_runs_table(base, candidate))
    parts.append(
        f"<p class='note'>A latency figure is a regression when its block-bootstrap interval (5 s blocks resampled "
        f"{settings['resamples']} times; {result['figure_confidence']:.4%} per figure, so that the whole "
        f"comparison holds at {settings['confidence']:.0%}) lies above the base and the change is at least "
        f"{settings['threshold']:.0%} and {settings['min_delta_ms']:g} ms. It measures the noise within each run, "
        "not between runs. \"within noise\": a real "
        "shift below those thresholds. P(slower): the probability that a candidate request is slower than a base "
        "one (Mann-Whitney U; 0.5 = no shift).</p>")
    if plotted:
        parts.append(f"<img src='{COMPARE_PNG}' alt='latency changes with their intervals'>")
    parts.append("<h2>Latency</h2>\n" + _latency_table(result))
    parts.append("<h2>Errors, messages, SLOs</h2>\n" + _other_tables(result))
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n<title>compare "
            f"{escape(base['run_id'])} → {escape(candidate['run_id'])}</title>\n<style>{CSS}</style>\n</head>\n"
            f"<body>\n<main>\n{body}\n<footer>Figures: <a href='compare.json'>compare.json</a>. Written by "
            "<code>python -m reports compare</code>.</footer>\n</main>\n</body>\n</html>\n")


def _runs_table(base: dict[str, Any], candidate: dict[str, Any]) -> str:
    rows: list[list[Cell]] = []
    for key, label in (("run_id", "run"), ("scenario", "scenario"), ("verdict", "SLO verdict"),
                       ("start", "start"), ("duration", "sends"), ("version", "service"), ("machine", "machine"),
                       ("dir", "folder")):
        cells = []
        for run in (base, candidate):
            value = run.get(key)
            text = fmt.timestamp(value) if key == "start" else fmt.duration(value) if key == "duration" else (
                fmt.MISSING if value is None else str(value))
            cells.append((text, "text"))
        rows.append([label, *cells])
    return table(["", "base", "candidate"], rows)


def _latency_table(result: dict[str, Any]) -> str:
    rows: list[list[Cell]] = []
    for label, entry in result["requests"].items():
        if entry["verdict"] == "not judged":
            rows.append([label, fmt.number(entry["base_count"]), fmt.number(entry["candidate_count"]),
                         *([fmt.MISSING] * (3 * len(FIGURES) + 1)), (entry["reason"], "text")])
            continue
        cells: list[Cell] = [label, fmt.number(entry["base_count"]), fmt.number(entry["candidate_count"])]
        for key, _ in FIGURES:
            f = entry[key]
            cells += [fmt.ms(f["base"]), fmt.ms(f["candidate"]),
                      (f"{f['change']:+.1%} [{f['interval'][0]:+.1%}, {f['interval'][1]:+.1%}]", _css(f["verdict"]))]
        cells += [f"{entry['mann_whitney']['p_candidate_slower']:.3f}", (entry["verdict"], _css(entry["verdict"]))]
        rows.append(cells)
    headers = ["request", "base n", "candidate n"]
    for key, _ in FIGURES:
        headers += [f"{key} base ms", f"{key} candidate ms", f"{key} change [interval]"]
    return table([*headers, "P(slower)", "verdict"], rows)


def _other_tables(result: dict[str, Any]) -> str:
    rows: list[list[Cell]] = []
    errors = result["errors"]
    if "base" in errors:
        rows.append(["error ratio", f"{errors['base']:.3%}", f"{errors['candidate']:.3%}",
                     (errors["verdict"], _css(errors["verdict"]))])
    checker = result["checker"]
    for counter in ("lost", "duplicated", "out_of_order"):
        if counter in checker:
            c = checker[counter]
            rows.append([f"{counter} messages", fmt.number(c["base"]), fmt.number(c["candidate"]),
                         (c["verdict"], _css(c["verdict"]))])
    for slo in result["slos"]:
        rows.append([f"SLO {slo['name']}", _slo_text(slo["kind"], slo["base"], slo["base_passed"]),
                     _slo_text(slo["kind"], slo["candidate"], slo["candidate_passed"]),
                     (slo["verdict"], _css(slo["verdict"]))])
    capacity = result["capacity"]
    if capacity:
        rows.append(["capacity, messages/s", fmt.number(capacity["base"]), fmt.number(capacity["candidate"]),
                     (capacity["verdict"], _css(capacity["verdict"]))])
    return table(["", "base", "candidate", "verdict"], rows)


def _slo_text(kind: str, value: float | None, passed: bool | None) -> str:
    if passed is None:
        return "not in this run"
    return f"{fmt.slo_figure(kind, value)} ({'held' if passed else 'breached'})"


def _css(verdict: str) -> str:
    return {"regression": "bad", "improvement": "ok"}.get(verdict, "")
