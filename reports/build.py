"""`build`: regenerate a run folder's summary.json, report.html and PNG plots from its raw files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reports import capacity
from reports.html import render_report
from reports.options import write_text
from reports.plots import PLOT_FILES, Plot, write_plots
from reports.rundata import RunData, RunDataError, load_run
from reports.summary import error_summary, summarize

SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"


def build(run_dir: Path) -> dict[str, Any]:
    """Write summary.json, the plots and report.html into `run_dir`; return the summary.

    A folder that cannot be loaded (scenario.yaml or timeline.json missing or unreadable) gets a summary with
    verdict `error` and its one-line reason under `error` (and a page saying so); a missing folder gets nothing.
    """
    run_dir = Path(run_dir)
    try:
        run = load_run(run_dir)
    except RunDataError as exc:
        summary = error_summary(run_dir, str(exc))
        if run_dir.is_dir():
            _write_outputs(run_dir, summary, None, [])
        return summary
    summary = summarize(run)
    plots = write_plots(run, run_dir)
    analysis = summary.get("capacity_analysis")
    if analysis is not None and capacity.write_plot(analysis, run_dir):
        plots.append(Plot(file=capacity.CAPACITY_PNG, title="Capacity: throughput against concurrency, latency "
                                                            "per plateau"))
    _write_outputs(run_dir, summary, run, plots)
    return summary


def _write_outputs(run_dir: Path, summary: dict[str, Any], run: RunData | None, plots: list[Plot]) -> None:
    written = {p.file for p in plots}
    for name in (*PLOT_FILES, capacity.CAPACITY_PNG):  # a plot of an earlier build that has no data now
        if name not in written:
            (run_dir / name).unlink(missing_ok=True)
    write_text(run_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    write_text(run_dir / REPORT_FILE, render_report(summary, run, plots))
