"""House style over grafanalib 0.7.1: current panel types only, one `${datasource}` variable, job/instance
variables, units and descriptions on every panel, explicit layout, and none of grafanalib's stale defaults
(`intervalFactor: 2`, `step: 10`, `maxDataPoints: 100`, `editable: true`, the old heatmap options)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grafanalib.core as g
from grafanalib._gen import DashboardEncoder

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RUNBOOKS = "https://chatload.example.com/docs/runbooks.md"  # the same base as the alert rules' runbook_url
TAG = "chatload"
WIDTH = 24
# Keys grafanalib writes that current Grafana ignores or that break imports.
_PANEL_DROP = ("cacheTimeout", "error", "height", "hideTimeOverride", "minSpan", "span", "editable",
               "maxDataPoints", "repeat", "repeatDirection", "maxPerRow", "timeFrom", "timeShift", "interval")
_TARGET_DROP = ("intervalFactor", "step", "target", "metric", "query", "interval")
_LEGACY_HEATMAP = ("cards", "color", "dataFormat", "heatmap", "hideZeroBuckets", "highlightCards", "legend",
                   "reverseYBuckets", "tooltip", "xAxis", "yAxis", "xBucketNumber", "xBucketSize", "yBucketBound",
                   "yBucketNumber", "yBucketSize")


@dataclass(frozen=True)
class Q:
    """One PromQL query of a panel: `legend` is Grafana's legend format; `instant` for tables and stats."""

    expr: str
    legend: str = ""
    instant: bool = False


@dataclass
class Panel:
    """A panel before layout: the grafanalib object, its size, and what the house style adds afterwards."""

    obj: Any
    w: int
    h: int
    unit: str
    extra: dict[str, Any] = field(default_factory=dict)


def _targets(queries: Sequence[Q], fmt: str = "time_series") -> list[g.Target]:
    return [g.Target(expr=q.expr, legendFormat=q.legend, refId=chr(ord("A") + i), instant=q.instant, format=fmt)
            for i, q in enumerate(queries)]


def timeseries(title: str, description: str, unit: str, queries: Sequence[Q], *, w: int = 12, h: int = 8,
               stack: bool = False, lines: Sequence[tuple[float, str]] = (), log: bool = False,
               min_value: float | None = 0) -> Panel:
    """`lines` draws thresholds as dashed lines (an SLO target, a burn-rate tier)."""
    obj = g.TimeSeries(title=title, description=description, dataSource=DATASOURCE, targets=_targets(queries),
                       unit=unit, fillOpacity=10 if stack else 0, stacking={"mode": "normal" if stack else "none"},
                       legendDisplayMode="table", legendPlacement="right" if w >= 16 else "bottom",
                       legendCalcs=["mean", "max", "lastNotNull"], tooltipMode="multi", showPoints="never",
                       scaleDistributionType="log" if log else "linear", scaleDistributionLog=10 if log else 2,
                       thresholdsStyleMode="dashed" if lines else "off")
    extra: dict[str, Any] = {"min": min_value}
    if lines:
        extra["thresholds"] = [(None, "transparent"), *lines]
    return Panel(obj, w, h, unit, extra)


def stat(title: str, description: str, unit: str, queries: Sequence[Q], *, w: int = 6, h: int = 4,
         steps: Sequence[tuple[float | None, str]] = ((None, "green"),), decimals: int | None = None,
         graph: bool = True) -> Panel:
    """`steps`: (from value, colour), the first from minus infinity (None)."""
    obj = g.Stat(title=title, description=description, dataSource=DATASOURCE, targets=_targets(queries),
                 format=unit, reduceCalc="lastNotNull", graphMode="area" if graph else "none",
                 colorMode="value", textMode="value_and_name" if len(queries) > 1 or "{{" in queries[0].legend
                 else "value", decimals=decimals)
    return Panel(obj, w, h, unit, {"thresholds": list(steps)})


def gauge(title: str, description: str, unit: str, queries: Sequence[Q], *, w: int = 6, h: int = 6,
          maximum: float = 1, steps: Sequence[tuple[float | None, str]] = ((None, "green"),)) -> Panel:
    obj = g.GaugePanel(title=title, description=description, dataSource=DATASOURCE, targets=_targets(queries),
                       format=unit, min=0, max=maximum, calc="lastNotNull")
    return Panel(obj, w, h, unit, {"thresholds": list(steps), "min": 0, "max": maximum})


def table(title: str, description: str, unit: str, queries: Sequence[Q], *, w: int = 24, h: int = 8,
          hide: Sequence[str] = ("Time",)) -> Panel:
    """Instant queries in table format, merged into one row per label set: each query aggregates to the same
    labels, and its value column (`Value #A`...) is renamed to its legend."""
    renames = {f"Value #{chr(ord('A') + i)}": q.legend for i, q in enumerate(queries) if q.legend}
    organize = {"excludeByName": dict.fromkeys(hide, True), "renameByName": renames}
    obj = g.Table(title=title, description=description, dataSource=DATASOURCE,
                  targets=_targets([Q(q.expr, q.legend, instant=True) for q in queries], fmt="table"), unit=unit,
                  transformations=[{"id": "merge", "options": {}}, {"id": "organize", "options": organize}])
    return Panel(obj, w, h, unit)


