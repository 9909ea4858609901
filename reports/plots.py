"""The report's PNG plots (matplotlib, Agg): what the load generator measured and what the service went through.

From hist/ (the load generator's histograms): latency percentiles over time, the client-side p99 against the
service's own p99, the delivery latency distribution, throughput and failures, users, schedule lag. Records are
aggregated across workers in 5 s bins of their midpoint (a record is ~3 s): latencies by merging the bin's
histograms, rates by summing the workers' mean rate in the bin (so a bin holding one or two of a worker's records
does not alias). Percentiles are always read from merged histograms, never averaged.

From prom/ (the Prometheus export, see `reports.promdata`): the service-side p99s and the service's CPU, memory,
database pool, WebSocket connections, event-loop lag and errors per instance. Prometheus' p99s are over the
export's rate window (four scrape intervals, prom/export.json), so they are smoother than the client's 5 s bins;
the client's p99 is drawn over the same trailing window, and the service's with the band of the bucket it falls in
(`reports.service_view`): a gap inside the band is the histogram's resolution, only one beyond it is the network,
nginx and the queueing in front of the service. From locust_stats_history.csv: the users.

Time runs in seconds since t0; the warm-up is shaded, stage starts are dotted lines and the end of the sends a
dashed one. A line never holds more points than the plot has pixels across (MAX_POINTS): longer series are
averaged in equal buckets. A plot without data is not written; the histogram-free ones (users, service) are
written even when hist/ is empty, so a failed run still shows what the service did.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, no GUI toolkit

import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogFormatter, LogLocator, NullFormatter

from reports.hist import PERCENTILES, Histogram, cdf, latency_figures, merge, values
from reports.promdata import PromSeries, select, users_over_time
from reports.rundata import Record, RunData, Series
from reports.service_view import band, edges, rate_window, service_key, window_totals

BIN_SECONDS = 5.0
BUSIEST_LATENCY = 4  # request names with a latency panel (besides delivery)
BUSIEST_THROUGHPUT = 8  # request names with a requests/s line
BUSIEST_REST_SERVER = 3  # REST routes with a client-vs-service panel (besides message:send)
MAX_POINTS = 1000  # a line's points at most: the plots are 1,000 px wide
DOTS_UP_TO = 150  # a line of that many points or fewer marks each of them
SERVICE_JOB = "sut"  # the Prometheus job of the service's instances
LOADGEN_JOB = "locust"  # the Prometheus job of the load generator's master
PLOT_FILES = ("latency.png", "client_vs_server.png", "delivery_cdf.png", "users.png", "connections.png",
              "throughput.png", "schedule_lag.png", "service.png", "machine.png")

FloatArray = npt.NDArray[np.float64]

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
    makers: list[Callable[[RunData, pd.DataFrame, Path], Plot | None]] = [
        latency_plot, client_vs_server_plot, delivery_cdf_plot, users_plot, connections_plot, throughput_plot,
        lag_plot, service_plot, machine_plot]
    if frame.empty:
        makers = [users_plot, connections_plot, service_plot, machine_plot]
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
        _latency_axis(ax, title, run)
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


def client_vs_server_plot(run: RunData, frame: pd.DataFrame, out_dir: Path) -> Plot | None:
    """p99 as the load generator saw it against the service's own p99 (Prometheus), for message:send and the
    busiest REST routes. The client's p99 is drawn twice: per 5 s bin (as latency.png) and over the trailing rate
    window at each of Prometheus' sample times, the window of the service's p99, so those two lines compare. The
    service's p99 is drawn with the band of the bucket it falls in (from the bucket edges of prom/window.json):
    it is known only to within that band."""
    window = rate_window(run)
    totals = window_totals(run)
    panels = []
    for series, service in _server_matches(run, frame):
        part = frame[frame["label"] == run.label(series)]
        client = percentile_bins(part, (99,))
        t, v = _prom_line(run, service, scale=1000.0)
        if client.empty or not np.isfinite(v).any():
            continue
        where = service_key(series)
        lower, upper = band(service.values, edges(totals, where[0]) if where else [])
        _, lo = _thin(service.times, lower * 1000.0)
        _, hi = _thin(service.times, upper * 1000.0)
        trailing = trailing_percentile(list(part["record"]), service.times, window, 99)
        panels.append((run.label(series), client, t, v, lo, hi, _thin(service.times - run.timeline.t0, trailing)))
    if not panels:
        return None
    span = f"{window:g} s"
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.6 * len(panels)), sharex=True, squeeze=False)
    for ax, (title, client, t, v, lo, hi, (tt, tv)) in zip(axes[:, 0], panels, strict=True):
        ax.plot(client["t"], client["p99"], label="client p99, 5 s bins", color="tab:blue", alpha=0.45,
                linewidth=1, **_dots(len(client)))
        ax.plot(tt, tv, label=f"client p99, trailing {span}", color="tab:blue", linewidth=1.6, **_dots(len(tt)))
        if np.isfinite(lo).any():
            top = np.where(np.isinf(hi), np.nanmax(np.where(np.isfinite(hi), hi, lo)) * 2, hi)
            ax.fill_between(t, lo, top, facecolor="none", edgecolor="tab:orange", hatch="////", linewidth=0,
                            alpha=0.55, label="the service p99's bucket\n(known only to within it)")
        ax.plot(t, v, label=f"service p99, trailing {span}\n(Prometheus)", color="tab:orange", linewidth=1.6,
                **_dots(len(t)))
        _latency_axis(ax, title, run)
    axes[0, 0].set_title("a gap inside the band is the buckets' resolution; client above it: network, nginx, queueing",
                         fontsize=7, loc="right", color="0.35")
    axes[-1, 0].set_xlabel("seconds since start")
    return _save(fig, out_dir, "client_vs_server.png", "Client-side against service-side p99")


def trailing_percentile(records: Sequence[Record], times: FloatArray, seconds: float, percent: float) -> FloatArray:
    """The value (ms) at `percent` of the records whose midpoint is in (t - seconds, t], at each of the ascending
    epoch `times`; nan where none holds a value. One histogram slides along: each record is added and taken out
    once, so the cost is one cumulative sum per time."""
    ordered = sorted(records, key=lambda r: r.mid)
    mids = np.array([r.mid for r in ordered], dtype=np.float64)
    window = Histogram()
    out = np.full(len(times), np.nan)
    added = removed = 0
    for n, t in enumerate(times):
        upto, since = np.searchsorted(mids, [t, t - seconds], side="right")
        for record in ordered[added:upto]:
            window.add(record.counts)
        for record in ordered[removed:min(since, upto)]:
            window.counts[record.counts.index] -= record.counts.count
        added, removed = max(added, int(upto)), max(removed, int(min(since, upto)))
        if window.counts.any():
            out[n] = window.values_at([percent])[0] / 1000
    return out


def _server_matches(run: RunData, frame: pd.DataFrame) -> list[tuple[Series, PromSeries]]:
    """message:send with its socketio_p99 series, then the busiest REST requests with their http_p99 series (a
    request `GET /path/{id}` matches the route template `/path/{id}` of the method GET)."""
    prom = run.prom or {}
    totals = frame.groupby("label")["count"].sum()
    busiest = sorted(run.requests(), key=lambda s: -int(totals.get(run.label(s), 0)))
    out: list[tuple[Series, PromSeries]] = []
    send = next((s for s in busiest if s.method == "WS" and s.name == "message:send"), None)
    if send is not None and (found := select(prom.get("socketio_p99", []), event="message:send")):
        out.append((send, found[0]))
    rest = 0
    for series in busiest:
        if rest >= BUSIEST_REST_SERVER or series.method in ("WS", "LAG") or totals.get(run.label(series), 0) == 0:
            continue
        route = series.name.removeprefix(f"{series.method} ")
        if found := select(prom.get("http_p99", []), method=series.method, route=route):
            out.append((series, found[0]))
            rest += 1
    return out


def delivery_cdf_plot(run: RunData, frame: pd.DataFrame, out_dir: Path) -> Plot | None:
    """The distribution of delivery latency (WS message:new up to the end of the run) and of the message:send acks
    (over the send window), on a log axis: the share at or below a latency, and the share slower than it."""
    curves = [
        ("delivery (message:new)", merge(r.counts for s in run.series if s.is_delivery
                                         for r in s.within(run.delivery_window))),
        ("message:send ack", merge(r.counts for s in run.requests() if s.name == "message:send"
                                   for r in s.within(run.send_window))),
    ]
    if curves[0][1].total == 0:
        return None
    curves = [(title, histogram) for title, histogram in curves if histogram.total]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True, height_ratios=(3, 2))
    marks = (("p50", "tab:green"), ("p99", "tab:orange"), ("p999", "tab:red"))
    for n, (title, histogram) in enumerate(curves):
        x, y = _cdf_points(histogram)
        color = "tab:blue" if n == 0 else "0.45"
        top.step(x, y, where="post", color=color, linewidth=1.4 if n == 0 else 1.1,
                 label=f"{title}, {histogram.total:,} samples")
        tail = 1.0 - y
        keep = tail > 0
        bottom.step(x[keep], tail[keep], where="post", color=color, linewidth=1.4 if n == 0 else 1.1)
        figures = latency_figures(histogram)
        for key, mark_color in marks:
            value = figures[key]
            if value is None:
                continue
            name = "p99.9" if key == "p999" else key
            if n == 0:
                top.axvline(value * 1000, color=mark_color, linestyle="--", linewidth=1,
                            label=f"delivery {name} {value * 1000:.3g} ms")
            else:
                share = dict(PERCENTILES)[key] / 100
                top.plot([value * 1000], [share], marker="o", markersize=5, color=mark_color,
                         markerfacecolor="none", label=f"ack {name} {value * 1000:.3g} ms")
    for level, name in ((0.5, "p50"), (0.01, "p99"), (0.001, "p99.9")):
        bottom.axhline(level, color="0.6", linestyle=":", linewidth=0.8)
        bottom.annotate(name, (1.0, level), xycoords=("axes fraction", "data"), fontsize=7, color="0.35",
                        xytext=(3, 0), textcoords="offset points", va="center")
    top.set_xscale("log")
    top.set_ylim(0, 1.02)
    top.set_ylabel("share at or below")
    top.set_title("Delivery latency distribution", fontsize=10, loc="left")
    bottom.set_yscale("log")
    bottom.set_ylabel("share slower")
    bottom.set_xlabel("latency (ms, log scale)")
    bottom.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    bottom.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    bottom.xaxis.set_minor_formatter(NullFormatter())
    for ax in (top, bottom):
        ax.grid(True, which="both", linewidth=0.3)
    top.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, out_dir, "delivery_cdf.png", "Delivery latency distribution")


def _cdf_points(histogram: Histogram) -> tuple[FloatArray, FloatArray]:
    """The CDF's steps in ms, from 0 at the lowest value recorded; at most about MAX_POINTS steps, picked evenly
    on the log axis (the last, the maximum, always kept)."""
    at_us, fractions = cdf(histogram)
    first = int(values().lowest[np.flatnonzero(histogram.counts)[0]])
    x = np.concatenate(([first], at_us)).astype(np.float64) / 1000
    y = np.concatenate(([0.0], fractions))
    if len(x) > MAX_POINTS:
        grid = np.geomspace(max(x[0], 1e-3), x[-1], MAX_POINTS)
        keep = np.unique(np.concatenate(([0], np.searchsorted(x, grid, side="right") - 1, [len(x) - 1])))
        x, y = x[keep], y[keep]
    return x, y


def users_plot(run: RunData, frame: pd.DataFrame, out_dir: Path) -> Plot | None:
    """Users over time (Locust's stats history, else Prometheus' loadgen_users), with the total requests/s and
    failures/s the load generator measured on a second axis."""
    users = _users(run)
    requests = frame[~frame["lag"]]
    rates = rate_bins(requests, "count") if not requests.empty else pd.DataFrame()
    if users is None and rates.empty:
        return None
    fig, ax = plt.subplots(figsize=(10, 3.6))
    if users is not None:
        t, v, source = users
        ax.plot(t, v, color="tab:blue", linewidth=1.4, drawstyle="steps-post", label=f"users ({source})")
        ax.set_ylabel("users")
        ax.set_ylim(0, _top([v]))
    else:
        ax.set_ylabel("users (unknown)")
        ax.set_yticks([])
    ax.set_xlabel("seconds since start")
    ax.set_title("Users and throughput", fontsize=10, loc="left")
    twin = ax.twinx()
    if not rates.empty:
        failures = rate_bins(requests, "failures")
        twin.plot(rates.index, rates.sum(axis=1), color="tab:orange", linewidth=1.2, label="requests/s (all)")
        twin.plot(failures.index, failures.sum(axis=1), color="tab:red", linewidth=1.1, label="failures/s")
        twin.set_ylim(0, _top([rates.sum(axis=1).to_numpy(dtype=np.float64)]))
    twin.set_ylabel("per second")
    _decorate(ax, run)
    handles, labels = ax.get_legend_handles_labels()
    more_handles, more_labels = twin.get_legend_handles_labels()
    ax.legend(handles + more_handles, labels + more_labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.08, 1.0))
    return _save(fig, out_dir, "users.png", "Users and throughput over time")


def connections_plot(run: RunData, frame: pd.DataFrame, out_dir: Path) -> Plot | None:
    """Connected users over time, as the generator holds them and as each instance counts them, against the users
    the stages ask for; below, the resident memory of each generator process and instance."""
    from reports.connections import connected_series

    series = connected_series(run)
    service = run.service_samples or []
    if not series and not service:
        return None
    t0 = run.timeline.t0
    fig, (ax, mem) = plt.subplots(2, 1, figsize=(10, 5.6), sharex=True)
    lines: list[FloatArray] = []
    if series:
        t = np.array([p[0] - t0 for p in series], dtype=np.float64)
        v = np.array([p[1] for p in series], dtype=np.float64)
        ax.plot(t, v, color="tab:blue", linewidth=1.4, drawstyle="steps-post", label="held by the generator")
        lines.append(v)
    by_instance: dict[str, list[tuple[float, float, float]]] = {}
    for sample in service:
        by_instance.setdefault(str(sample.get("instance")), []).append(
            (float(sample["at"]) - t0, float(sample.get("websocket_connections_active") or 0),
             float(sample.get("process_resident_memory_bytes") or 0) / 2**20))
    for name, points in sorted(by_instance.items()):
        points.sort()
        t = np.array([p[0] for p in points], dtype=np.float64)
        v = np.array([p[1] for p in points], dtype=np.float64)
        ax.plot(t, v, linewidth=1.0, label=f"open on {name}", **_dots(len(points)))
        mem.plot(t, np.array([p[2] for p in points], dtype=np.float64), linewidth=1.0, label=f"service {name}")
        lines.append(v)
    for stage in run.timeline.stages:
        if stage.users:
            ax.hlines(stage.users, stage.start - t0, stage.end - t0, colors="grey", linestyles="dashed",
                      linewidth=0.9)
    ax.plot([], [], color="grey", linestyle="dashed", label="users asked (stage)")
    ax.set_ylim(0, _top([*lines, np.array([s.users for s in run.timeline.stages] or [0], dtype=np.float64)]))
    ax.set_ylabel("connections")
    ax.set_title("Connected users", fontsize=10, loc="left")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    workers: dict[str, list[tuple[float, float]]] = {}
    for sample in run.generator_samples or []:
        if sample.get("rss_bytes"):
            workers.setdefault(str(sample.get("worker")), []).append(
                (float(sample["at"]) - t0, float(sample["rss_bytes"]) / 2**20))
    for name, rss in sorted(workers.items()):
        rss.sort()
        mem.plot([p[0] for p in rss], [p[1] for p in rss], linewidth=1.0, linestyle="dotted",
                 label=f"generator {name}")
    mem.set_ylabel("resident MiB")
    mem.set_xlabel("seconds since start")
    mem.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _decorate(ax, run)
    _decorate(mem, run)
    return _save(fig, out_dir, "connections.png", "Connected users and memory over time")


def machine_plot(run: RunData, frame: pd.DataFrame, out_dir: Path) -> Plot | None:
    """Cores by part over time (machine.jsonl), stacked, with the machine's busy cores against its CPU count."""
    from reports.machine import rank

    samples = sorted(run.machine_samples or [], key=lambda s: float(s.get("at") or 0.0))
    if not samples:
        return None
    names = sorted({p for s in samples for p in (s.get("cores") or {})}, key=rank)
    t = np.array([float(s["at"]) - run.timeline.t0 for s in samples], dtype=np.float64)
    fig, ax = plt.subplots(figsize=(10, 3.4))
    if names:
        stack = np.array([[float((s.get("cores") or {}).get(n) or 0.0) for s in samples] for n in names],
                         dtype=np.float64)
        ax.stackplot(t, stack, labels=names, step="pre", alpha=0.85)
    ax.step(t, np.array([float(s.get("busy") or 0.0) for s in samples], dtype=np.float64), where="pre",
            color="black", linewidth=0.9, label="machine busy")
    cpus = max(int(s.get("cpus") or 1) for s in samples)
    ax.axhline(cpus, color="tab:red", linestyle="--", linewidth=0.9, label=f"{cpus} CPUs")
    ax.set_ylim(0, cpus * 1.08)
    ax.set_ylabel("cores")
    ax.set_xlabel("seconds since start")
    ax.set_title("The machine's CPU by part (2 s samples)", fontsize=10, loc="left")
    _decorate(ax, run)
    return _save(fig, out_dir, "machine.png", "The machine's CPU by part")


