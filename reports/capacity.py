"""Capacity analysis of step-load runs: each plateau's throughput and latency, the knee, and a Universal
Scalability Law fit.

Each stage is read on its plateau (after its settle time). Throughput X is the rate of successful sends
(`message:send`), or of all REST requests in a run without sends. The USL describes throughput as a function of
concurrency N:

    X(N) = lambda * N / (1 + sigma * (N - 1) + kappa * N * (N - 1))

lambda is the throughput of one unit of concurrency, sigma the share of work that serialises (contention), kappa
the cost of keeping shared state coherent (crosstalk), which makes throughput fall past a peak at
N* = sqrt((1 - sigma) / kappa); when kappa is not told apart from 0, throughput levels off towards lambda / sigma
and that ceiling is the prediction. The runs' load is open (a target rate, not a number of users), so N is measured, not
set: by Little's law the mean number of requests in flight is their rate times their mean latency, summed over the
requests that carry the throughput. Below saturation N grows with the rate; near it latency, and so N, grows
while X stops growing, which is what sigma and kappa measure.

The fit is least squares (scipy's `curve_fit`, parameters bounded to sigma in [0, 1], kappa >= 0, lambda > 0).
It needs at least four plateaus for three parameters; it is called poor when R^2 < 0.9, when sigma's or lambda's
standard error exceeds its value, or when the peak lies far beyond the measured concurrencies (an extrapolation).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import OptimizeWarning, curve_fit

from reports.hist import mean, merge, percentile
from reports.rundata import RunData, Series, Stage, rate

MIN_POINTS = 4
POOR_R2 = 0.9
EXTRAPOLATION = 2.0  # a peak beyond this multiple of the largest measured concurrency is an extrapolation
CAPACITY_PNG = "capacity.png"


def usl(n: npt.ArrayLike, sigma: float, kappa: float, lam: float) -> npt.NDArray[np.float64]:
    """Throughput at concurrency n."""
    n = np.asarray(n, dtype=np.float64)
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Fit:
    sigma: float
    kappa: float
    lam: float
    stderr: tuple[float, float, float]
    r2: float
    points: int

    @property
    def kappa_measured(self) -> bool:
        """Whether crosstalk is told apart from zero (its standard error below its value)."""
        return self.kappa > 0 and self.stderr[1] < self.kappa

    @property
    def sigma_measured(self) -> bool:
        """Whether contention is told apart from zero."""
        return self.sigma > 1e-6 and self.stderr[0] < self.sigma

    @property
    def peak_concurrency(self) -> float | None:
        """N*, where throughput is highest; None when kappa is not told apart from 0 (throughput levels off)."""
        return math.sqrt((1 - self.sigma) / self.kappa) if self.kappa_measured else None

    @property
    def peak_throughput(self) -> float:
        """X(N*), or the ceiling lambda / sigma approached without a peak (inf when no contention was measured)."""
        n = self.peak_concurrency
        if n is not None:
            return float(usl(n, self.sigma, self.kappa, self.lam))
        return self.lam / self.sigma if self.sigma_measured else math.inf

    def problems(self, max_measured: float) -> list[str]:
        """Why the fit should not be trusted, in words; empty when it can be."""
        out = []
        if self.r2 < POOR_R2:
            out.append(f"R² is {self.r2:.2f} (< {POOR_R2}): the model does not follow the measured points")
        for name, value, err in (("sigma", self.sigma, self.stderr[0]), ("lambda", self.lam, self.stderr[2])):
            if value > 0 and err > value:
                out.append(f"{name} = {value:.4g} ± {err:.2g}: the data does not pin it down")
        peak = self.peak_concurrency
        if peak is not None and peak > EXTRAPOLATION * max_measured:
            out.append(f"the peak (N = {peak:.3g}) lies far beyond the largest measured concurrency "
                       f"({max_measured:.3g}): it is an extrapolation")
        if peak is None and not self.sigma_measured:
            out.append("neither contention nor crosstalk was measured: the runs stayed in the linear range, so no "
                       "limit can be predicted")
        return out

    def notes(self) -> list[str]:
        """What the fit says beyond its numbers."""
        if self.peak_concurrency is None and self.sigma_measured:
            return ["kappa is not told apart from 0, so the law was fitted with kappa = 0: throughput levels off "
                    f"towards lambda/sigma = {self.lam / self.sigma:.4g}/s instead of peaking"]
        return []

    def as_dict(self, max_measured: float) -> dict[str, Any]:
        problems = self.problems(max_measured)
        peak_x = self.peak_throughput
        return {"sigma": self.sigma, "kappa": self.kappa, "lambda": self.lam,
                "stderr": {"sigma": self.stderr[0], "kappa": self.stderr[1], "lambda": self.stderr[2]},
                "r2": round(self.r2, 4), "points": self.points,
                "peak_concurrency": self.peak_concurrency,
                "peak_throughput": None if math.isinf(peak_x) else round(peak_x, 3),
                "quality": "poor" if problems else "good", "problems": problems, "notes": self.notes()}


class FitError(ValueError):
    """The fit could not be made: the message says why."""


def fit_usl(n: npt.ArrayLike, x: npt.ArrayLike) -> Fit:
    """Least-squares USL fit of throughput `x` at concurrency `n`; raises FitError with fewer than four points
    or when the optimiser does not converge."""
    n_arr, x_arr = np.asarray(n, dtype=np.float64), np.asarray(x, dtype=np.float64)
    keep = (n_arr > 0) & (x_arr > 0) & np.isfinite(n_arr) & np.isfinite(x_arr)
    n_arr, x_arr = n_arr[keep], x_arr[keep]
    if len(n_arr) < MIN_POINTS:
        raise FitError(f"{len(n_arr)} plateaus with throughput: a three-parameter fit needs at least {MIN_POINTS}")
    first = int(np.argmin(n_arr))
    lam0 = x_arr[first] / n_arr[first]
    fit = _least_squares(n_arr, x_arr, lam0, with_kappa=True)
    if not fit.kappa_measured:
        # kappa is not told apart from 0: the two-parameter law (kappa = 0) gives the curve and its ceiling
        fit = _least_squares(n_arr, x_arr, lam0, with_kappa=False)
    return fit


def _least_squares(n: npt.NDArray[np.float64], x: npt.NDArray[np.float64], lam0: float, *, with_kappa: bool) -> Fit:
    def model(n: npt.NDArray[np.float64], *params: float) -> npt.NDArray[np.float64]:
        return usl(n, params[0], params[1] if with_kappa else 0.0, params[-1])

    p0, low, high = ([0.01, 0.0001, lam0], [0.0, 0.0, 0.0], [1.0, np.inf, np.inf]) if with_kappa else (
        [0.01, lam0], [0.0, 0.0], [1.0, np.inf])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            params, cov = curve_fit(model, n, x, p0=p0, bounds=(low, high), maxfev=20_000)
    except (RuntimeError, ValueError) as exc:
        raise FitError(f"the fit did not converge: {exc}") from exc
    residual = x - model(n, *params)
    total = float(np.sum((x - x.mean()) ** 2))
    r2 = 1 - float(np.sum(residual**2)) / total if total > 0 else 0.0
    errors = [float(v) if np.isfinite(v) else math.inf for v in np.sqrt(np.abs(np.diag(cov)))]
    if not with_kappa:
        params, errors = np.array([params[0], 0.0, params[1]]), [errors[0], 0.0, errors[1]]
    return Fit(sigma=float(params[0]), kappa=float(params[1]), lam=float(params[2]),
               stderr=(errors[0], errors[1], errors[2]), r2=r2, points=len(n))


# --- a run's plateaus -----------------------------------------------------------------------------------------


def carriers(run: RunData) -> list[Series]:
    """The requests whose rate is the run's throughput: message:send when it sends, else every REST request."""
    sends = [s for s in run.requests() if s.name == "message:send"]
    if sends and any(st.messages_per_second > 0 for st in run.timeline.stages):
        return sends
    return [s for s in run.requests() if s.method in ("GET", "POST", "PUT", "PATCH", "DELETE")]


