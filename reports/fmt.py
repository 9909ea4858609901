"""Human formatting of summary figures, shared by the HTML report and the command line."""

from __future__ import annotations

from datetime import UTC, datetime

MISSING = "—"


def ms(seconds: float | None) -> str:
    """Seconds as milliseconds with about three significant digits."""
    if seconds is None:
        return MISSING
    value = seconds * 1000
    if value < 10:
        return f"{value:.2f}"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def number(value: float | None, digits: int = 1) -> str:
    if value is None:
        return MISSING
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def slo_figure(kind: str, value: float | None) -> str:
    """An SLO's target or value in the unit of its kind."""
    if value is None:
        return MISSING
    if kind == "latency":
        return f"{ms(value)} ms"
    if kind == "error_ratio":
        return f"{value * 100:.4g}%"
    if kind == "checker":
        return number(value)
    if kind == "recovery":
        return f"{value:.3g} s"
    if kind == "notification":
        return f"received at +{value:.0f} s"
    return f"{value:.4g}"


def timestamp(epoch: float | None) -> str:
    if epoch is None:
        return MISSING
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return MISSING
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