def _users(run: RunData) -> tuple[FloatArray, FloatArray, str] | None:
    """(seconds since t0, users, source), thinned; None when neither source has them."""
    t0 = run.timeline.t0
    if run.stats_history is not None:
        users = users_over_time(run.stats_history)
        if not users.empty:
            t, v = _thin(users.index.to_numpy(dtype=np.float64) - t0, users.to_numpy(dtype=np.float64))
            return t, v, "Locust stats history"
    loadgen = [s for s in (run.prom or {}).get("loadgen_users", []) if s.has_values]
    if loadgen:
        t, v = _prom_line(run, _sum_series(loadgen))
        return t, v, "Prometheus"
    return None


def service_plot(run: RunData, frame: pd.DataFrame, out_dir: Path) -> Plot | None:
    """The service's side over the run, one panel each when prom/ has it: CPU, memory, database pool, WebSocket
    connections, event-loop lag, errors; the alerts that fired are shaded."""
    panels = [panel for panel in _service_panels(run) if panel[2]]
    if not panels:
        return None
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.4 * len(panels)), sharex=True, squeeze=False)
    spans = _alert_spans(run)
    for ax, (title, unit, lines) in zip(axes[:, 0], panels, strict=True):
        for label, t, v, style in lines:
            ax.plot(t, v, label=label, linewidth=1.2, **_dots(len(t)), **style)
        for n, (start, end) in enumerate(spans):
            ax.axvspan(start, end, color="tab:red", alpha=0.12, label="alert firing" if n == 0 else None, zorder=0)
        top = _top([v for _, _, v, _ in lines])
        ax.set_ylim(-0.03 * top, top)
        ax.set_ylabel(unit)
        ax.set_title(title, fontsize=10, loc="left")
        _decorate(ax, run)
    axes[-1, 0].set_xlabel("seconds since start")
    return _save(fig, out_dir, "service.png", "The service over time (Prometheus)")


