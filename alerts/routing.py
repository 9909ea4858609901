"""What alerts/alertmanager.yml does with an alert, read in Python: the receiver its route sends it to (and that
route's group_wait), whether that receiver notifies anyone, and which inhibition rule mutes it given the other
alerts firing. The scenario runner uses it to know which notifications to wait for, the report to say why an
alert fired without one. `amtool config routes test` is the reference: tests/unit/test_alerts.py checks both
agree on its table of cases.

Covered: `matchers` (=, !=, =~, !~, anchored regexes as Alertmanager anchors them), the deprecated `match` and
`match_re`, nested routes with `continue`, the inherited `receiver`, `group_by`, `group_wait`, `group_interval`
and `repeat_interval`, and `inhibit_rules` with `source_matchers`/`target_matchers` (or `source_match[_re]`,
`target_match[_re]`) and `equal`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

CONFIG = Path(__file__).resolve().parent / "alertmanager.yml"
_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$')
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        have = labels.get(self.name, "")
        if self.op in ("=", "!="):
            return (have == self.value) == (self.op == "=")
        return (re.fullmatch(self.value, have) is not None) == (self.op == "=~")


def parse_matcher(text: str) -> Matcher:
    m = _MATCHER.match(text)
    if m is None:
        raise ValueError(f"not a matcher: {text!r}")
    name, op, value = m.groups()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].encode().decode("unicode_escape")
    return Matcher(name, op, value)


def _matchers(raw: Mapping[str, Any], prefix: str = "") -> list[Matcher]:
    out = [parse_matcher(text) for text in raw.get(f"{prefix}matchers") or []]
    out += [Matcher(k, "=", str(v)) for k, v in (raw.get(f"{prefix}match") or {}).items()]
    out += [Matcher(k, "=~", str(v)) for k, v in (raw.get(f"{prefix}match_re") or {}).items()]
    return out


def seconds(text: str | int | float) -> float:
    """A Prometheus duration (`10s`, `1h30m`) in seconds."""
    if isinstance(text, int | float):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


@dataclass(frozen=True)
class Route:
    receiver: str
    group_by: tuple[str, ...]
    group_wait: float
    group_interval: float
    repeat_interval: float
    matchers: tuple[Matcher, ...] = ()
    routes: tuple[Route, ...] = ()
    cont: bool = False

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)


def _route(raw: Mapping[str, Any], parent: Route | None) -> Route:
    inherit = parent or Route("", (), 30, 300, 14400)
    base = Route(
        receiver=str(raw.get("receiver") or inherit.receiver),
        group_by=tuple(raw["group_by"]) if "group_by" in raw else inherit.group_by,
        group_wait=seconds(raw["group_wait"]) if "group_wait" in raw else inherit.group_wait,
        group_interval=seconds(raw["group_interval"]) if "group_interval" in raw else inherit.group_interval,
        repeat_interval=seconds(raw["repeat_interval"]) if "repeat_interval" in raw else inherit.repeat_interval,
        matchers=tuple(_matchers(raw)), cont=bool(raw.get("continue", False)))
    children = tuple(_route(child, base) for child in raw.get("routes") or [])
    return Route(base.receiver, base.group_by, base.group_wait, base.group_interval, base.repeat_interval,
                 base.matchers, children, base.cont)


@dataclass(frozen=True)
class Inhibition:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]
    text: str  # as written, for the report

    def mutes(self, target: Mapping[str, str], source: Mapping[str, str]) -> bool:
        return (all(m.matches(target) for m in self.target) and all(m.matches(source) for m in self.source)
                and all(target.get(name, "") == source.get(name, "") for name in self.equal))


@dataclass(frozen=True)
class Config:
    root: Route
    inhibitions: tuple[Inhibition, ...]
    notifying: frozenset[str] = field(default_factory=frozenset)  # receivers with at least one integration

    def routes(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes an alert ends on (one unless a matching route says `continue`), as Alertmanager walks
        the tree: depth first, the first matching child, the parent when no child matches."""
        return _walk(self.root, labels) or [self.root]

    def receivers(self, labels: Mapping[str, str]) -> list[str]:
        return [r.receiver for r in self.routes(labels)]

    def notifies(self, receiver: str) -> bool:
        return receiver in self.notifying

    def inhibited_by(self, labels: Mapping[str, str],
                     others: Iterable[Mapping[str, str]]) -> tuple[Inhibition, Mapping[str, str]] | None:
        """The first inhibition rule and source alert (among `others`, firing at the same time) that mute it."""
        for other in others:
            if dict(other) == dict(labels):
                continue   # an alert does not inhibit itself
            for rule in self.inhibitions:
                if rule.mutes(labels, other):
                    return rule, other
        return None


def _walk(route: Route, labels: Mapping[str, str]) -> list[Route]:
    if not route.matches(labels):
        return []
    found: list[Route] = []
    for child in route.routes:
        matched = _walk(child, labels)
        if matched:
            found += matched
            if not child.cont:
                break
    return found or [route]


def parse(raw: Mapping[str, Any]) -> Config:
    inhibitions = []
    for rule in raw.get("inhibit_rules") or []:
        source, target = _matchers(rule, "source_"), _matchers(rule, "target_")
        text = (" and ".join(f"{m.name}{m.op}{m.value!r}" for m in source) + " mutes "
                + " and ".join(f"{m.name}{m.op}{m.value!r}" for m in target)
                + (f" with the same {', '.join(rule.get('equal') or [])}" if rule.get("equal") else ""))
        inhibitions.append(Inhibition(tuple(source), tuple(target), tuple(rule.get("equal") or []), text))
    notifying = frozenset(str(r["name"]) for r in raw.get("receivers") or []
                          if any(key.endswith("_configs") and r[key] for key in r))
    return Config(_route(raw["route"], None), tuple(inhibitions), notifying)


@cache
def load(path: Path = CONFIG) -> Config:
    return parse(yaml.safe_load(Path(path).read_text()))
