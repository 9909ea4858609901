"""The report's PNG plots: latency percentiles, throughput and schedule lag over the run (matplotlib, Agg).

Records are aggregated across workers in 5 s bins of their midpoint (a record is ~3 s): latencies by merging
the bin's histograms, rates by summing the workers' mean rate in the bin (so a bin holding one or two of a
worker's records does not alias). Time runs in seconds since t0; the warm-up is shaded, stage starts are dotted
lines and the end of the sends a dashed one. A plot without data is not written.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, no GUI toolkit

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import LogFormatter

from reports.hist import merge
from reports.rundata import RunData

BIN_SECONDS = 5.0
BUSIEST_LATENCY = 4  # request names with a latency panel (besides delivery)
BUSIEST_THROUGHPUT = 8  # request names with a requests/s line
PLOT_FILES = ("latency.png", "throughput.png", "schedule_lag.png")

COLUMNS = {"label": str, "delivery": bool, "lag": bool, "worker": str, "bin": int, "duration": float, "count": int,
           "failures": int, "record": object}


@dataclass(frozen=True)
class Plot:
    """A PNG written next to the report."""

    file: str
    title: str


def write_plots(run: RunData, out_dir: Path) -> list[Plot]:
    """Write the plots that have data into `out_dir`; the ones written, in page order."""
    frame = records_frame(run)
    if frame.empty:
        return []
    makers: list[Callable[[RunData, pd.DataFrame, Path], Plot | None]] = [latency_plot, throughput_plot, lag_plot]
    return [plot for make in makers if (plot := make(run, frame, out_dir)) is not None]


def records_frame(run: RunData) -> pd.DataFrame:
    """One row per interval record: its request label, worker, 5 s bin (since t0), duration, counts, histogram."""
    t0 = run.timeline.t0
    rows = [
        (run.label(s), s.is_delivery, s.is_lag, r.worker, math.floor((r.mid - t0) / BIN_SECONDS), r.end - r.start,
         r.count, r.failures, r)
        for s in run.series for r in s.records
    ]
    return pd.DataFrame(rows, columns=list(COLUMNS)).astype(COLUMNS)


def percentile_bins(frame: pd.DataFrame, percents: tuple[float, ...]) -> pd.DataFrame:
    """Per 5 s bin: the time of its middle (s since t0) and the merged histograms' percentiles in ms."""
    rows: list[dict[str, float]] = []
    if frame.empty:
        return pd.DataFrame(rows)
    for bin_index, group in frame.groupby("bin"):
        histogram = merge(r.counts for r in group["record"])
        if histogram.total == 0:
            continue
        row = {"t": (float(bin_index) + 0.5) * BIN_SECONDS}  # type: ignore[arg-type]
        row.update({f"p{p:g}": v / 1000 for p, v in zip(percents, histogram.values_at(percents), strict=True)})
        row["max"] = histogram.max_us() / 1000
        rows.append(row)
    return pd.DataFrame(rows)