Line = tuple[str, FloatArray, FloatArray, dict[str, Any]]


def _service_panels(run: RunData) -> list[tuple[str, str, list[Line]]]:
    """(title, unit, lines) per panel; a panel without lines is dropped by the caller."""
    prom = run.prom or {}
    colors = _instance_colors(prom)

    def per_instance(query: str, scale: float = 1.0, **labels: str) -> list[Line]:
        found = [s for s in select(prom.get(query, []), **labels) if s.has_values]
        return [(s.label("instance", "?"), *_prom_line(run, s, scale), {"color": colors.get(s.label("instance"))})
                for s in sorted(found, key=lambda s: s.label("instance"))]

    def loadgen(query: str, scale: float = 1.0) -> list[Line]:
        lines: list[Line] = [(f"load generator ({LOADGEN_JOB})", *_prom_line(run, s, scale), {"color": "black"})
                             for s in select(prom.get(query, []), job=LOADGEN_JOB) if s.has_values]
        return lines

    cpu = per_instance("process_cpu", job=SERVICE_JOB) + loadgen("process_cpu")
    cpu += [(f"load generator worker {s.label('worker', '?')}", *_prom_line(run, s),
             {"color": "0.4", "linestyle": "--"}) for s in prom.get("loadgen_cpu", []) if s.has_values]
    rss = per_instance("process_rss", 1 / 2**20, job=SERVICE_JOB) + loadgen("process_rss", 1 / 2**20)
    pool: list[Line] = []
    for state, style in (("in_use", "-"), ("idle", "--")):
        pool += [(f"{label} {state}", t, v, {**s, "linestyle": style})
                 for label, t, v, s in per_instance("db_pool", state=state)]
    sizes = [s for s in select(prom.get("db_pool", []), state="max") if s.has_values]
    if sizes and pool:
        size = max(sizes, key=lambda s: float(np.nanmax(s.values)))
        pool.append(("pool size (per instance)", *_prom_line(run, size), {"color": "black", "linestyle": ":"}))
    return [
        ("CPU", "cores (1 = a core)", cpu),
        ("Memory (resident)", "MiB", rss),
        ("Database pool", "connections", pool),
        ("WebSocket connections", "connections", per_instance("websocket_connections")),
        ("Event-loop lag p99", "ms", per_instance("event_loop_lag_p99", 1000.0)),
        ("Errors at the service", "per second", _error_lines(run)),
    ]


