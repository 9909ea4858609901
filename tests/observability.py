"""What the dashboard and alert tests share: the generated dashboards, their queries with Grafana's variables
substituted as Grafana would, and the rule files."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "dashboards" / "json"
RULES = ROOT / "alerts" / "rules"
SCRAPE_INTERVAL_S = 5  # the live test's, and the provisioned datasource's timeInterval
RATE_FUNCTIONS = ("rate", "irate", "increase")


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    expr: str  # as written in the dashboard
    instant: bool

    def substituted(self, variables: dict[str, str]) -> str:
        """Grafana's built-ins for a 5 s scrape interval and a 5 s step; the dashboard's variables by value."""
        builtins = {"__rate_interval": f"{4 * SCRAPE_INTERVAL_S}s", "__interval": f"{SCRAPE_INTERVAL_S}s",
                    "__range": "5m"}
        values = {**builtins, **variables}
        return re.sub(r"\$\{?(\w+)\}?", lambda m: values[m.group(1)], self.expr)


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(board: dict[str, Any]) -> Iterator[Query]:
    for panel in panels(board):
        for target in panel.get("targets", []):
            yield Query(board["uid"], panel["title"], target["expr"], bool(target.get("instant")))


def default_values(board: dict[str, Any]) -> dict[str, str]:
    """Each variable's default: All is `.*` (the variables' allValue)."""
    out = {}
    for variable in board["templating"]["list"]:
        value = variable["current"]["value"]
        value = value[0] if isinstance(value, list) else value
        out[variable["name"]] = variable["allValue"] if value == "$__all" else value
    return out


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in sorted(RULES.glob("*.yml")):
        groups += yaml.safe_load(path.read_text())["groups"]
    return groups


def alerts() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def rate_arguments(expr: str) -> Iterator[tuple[str, str, str]]:
    """(function, metric, range) for every rate()/irate()/increase() over a plain selector."""
    pattern = r"\b(" + "|".join(RATE_FUNCTIONS) + r")\(\s*([a-zA-Z_:][\w:]*)\s*(\{[^}]*\})?\s*\[([^\]]+)\]"
    for m in re.finditer(pattern, expr):
        yield m.group(1), m.group(2), m.group(4)


def calls_without_selector(expr: str) -> list[str]:
    """rate()-family calls whose argument is not a plain selector with a range (a subquery, an expression)."""
    found = len(re.findall(r"\b(?:" + "|".join(RATE_FUNCTIONS) + r")\(", expr))
    return [expr] if found != len(list(rate_arguments(expr))) else []