def heatmap(title: str, description: str, unit: str, query: Q, *, w: int = 12, h: int = 8) -> Panel:
    """A histogram's bucket increases per interval (`sum by (le) (increase(..._bucket[...]))`)."""
    obj = g.Heatmap(title=title, description=description, dataSource=DATASOURCE,
                    targets=_targets([query], fmt="heatmap"))
    options = {"calculate": False, "cellGap": 1, "yAxis": {"axisPlacement": "left", "unit": unit},
               "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64, "exponent": 0.5, "fill": "dark-orange",
                         "scale": "exponential", "reverse": False},
               "rowsFrame": {"layout": "auto"}, "tooltip": {"mode": "single", "yHistogram": True},
               "legend": {"show": True}, "exemplars": {"color": "rgba(255,0,255,0.7)"},
               "filterValues": {"le": 1e-9}, "cellValues": {"unit": "short"}}
    return Panel(obj, w, h, unit, {"options": options})


def row(title: str) -> Panel:
    return Panel(g.RowPanel(title=title, collapsed=False), WIDTH, 1, "")


def _layout(panels: Iterable[Panel]) -> list[Panel]:
    """Left to right, wrapping at the grid's width; a row header starts a new line."""
    x = y = line_h = 0
    placed = []
    for p in panels:
        if isinstance(p.obj, g.RowPanel) or x + p.w > WIDTH:
            x, y, line_h = 0, y + line_h, 0
        p.obj.gridPos = g.GridPos(h=p.h, w=p.w, x=x, y=y)
        x, line_h = x + p.w, max(line_h, p.h)
        placed.append(p)
    return placed


def _steps(steps: Sequence[tuple[float | None, str]]) -> list[dict[str, Any]]:
    return [{"color": color, "value": value} for value, color in steps]


def _finish_panel(p: Panel, data: dict[str, Any]) -> dict[str, Any]:
    for key in _PANEL_DROP:
        data.pop(key, None)
    if data["type"] == "row":
        data.pop("datasource", None)
        data["panels"], data["targets"] = [], []
        return data
    data["datasource"] = DATASOURCE
    for target in data["targets"]:
        for key in _TARGET_DROP:
            target.pop(key, None)
        target["datasource"] = DATASOURCE
        target["editorMode"] = "code"
        target["range"] = not target["instant"]
    defaults = data.setdefault("fieldConfig", {"defaults": {}, "overrides": []}).setdefault("defaults", {})
    defaults["unit"] = p.unit
    for key in ("min", "max"):
        if key in p.extra:
            defaults[key] = p.extra[key]
    if data["type"] in ("stat", "gauge", "bargauge"):
        defaults["color"] = {"mode": "thresholds"}
    if "thresholds" in p.extra:
        defaults["thresholds"] = {"mode": "absolute", "steps": _steps(p.extra["thresholds"])}
    elif not defaults.get("thresholds", {}).get("steps"):
        defaults["thresholds"] = {"mode": "absolute", "steps": [{"color": "green", "value": None}]}
    if data["type"] == "heatmap":
        for key in _LEGACY_HEATMAP:
            data.pop(key, None)
        data["options"] = p.extra["options"]
    return data


def board(*, title: str, uid: str, description: str, panels: Sequence[Panel],
              variables: Sequence[g.Template] = (), links: Sequence[g.DashboardLink] = ()) -> dict[str, Any]:
    """The dashboard's JSON as Grafana stores it (no `__inputs`: the datasource is a variable)."""
    placed = _layout(panels)
    board = g.Dashboard(
        title=title, uid=uid, description=description, tags=[TAG], editable=False, refresh="30s",
        timezone="browser", graphTooltip=1, time=g.Time("now-1h", "now"), panels=[p.obj for p in placed],
        templating=g.Templating([datasource_variable(), *variables]),
        links=[*links, g.DashboardLink(title="Runbooks", uri=RUNBOOKS, type="link", icon="doc", targetBlank=True),
               g.DashboardLink(title="Chat dashboards", tags=[TAG], type="dashboards", asDropdown=True,
                               includeVars=False, keepTime=True)],
    ).auto_panel_ids()
    data: dict[str, Any] = json.loads(json.dumps(board.to_json_data(), cls=DashboardEncoder))
    data.pop("__inputs", None)
    data.pop("rows", None)
    data["schemaVersion"] = 39
    data["panels"] = [_finish_panel(p, d) for p, d in zip(placed, data["panels"], strict=True)]
    for variable in data["templating"]["list"]:
        if variable["includeAll"] and variable["current"]["text"] == "All":
            variable["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return data


def datasource_variable() -> g.Template:
    return g.Template(name="datasource", label="Data source", query="prometheus", type="datasource",
                      default="Prometheus", hide=0)


def query_variable(name: str, label: str, query: str, *, default: str = "", multi: bool = False,
                   regex: str = "") -> g.Template:
    """A label_values() variable; a multi-value one offers All, which matches every value (`.*`)."""
    return g.Template(name=name, label=label, query=query, dataSource=DATASOURCE, default=default or None,
                      multi=multi, includeAll=multi, allValue=".*" if multi else None, refresh=2, sort=1,
                      regex=regex or None)


def job_variable(default: str, metric: str) -> g.Template:
    return query_variable("job", "Job", f"label_values({metric}, job)", default=default)


def instance_variable(metric: str) -> g.Template:
    return query_variable("instance", "Instance", f'label_values({metric}{{job="$job"}}, instance)',
                          default="All", multi=True)


def runbook(alert: str) -> g.DashboardLink:
    """A dashboard link to the runbook section of one alert."""
    return g.DashboardLink(title=f"Runbook: {alert}", uri=f"{RUNBOOKS}#{alert.lower()}", type="link",
                           icon="doc", targetBlank=True)


# PromQL fragments shared by the service dashboards
SEL = 'job="$job",instance=~"$instance"'
API = f'{SEL},route=~"/messaging/.*"'
RATE = "[$__rate_interval]"


def quantile(q: float, metric: str, selector: str, by: str = "") -> str:
    """histogram_quantile over `metric`'s buckets, summed by le (and `by`) first."""
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{{{selector}}}{RATE})))"