def _error_lines(run: RunData) -> list[Line]:
    """HTTP 5xx and 4xx responses and Socket.IO event errors per second, summed over routes and events; a kind
    without any series is drawn as zero on its query's times (the service counted none). The requests shed for
    overload, when the export has them."""
    prom = run.prom or {}
    http = [s for s in prom.get("http_requests_rate", []) if len(s.times)]
    events = [s for s in prom.get("socketio_events_rate", []) if len(s.times)]
    kinds = [("HTTP 5xx/s", http, [s for s in http if s.label("status").startswith("5")], "tab:red"),
             ("HTTP 4xx/s", http, [s for s in http if s.label("status").startswith("4")], "tab:orange"),
             ("Socket.IO errors/s", events, select(events, status="error"), "tab:purple")]
    lines: list[Line] = []
    for label, every, errors, color in kinds:
        if not every:
            continue
        if errors:
            total = _sum_series(errors)
        else:
            times = _sum_series(every).times
            total = PromSeries(labels={}, times=times, values=np.zeros(len(times)))
        lines.append((label, *_prom_line(run, total), {"color": color}))
    shed = [s for s in prom.get("shed_rate", []) if len(s.times)]
    if shed:   # already among the 5xx and the Socket.IO errors: this says how many of them were load shedding
        lines.append(("shed (overloaded)/s", *_prom_line(run, _sum_series(shed)), {"color": "tab:brown",
                                                                                  "linestyle": "--"}))
    return lines


