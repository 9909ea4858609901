"""The dashboards as an SRE imports them: generated JSON current, the house conventions (one datasource variable,
job/instance variables, `$__rate_interval`, units, descriptions, stable uids, current panel types, explicit
non-overlapping layout, runbook links), every query valid PromQL, and the Grafana provisioning files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability import (
    ROOT,
    SCRAPE_INTERVAL_S,
    calls_without_selector,
    dashboards,
    default_values,
    panels,
    queries,
    rate_arguments,
)

BOARDS = dashboards()
CURRENT_TYPES = {"timeseries", "stat", "gauge", "bargauge", "table", "heatmap", "row"}
WANTED = {"slo-overview", "http", "socketio", "dependencies", "runtime", "loadtest"}


def test_the_committed_json_is_what_the_code_generates() -> None:
    done = subprocess.run([sys.executable, "-m", "dashboards", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_every_dashboard_the_issue_lists_exists() -> None:
    assert set(BOARDS) >= WANTED
    assert len({b["uid"] for b in BOARDS.values()}) == len(BOARDS)
    assert len({b["title"] for b in BOARDS.values()}) == len(BOARDS)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_one_datasource_variable_used_everywhere(name: str) -> None:
    board = BOARDS[name]
    text = (ROOT / "dashboards" / "json" / f"{name}.json").read_text()
    assert "__inputs" not in board and "${DS_" not in text
    sources = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert [(v["name"], v["query"]) for v in sources] == [("datasource", "prometheus")]
    wanted = {"type": "prometheus", "uid": "${datasource}"}
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == wanted, panel["title"]
        assert all(t["datasource"] == wanted for t in panel["targets"]), panel["title"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == wanted, variable["name"]


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_job_and_instance_variables(name: str) -> None:
    variables = {v["name"]: v for v in BOARDS[name]["templating"]["list"]}
    assert {"datasource", "job", "instance"} <= set(variables)
    assert variables["instance"]["includeAll"] and variables["instance"]["allValue"] == ".*"
    used = " ".join(q.expr for q in queries(BOARDS[name]))
    assert "$job" in used and "$instance" in used


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_range_function_uses_rate_interval(name: str) -> None:
    for query in queries(BOARDS[name]):
        assert not calls_without_selector(query.expr), query
        for function, metric, window in rate_arguments(query.expr):
            assert window == "$__rate_interval", (query.panel, function, metric, window)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_panels_have_units_descriptions_current_types_and_no_stale_defaults(name: str) -> None:
    for panel in panels(BOARDS[name]):
        assert panel["type"] in CURRENT_TYPES, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["description"] and panel["description"].endswith("."), panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        assert "maxDataPoints" not in panel and "span" not in panel, panel["title"]
        for target in panel["targets"]:
            assert "intervalFactor" not in target and "step" not in target, panel["title"]
            assert target["expr"].strip() and target["refId"], panel["title"]


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_uids_are_stable_and_short(name: str) -> None:
    uid = BOARDS[name]["uid"]
    assert len(uid) <= 40 and uid.startswith("chat-") and uid == uid.lower()
    assert not BOARDS[name]["editable"]


def _cells(panel: dict[str, Any]) -> set[tuple[int, int]]:
    pos = panel["gridPos"]
    return {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_layout_is_explicit_inside_the_grid_and_without_overlaps(name: str) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in BOARDS[name]["panels"]:
        pos = panel["gridPos"]
        assert set(pos) == {"h", "w", "x", "y"} and pos["w"] > 0 and pos["h"] > 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        cells = _cells(panel)
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_runbook_links_point_at_sections_that_exist(name: str) -> None:
    runbooks = (ROOT / "docs" / "runbooks.md").read_text()
    headings = {line[3:].strip().lower() for line in runbooks.splitlines() if line.startswith("## ")}
    links = [link["url"] for link in BOARDS[name]["links"] if "runbooks.md" in link.get("url", "")]
    assert links
    for url in links:
        if "#" in url:
            assert url.split("#", 1)[1] in headings, url


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query (variables substituted) as a recording rule's expression."""
    exprs = [q.substituted(default_values(board)) for board in BOARDS.values() for q in queries(board)]
    rules = [{"record": f"dashboard:query_{i}:expr", "expr": expr} for i, expr in enumerate(exprs)]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    done = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(rules)} rules found" in done.stdout


def test_grafana_provisioning() -> None:
    base = ROOT / "dashboards" / "provisioning"
    sources = yaml.safe_load((base / "datasources" / "prometheus.yml").read_text())
    [source] = sources["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"]
    assert source["jsonData"]["timeInterval"] == f"{SCRAPE_INTERVAL_S}s"
    providers = yaml.safe_load((base / "dashboards" / "chatload.yml").read_text())["providers"]
    [provider] = providers
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/var/lib/grafana/dashboards")
    assert sources["apiVersion"] == 1 and providers and provider["disableDeletion"]