def rate_bins(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per 5 s bin (rows, by the time of its middle) and request label (columns): `column` per second."""
    timed = frame[frame["duration"] > 0].copy()
    if timed.empty:
        return pd.DataFrame()
    timed["rate"] = timed[column] / timed["duration"]
    per_worker = timed.groupby(["label", "bin", "worker"])["rate"].mean()
    per_label = per_worker.groupby(level=["label", "bin"]).sum().unstack("label")
    bins = range(int(timed["bin"].min()), int(timed["bin"].max()) + 1)
    table = per_label.reindex(bins).fillna(0.0)
    table.index = [(b + 0.5) * BIN_SECONDS for b in bins]
    return table


def latency_plot(run: RunData, frame: pd.DataFrame, out_dir: Path) -> Plot | None:
    """p50/p95/p99 over time: one panel per busiest request name, then delivery."""
    panels = [(label, frame[frame["label"] == label]) for label in _busiest(frame, BUSIEST_LATENCY)]
    panels.append(("delivery (message:new)", frame[frame["delivery"]]))
    series = [(title, bins) for title, part in panels if not (bins := percentile_bins(part, (50, 95, 99))).empty]
    if not series:
        return None
    fig, axes = plt.subplots(len(series), 1, figsize=(10, 2.6 * len(series)), sharex=True, squeeze=False)
    for ax, (title, bins) in zip(axes[:, 0], series, strict=True):
        for column in ("p50", "p95", "p99"):
            ax.plot(bins["t"], bins[column], label=column, linewidth=1.2, marker=".", markersize=3)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(LogFormatter())
        ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.5)))
        ax.set_ylabel("ms")
        ax.set_title(title, fontsize=10, loc="left")
        _decorate(ax, run)
    axes[-1, 0].set_xlabel("seconds since start")
    return _save(fig, out_dir, "latency.png", "Latency percentiles over time")


def throughput_plot(run: RunData, frame: pd.DataFrame, out_dir: Path) -> Plot | None:
    """Requests/s per busiest name and failures/s (total and per failing name)."""
    requests = frame[~frame["lag"]]
    if requests.empty or requests["count"].sum() == 0:
        return None
    rates = rate_bins(requests, "count")
    failures = rate_bins(requests, "failures")
    if rates.empty:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True, height_ratios=(3, 1.4))
    for label in _busiest(requests, BUSIEST_THROUGHPUT, include_delivery=True):
        top.plot(rates.index, rates[label], label=label, linewidth=1.2)
    top.set_ylabel("requests/s")
    top.set_title("Throughput", fontsize=10, loc="left")
    _decorate(top, run)
    bottom.plot(failures.index, failures.sum(axis=1), label="all", color="black", linewidth=1.2)
    for label in [c for c in failures.columns if failures[c].sum() > 0][:5]:
        bottom.plot(failures.index, failures[label], label=str(label), linewidth=1)
    bottom.set_ylabel("failures/s")
    bottom.set_xlabel("seconds since start")
    _decorate(bottom, run)
    return _save(fig, out_dir, "throughput.png", "Throughput over time")


def lag_plot(run: RunData, frame: pd.DataFrame, out_dir: Path) -> Plot | None:
    """How late the open-model sends were against their schedule."""
    bins = percentile_bins(frame[frame["lag"]], (50, 99))
    if bins.empty:
        return None
    fig, ax = plt.subplots(figsize=(10, 3.2))
    for column in ("p50", "p99", "max"):
        ax.plot(bins["t"], bins[column], label=column, linewidth=1.2, marker=".", markersize=3)
    ax.axhline(100, color="tab:red", linestyle="--", linewidth=1, label="behind (100 ms)")
    ax.set_ylabel("ms")
    ax.set_xlabel("seconds since start")
    ax.set_title("Schedule lag of the sends", fontsize=10, loc="left")
    _decorate(ax, run)
    return _save(fig, out_dir, "schedule_lag.png", "Schedule lag over time")


def _busiest(frame: pd.DataFrame, n: int, include_delivery: bool = False) -> list[str]:
    """The `n` request labels with the most requests (the lag pseudo-request and, unless asked, delivery out)."""
    keep = ~frame["lag"] & (include_delivery | ~frame["delivery"])
    totals = frame[keep].groupby("label")["count"].sum()
    totals = totals[totals > 0].sort_values(ascending=False, kind="stable")
    return [str(label) for label in totals.index[:n]]


def _decorate(ax: Any, run: RunData) -> None:
    """Warm-up shaded, stage starts dotted, end of the sends dashed, legend outside the data."""
    timeline = run.timeline
    ax.axvspan(0, timeline.warmup_end - timeline.t0, color="0.88", label="warm-up", zorder=0)
    for n, stage in enumerate(s for s in timeline.stages if s.start > timeline.t0):
        ax.axvline(stage.start - timeline.t0, color="0.35", linestyle=":", linewidth=1,
                   label="stage start" if n == 0 else None)
    ax.axvline(timeline.send_end - timeline.t0, color="0.35", linestyle="--", linewidth=1, label="send end")
    ax.set_xlim(0, max(timeline.end - timeline.t0, BIN_SECONDS))
    ax.grid(True, linewidth=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def _save(fig: Any, out_dir: Path, file: str, title: str) -> Plot:
    try:
        fig.tight_layout()
        fig.savefig(out_dir / file, dpi=100)
    finally:
        plt.close(fig)
    return Plot(file=file, title=title)