def _instance_colors(prom: dict[str, list[PromSeries]]) -> dict[str, str]:
    """One color per service instance, the same in every panel."""
    instances = sorted({s.label("instance") for name in ("process_cpu", "process_rss", "db_pool",
                                                         "websocket_connections", "event_loop_lag_p99")
                        for s in prom.get(name, []) if s.label("job", SERVICE_JOB) == SERVICE_JOB})
    palette = [c for c in plt.rcParams["axes.prop_cycle"].by_key()["color"] if c != "#ff7f0e"] or ["tab:blue"]
    return {instance: palette[n % len(palette)] for n, instance in enumerate(instances)}


def _alert_spans(run: RunData) -> list[tuple[float, float]]:
    """(start, end) in seconds since t0 of the alerts that fired, when alerts.json holds their times."""
    spans = []
    for alert in run.alerts or []:
        start, end = alert.get("active_at"), alert.get("last_seen", alert.get("active_at"))
        if isinstance(start, int | float) and isinstance(end, int | float):
            spans.append((float(start) - run.timeline.t0, max(float(end), float(start) + 1) - run.timeline.t0))
    return spans


def _sum_series(series: list[PromSeries]) -> PromSeries:
    """The sum of the series at each time (a time missing from a series counts it as absent, not zero)."""
    if len(series) == 1:
        return series[0]
    columns = [pd.Series(s.values, index=s.times) for s in series]
    table = pd.concat([c[~c.index.duplicated()] for c in columns], axis=1)
    total = table.sum(axis=1, min_count=1).sort_index()
    return PromSeries(labels={}, times=total.index.to_numpy(dtype=np.float64), values=total.to_numpy(np.float64))


