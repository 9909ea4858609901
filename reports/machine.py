"""Where the machine's CPU went: machine.jsonl (the runner's 2 s samples of CPU by part) over the send window.

On a machine shared by the generator and the stack, a run is bounded by the machine when its busy cores reach its
CPU count: no part had the cores it could have used, and a part's figures (an instance's latency, the generator's
schedule lag) are those of a share of the machine. `machine_summary` says so, with each part's cores; the report
shows them as a table and a stacked plot (`machine.png`, reports/plots.py).

Resolution: one sample per ~2 s interval, counted for the share of it inside the window (as the histogram
records are); a part's peak is its busiest interval.
"""

from __future__ import annotations

from typing import Any

from reports.rundata import RunData, Window

AT_CAPACITY = 0.9   # busy cores at this share of the CPU count or more: the machine bounded the run
ORDER = ("load generator", "service", "postgres", "redis", "nginx", "monitoring", "other")


def rank(part: str) -> tuple[int, str]:
    return next((n for n, name in enumerate(ORDER) if part.startswith(name)), len(ORDER)), part


def machine_summary(run: RunData, window: Window | None = None) -> dict[str, Any] | None:
    """{"cpus", "busy_cores", "busy_peak", "at_capacity", "parts": {part: {"cores", "peak", "share"}}, "samples"}
    over `window` (the send window by default); None without samples there."""
    window = window or run.send_window
    samples = [s for s in run.machine_samples or [] if _interval(s).overlap(window) > 0]
    if not samples:
        return None
    weights = [_interval(s).overlap(window) for s in samples]
    covered = sum(weights)
    if covered <= 0:
        return None
    cpus = max(int(s.get("cpus") or 1) for s in samples)
    busy = sum(float(s.get("busy") or 0.0) * w for s, w in zip(samples, weights, strict=True)) / covered
    parts: dict[str, dict[str, float]] = {}
    for name in sorted({p for s in samples for p in (s.get("cores") or {})}, key=rank):
        values = [float((s.get("cores") or {}).get(name) or 0.0) for s in samples]
        mean = sum(v * w for v, w in zip(values, weights, strict=True)) / covered
        parts[name] = {"cores": round(mean, 3), "peak": round(max(values), 3),
                       "share": round(mean / cpus, 3)}
    return {"cpus": cpus, "busy_cores": round(busy, 3),
            "busy_peak": round(max(float(s.get("busy") or 0.0) for s in samples), 3),
            "at_capacity": busy >= AT_CAPACITY * cpus, "parts": parts, "samples": len(samples),
            "covered_seconds": round(covered, 1), "window": window.as_dict()}


def bound_text(summary: dict[str, Any]) -> str:
    """One sentence: was the run bounded by the machine, and which parts held its cores."""
    parts = summary["parts"]
    top = sorted(parts.items(), key=lambda item: -item[1]["cores"])[:4]
    held = ", ".join(f"{name} {values['cores']:.2f}" for name, values in top)
    cpus, busy = summary["cpus"], summary["busy_cores"]
    if summary["at_capacity"]:
        return (f"The machine was at its CPU: {busy:.2f} of {cpus} cores busy over the send window ({held}). "
                f"No part had the cores it could have used; what this run measured is bounded by the shared "
                f"machine, not by any one part alone.")
    return f"{busy:.2f} of {cpus} cores busy over the send window ({held}): the machine had CPU to spare."


def _interval(sample: dict[str, Any]) -> Window:
    at = float(sample.get("at") or 0.0)
    return Window(at - float(sample.get("interval") or 0.0), at)