def plateau(run: RunData, stage: Stage, stage_summary: dict[str, Any], series: list[Series]) -> dict[str, Any]:
    """Throughput, latency and concurrency (Little's law) of one stage's plateau."""
    window = stage.plateau
    records = [r for s in series for r in s.within(window)]
    histogram = merge(r.counts for r in records)
    throughput = rate((replace(r, count=r.count - r.failures) for s in series for r in s.records), window)
    concurrency = 0.0
    for s in series:
        mean_s = mean(merge(r.counts for r in s.within(window)))
        per_second = rate(s.records, window)
        if mean_s is not None and per_second is not None:
            concurrency += per_second * mean_s
    delivery = [r for s in run.series if s.is_delivery for r in s.within(window)]
    delivery_histogram = merge(r.counts for r in delivery)
    return {
        "stage": stage.index, "target": stage.messages_per_second,
        "throughput": None if throughput is None else round(throughput, 3),
        "concurrency": round(concurrency, 4),
        "p50": percentile(histogram, 50), "p99": percentile(histogram, 99),
        "delivery_p99": percentile(delivery_histogram, 99),
        "passed": stage_summary["passed"],
        "breached": [s["name"] for s in stage_summary["slos"] if not s["passed"]],
    }


def analyse(run: RunData, stages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The capacity analysis of a step-load run (two stages or more); None for a single-stage run."""
    if len(run.timeline.stages) < 2:
        return None
    series = carriers(run)
    by_index = {s["index"]: s for s in stages}
    plateaus = [plateau(run, stage, by_index[stage.index], series) for stage in run.timeline.stages
                if stage.index in by_index]
    knee = next((p for p in plateaus if not p["passed"]), None)
    result: dict[str, Any] = {
        "throughput_of": sorted({s.name for s in series}) if len(series) <= 3 else "REST requests",
        "plateaus": plateaus,
        "knee": None if knee is None else {"stage": knee["stage"], "target": knee["target"],
                                           "breached": knee["breached"]},
        "fit": None,
    }
    points = [(p["concurrency"], p["throughput"]) for p in plateaus if p["throughput"]]
    try:
        fit = fit_usl([n for n, _ in points], [x for _, x in points])
        result["fit"] = fit.as_dict(max((n for n, _ in points), default=0.0))
    except FitError as exc:
        result["fit_error"] = str(exc)
    return result


def write_plot(analysis: dict[str, Any], out_dir: Path) -> bool:
    """capacity.png: measured throughput against concurrency with the USL curve and its peak, and each plateau's
    p99 against its throughput; False (nothing written) without plateaus."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    points = [p for p in analysis["plateaus"] if p["throughput"]]
    if not points:
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    try:
        n = np.array([p["concurrency"] for p in points])
        x = np.array([p["throughput"] for p in points])
        colours = ["tab:blue" if p["passed"] else "tab:red" for p in points]
        left.scatter(n, x, c=colours, zorder=3, label="plateaus (red: SLO breached)")
        fit = analysis.get("fit")
        if fit:
            peak = fit["peak_concurrency"]
            top = max(float(n.max()) * 1.3, min(peak or 0.0, float(n.max()) * 3))
            grid = np.linspace(0, top, 200)[1:]
            quality = "" if fit["quality"] == "good" else " (poor fit)"
            left.plot(grid, usl(grid, fit["sigma"], fit["kappa"], fit["lambda"]), color="0.3",
                      label=f"USL σ={fit['sigma']:.3g} κ={fit['kappa']:.3g} λ={fit['lambda']:.4g}{quality}")
            if peak is not None and fit["peak_throughput"] is not None and peak <= top:
                left.axvline(peak, color="tab:purple", linestyle=":", linewidth=1,
                             label=f"peak {fit['peak_throughput']:.4g}/s at N={peak:.3g}")
            elif peak is None and fit["peak_throughput"] is not None:
                left.axhline(fit["peak_throughput"], color="tab:purple", linestyle=":", linewidth=1,
                             label=f"ceiling λ/σ = {fit['peak_throughput']:.4g}/s")
        left.set_xlabel("concurrency N (requests in flight, Little's law)")
        left.set_ylabel("throughput, per second")
        left.set_title("Universal Scalability Law", fontsize=10, loc="left")
        left.grid(True, linewidth=0.3)
        left.legend(fontsize=7, loc="lower right")
        with_p99 = [p for p in points if p["p99"] is not None]
        right.plot([p["throughput"] for p in with_p99], [p["p99"] * 1000 for p in with_p99], marker="o",
                   label="p99")
        right.plot([p["throughput"] for p in with_p99], [(p["p50"] or 0) * 1000 for p in with_p99], marker=".",
                   label="p50")
        knee = analysis.get("knee")
        if knee is not None:
            right.axvline(knee["target"], color="tab:red", linestyle="--", linewidth=1,
                          label=f"knee: stage {knee['stage']} ({knee['target']:g}/s) breached")
        right.set_yscale("log")
        right.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        right.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        right.yaxis.set_minor_formatter(NullFormatter())
        right.set_xlabel("throughput, per second")
        right.set_ylabel("latency, ms")
        right.set_title("Latency per plateau", fontsize=10, loc="left")
        right.grid(True, linewidth=0.3)
        right.legend(fontsize=7, loc="upper left")
        fig.tight_layout()
        fig.savefig(out_dir / CAPACITY_PNG, dpi=100)
    finally:
        plt.close(fig)
    return True