def _prom_line(run: RunData, series: PromSeries, scale: float = 1.0) -> tuple[FloatArray, FloatArray]:
    """A series' times in seconds since t0 and its values scaled, nan where it is not finite; thinned."""
    v = np.where(np.isfinite(series.values), series.values * scale, np.nan)
    return _thin(series.times - run.timeline.t0, v)


def _top(lines: Sequence[FloatArray]) -> float:
    """An axis' top: 15 % above the highest finite value, 1 when there is none above 0."""
    return max((float(np.nanmax(v)) for v in lines if np.isfinite(v).any()), default=0.0) * 1.15 or 1.0


def _dots(points: int) -> dict[str, Any]:
    """Sample markers for a sparse line (a short run's 5 s Prometheus samples), none for a dense one."""
    return {"marker": ".", "markersize": 3} if points <= DOTS_UP_TO else {}


def _thin(t: FloatArray, v: FloatArray, points: int = MAX_POINTS) -> tuple[FloatArray, FloatArray]:
    """At most `points` points: the means of equal buckets of consecutive points (nan ignored)."""
    if len(t) <= points:
        return t, v
    buckets = np.arange(len(t)) // math.ceil(len(t) / points)
    means = pd.DataFrame({"t": t, "v": v}).groupby(buckets).mean()
    return means["t"].to_numpy(dtype=np.float64), means["v"].to_numpy(dtype=np.float64)


def _busiest(frame: pd.DataFrame, n: int, include_delivery: bool = False) -> list[str]:
    """The `n` request labels with the most requests (the lag pseudo-request and, unless asked, delivery out)."""
    keep = ~frame["lag"] & (include_delivery | ~frame["delivery"])
    totals = frame[keep].groupby("label")["count"].sum()
    totals = totals[totals > 0].sort_values(ascending=False, kind="stable")
    return [str(label) for label in totals.index[:n]]


def _latency_axis(ax: Any, title: str, run: RunData) -> None:
    """A panel of latencies over time: log ms axis with labelled minor ticks, its title, the run's marks."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(LogFormatter())
    ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.5)))
    ax.set_ylabel("ms")
    ax.set_title(title, fontsize=10, loc="left")
    _decorate(ax, run)


def _decorate(ax: Any, run: RunData) -> None:
    """Warm-up shaded, stage starts dotted, end of the sends dashed, legend outside the data."""
    timeline = run.timeline
    ax.axvspan(0, timeline.warmup_end - timeline.t0, color="0.88", label="warm-up", zorder=0)
    for n, stage in enumerate(s for s in timeline.stages if s.start > timeline.t0):
        ax.axvline(stage.start - timeline.t0, color="0.35", linestyle=":", linewidth=1,
                   label="stage start" if n == 0 else None)
    ax.axvline(timeline.send_end - timeline.t0, color="0.35", linestyle="--", linewidth=1, label="send end")
    for n, (start, end) in enumerate(fault_spans(run)):
        ax.axvspan(start, end, color="tab:orange", alpha=0.18, label="fault" if n == 0 else None, zorder=0)
    ax.set_xlim(0, max(timeline.end - timeline.t0, BIN_SECONDS))
    ax.grid(True, linewidth=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def fault_spans(run: RunData) -> list[tuple[float, float]]:
    """(start, end) in seconds since t0 of each injected fault; one still in place at the end runs to the end."""
    t0 = run.timeline.t0
    spans = []
    for fault in run.faults or []:
        until = fault["end"].get("at")
        until = until if isinstance(until, int | float) else run.timeline.end
        spans.append((float(fault["begin"]["at"]) - t0, max(float(until), float(fault["begin"]["at"])) - t0))
    return spans


def _save(fig: Any, out_dir: Path, file: str, title: str) -> Plot:
    try:
        fig.tight_layout()
        fig.savefig(out_dir / file, dpi=100)
    finally:
        plt.close(fig)
    return Plot(file=file, title=title)
