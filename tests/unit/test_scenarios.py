"""Scenario schema and CLI: the shipped files validate, bad input gives one clear located line, durations, stage
resolution, scaling, the YAML round trip, and `python -m scenarios list | validate`."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from scenarios.__main__ import _parser
from scenarios.model import (
    KNOWN_REQUESTS,
    SCENARIO_DIR,
    LatencySlo,
    ResolvedStage,
    Scenario,
    ScenarioError,
    ThroughputSlo,
    format_duration,
    load_scenario,
    parse_duration,
    scenario_paths,
)
from scenarios.runner import _cpu_over

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ["baseline", "capacity", "chaos-instance", "chaos-postgres-page", "chaos-postgres", "chaos-redis",
           "connections", "overload", "query-latency", "reconnect-storm", "smoke", "soak", "spike", "users-held",
           "ws-throughput"]

BASE: dict[str, Any] = {
    "name": "demo",
    "description": "A test scenario.",
    "warmup": "2s",
    "personas": {"chat": {"pairs": 2}, "rest": {"users": 1}},
    "load": {"stages": [{"duration": "10s", "messages_per_second": 5}]},
    "slos": [
        {"kind": "latency", "request": "message:send", "percentile": 99, "max": "250ms"},
        {"kind": "throughput", "request": "message:send", "min_ratio": 0.9},
    ],
}


def write(tmp_path: Path, content: dict[str, Any] | str, name: str = "demo") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
    return path


def errors(path: Path | str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value) == "\n".join(info.value.lines)
    return list(info.value.lines)


def variant(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return data


# --- the shipped files ----------------------------------------------------------------------------------------


def test_the_shipped_set() -> None:
    assert [path.stem for path in scenario_paths()] == SHIPPED
    assert all(path.parent == SCENARIO_DIR for path in scenario_paths())


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_scenario_validates(name: str) -> None:
    scenario = load_scenario(name)
    assert scenario == load_scenario(SCENARIO_DIR / f"{name}.yaml")
    assert scenario.name == name and scenario.description.strip() and scenario.slos
    for slo in scenario.slos:
        request = getattr(slo, "request", None)
        assert request is None or request in KNOWN_REQUESTS, f"{name}: unknown request name {request!r}"


def test_the_page_scenarios_outage_outlasts_postgresdowns_path_to_the_pager() -> None:
    """PostgresDown's `for:`, a scrape and an evaluation (5 s each on the stack) and the pager route's group_wait
    all fit in the outage, so the page goes out while the database is still down."""
    from alerts import routing
    from tests.observability import alerts

    scenario = load_scenario("chaos-postgres-page")
    [fault] = scenario.faults
    [rule] = [a for a in alerts() if a["alert"] == "PostgresDown"]
    [route] = routing.load().routes({"alertname": "PostgresDown", **rule["labels"]})
    assert fault.action == "stop-postgres" and route.receiver == "pager"
    assert fault.duration >= routing.seconds(rule["for"]) + 5 + 5 + route.group_wait + 15
    assert [(slo.kind, getattr(slo, "alert", None), getattr(slo, "receiver", None)) for slo in scenario.slos
            if slo.kind == "notification"] == [("notification", "PostgresDown", "pager")]


def test_shipped_scenarios_say_what_the_brief_asks() -> None:
    smoke = load_scenario("smoke")
    assert (smoke.warmup, smoke.send_duration, smoke.peak_messages_per_second) == (10, 45, 20)
    assert [slo.display_name for slo in smoke.slos] == [
        "message:send p99 <= 250ms", "delivery p99 <= 500ms", "GET /messaging/conversations p95 <= 250ms",
        "error ratio <= 1%", "lost <= 0", "duplicated <= 0", "message:send >= 90% of target rate"]
    capacity = load_scenario("capacity")
    assert [stage.messages_per_second for stage in capacity.load.stages] == [50, 100, 200, 300, 400, 600, 800, 1000]
    assert {(s.duration, s.settle, s.pairs) for s in capacity.resolved_stages()} == {(60, 15, 100)}
    assert capacity.capacity is not None and capacity.capacity.stop_on_breach
    spike = load_scenario("spike")
    assert [(s.offset, s.duration, s.messages_per_second, s.pairs) for s in spike.resolved_stages()] == [
        (0, 60, 50, 50), (60, 30, 400, 150), (90, 90, 50, 50)]
    assert load_scenario("soak").send_duration == 3600
    query = load_scenario("query-latency").resolved_stages()
    assert [(s.pairs, s.rest_users, s.upload_users, s.messages_per_second) for s in query] == [(0, 20, 0, 0)]
    ws = load_scenario("ws-throughput").resolved_stages()
    assert [(s.pairs, s.rest_users, s.upload_users, s.messages_per_second) for s in ws] == [(200, 0, 0, 600)]


# --- bad input: one located line each ---------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "location", "message"), [
    (variant(personas={"chat": {"pairs": 2, "typing_ratoi": 0.2}, "rest": {"users": 1}}),
     "personas.chat.typing_ratoi", "unknown field (did you mean typing_ratio?)"),
    (variant(colour="blue"), "colour", "unknown field (expected one of: name, description, data, warmup"),
    (variant(warmup="5 minutes"), "warmup", "not a duration: '5 minutes'"),
    (variant(warmup=True), "warmup", "must be a duration"),
    (variant(grace=-1), "grace", "must not be negative"),
    (variant(slos=[{"kind": "latency", "request": "message:send", "percentile": 100, "max": "1s"}]),
     "slos.0.percentile", "must be between 50 and 99.99"),
    (variant(slos=[{"kind": "throughput", "request": "message:send", "min_rps": 10, "min_ratio": 0.5}]),
     "slos.0", "give exactly one of min_rps and min_ratio"),
    (variant(slos=[{"kind": "throughput", "request": "message:send"}]),
     "slos.0", "give exactly one of min_rps and min_ratio"),
    (variant(slos=[{"kind": "throughput", "request": "message:send", "min_ratio": 1.5}]),
     "slos.0.min_ratio", "must be <= 1"),
    (variant(slos=[{"kind": "latency", "request": "message:send", "percentile": 99, "max": "1s", "maxx": 1}]),
     "slos.0.maxx", "unknown field (did you mean max?)"),
    (variant(slos=[{"kind": "latncy", "request": "x"}]), "slos.0.kind", "unknown SLO kind 'latncy'"),
    (variant(slos=[{"request": "x"}]), "slos.0.kind", "field required"),
    (variant(slos=[{"kind": "checker", "counter": "lots", "max": 0}]), "slos.0.counter", "must be one of 'lost'"),
    (variant(slos=[{"kind": "checker", "counter": "lost", "max": -1}]), "slos.0.max", "must be >= 0"),
    (variant(slos=[{"kind": "error_ratio", "max": 2}]), "slos.0.max", "must be between 0 and 1"),
    (variant(slos=[{"kind": "checker", "counter": "lost", "max": 0}, {"kind": "checker", "counter": "lost", "max": 0}]),
     "slos.1", "same name as slos.0"),
    (variant(load={"stages": []}), "load.stages", "needs at least 1 item"),
    (variant(load={"stages": [{"duration": 0, "messages_per_second": 5}]}), "load.stages.0.duration", "must be > 0"),
    (variant(load={"stages": [{"duration": 10, "messages_per_second": "5"}]}),
     "load.stages.0.messages_per_second", "must be a number"),
    (variant(load={"stages": [{"duration": 10, "messages_per_second": 5, "pairs": 2.5}]}),
     "load.stages.0.pairs", "must be an integer"),
    (variant(load={"stages": [{"duration": "10s", "messages_per_second": 5, "settle": "10s"}]}),
     "load.stages.0.settle", "must be shorter than the stage's duration"),
    (variant(personas={"rest": {"users": 1}}), "load.stages.0.messages_per_second", "sending needs personas.chat"),
    (variant(personas={"rest": {"users": 1}}, load={"stages": [{"duration": 10, "messages_per_second": 5,
                                                                 "pairs": 3}]}),
     "load.stages.0.pairs", "needs personas.chat"),
    (variant(personas={"chat": {"pairs": 0}}), "load.stages.0.messages_per_second", "sending needs pairs > 0"),
    (variant(personas={"chat": {"pairs": 1, "typing_ratio": 1.5}}), "personas.chat.typing_ratio",
     "must be between 0 and 1"),
    (variant(personas={"chat": {"pairs": 1}, "rest": {"users": 1, "wait": ["2s", "1s"]}}), "personas.rest.wait",
     "min (2s) must not exceed max (1s)"),
    (variant(personas={"chat": {"pairs": 1}, "rest": {"users": 1, "wait": [1, 2, 3]}}), "personas.rest.wait",
     "must be one duration or a list [min, max]"),
    (variant(personas={"chat": {"pairs": 1}, "rest": {"users": 1, "conversations": 0}}),
     "personas.rest.conversations", "must be between 1 and 100"),
    (variant(load={"stages": [{"duration": 10, "messages_per_second": 0}]}), "slos.1.min_ratio",
     "needs a stage with messages_per_second > 0"),
    (variant(capacity={"stop_on_breach": True}), "capacity", "needs at least 2 load stages"),
    (variant(warmup="10s"), "warmup", "must be shorter than the stages"),
    (variant(data={"conversations": 0, "messages": 10}), "data.messages", "needs conversations > 0"),
    ({k: v for k, v in BASE.items() if k != "load"}, "load", "field required"),
    ("name: demo\ndescription: x\nload: {stages: [{duration: 10, messages_per_second: 0}]}\nload: {}\n",
     "line 4, column 1", "duplicate key 'load'"),
])
def test_bad_input_gives_one_located_line(tmp_path: Path, content: dict[str, Any] | str, location: str,
                                          message: str) -> None:
    path = write(tmp_path, content)
    [line] = errors(path)
    assert line.startswith(f"{path}: {location}: {message}"), line


def test_several_problems_give_several_lines(tmp_path: Path) -> None:
    path = write(tmp_path, variant(warmup="soon", grace="later", colour="blue"))
    lines = errors(path)
    assert [line.split(": ")[1] for line in lines] == ["warmup", "grace", "colour"]


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "name: demo\ndescription: x\nload: {stages: [{duration: 10}\n")
    [line] = errors(path)
    assert line.startswith(f"{path}: line 4, column 1: expected ',' or ']'"), line


@pytest.mark.parametrize(("content", "message"), [("", "empty file"), ("- a\n- b\n", "must be a mapping")])
def test_not_a_scenario_at_all(tmp_path: Path, content: str, message: str) -> None:
    path = write(tmp_path, content)
    [line] = errors(path)
    assert line.startswith(f"{path}: {message}")


def test_a_scenario_name_is_a_slug(tmp_path: Path) -> None:
    path = write(tmp_path, variant(name="Demo Scenario"), name="Demo Scenario")
    [line] = errors(path)
    assert line.startswith(f"{path}: name: 'Demo Scenario': use lowercase letters, digits"), line


def test_unknown_scenario_name_lists_the_known_ones() -> None:
    [line] = errors("nope")
    assert "unknown scenario 'nope'" in line
    assert all(name in line for name in SHIPPED)


def test_missing_file() -> None:
    [line] = errors("no/such/file.yaml")
    assert line == "no/such/file.yaml: no such file"


def test_name_must_match_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, BASE, name="other")
    [line] = errors(path)
    assert line == f"{path}: name: 'demo' does not match the file name ('other')"
    assert load_scenario(path, check_name=False).name == "demo"


def test_a_name_is_looked_up_a_path_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, BASE)
    assert load_scenario("demo.yaml").name == "demo"  # ends in .yaml: a path
    assert load_scenario("./demo.yaml").name == "demo"
    assert load_scenario("smoke").name == "smoke"  # a name: scenarios/smoke.yaml
    [line] = errors("demo")  # a name, not the file in the working directory
    assert "unknown scenario 'demo'" in line


# --- durations and names ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "seconds"), [
    ("250ms", 0.25), ("5m", 300.0), (2, 2.0), (0.5, 0.5), ("30s", 30.0), ("1.5h", 5400.0), ("10", 10.0),
    ("0", 0.0), (" 2 s ", 2.0), (".5s", 0.5),
])
def test_durations_parse(value: str | float, seconds: float) -> None:
    assert parse_duration(value) == seconds
    assert isinstance(parse_duration(value), float)


@pytest.mark.parametrize("value", ["5 minutes", "", "1d", "-1s", -1, "1e3", float("inf"), float("nan"), "ms"])
def test_bad_durations_raise_value_error(value: str | float) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize(("seconds", "text"), [(0.25, "250ms"), (0.0005, "0.5ms"), (1, "1s"), (1.5, "1.5s"),
                                               (90, "90s")])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(("slo", "name"), [
    ({"kind": "latency", "request": "message:send", "percentile": 99, "max": "250ms"}, "message:send p99 <= 250ms"),
    ({"kind": "latency", "request": "delivery", "percentile": 99, "max": 0.5}, "delivery p99 <= 500ms"),
    ({"kind": "latency", "request": "sync", "percentile": 99.9, "max": "1.5s"}, "sync p99.9 <= 1.5s"),
    ({"kind": "error_ratio", "max": 0.01}, "error ratio <= 1%"),
    ({"kind": "error_ratio", "request": "message:send", "max": 0}, "message:send error ratio <= 0%"),
    ({"kind": "checker", "counter": "lost", "max": 0}, "lost <= 0"),
    ({"kind": "throughput", "request": "message:send", "min_ratio": 0.95}, "message:send >= 95% of target rate"),
    ({"kind": "throughput", "request": "message:send", "min_rps": 100}, "message:send >= 100 req/s"),
    ({"kind": "checker", "counter": "lost", "max": 0, "name": "nothing lost"}, "nothing lost"),
])
def test_slo_display_names(slo: dict[str, Any], name: str) -> None:
    scenario = Scenario.model_validate(variant(slos=[slo]))
    assert scenario.slos[0].display_name == name


def test_slos_are_typed_by_kind() -> None:
    scenario = load_scenario("smoke")
    assert isinstance(scenario.slos[0], LatencySlo) and scenario.slos[0].max == 0.25
    assert isinstance(scenario.slos[-1], ThroughputSlo) and scenario.slos[-1].min_ratio == 0.9


# --- helpers ------------------------------------------------------------------------------------------------------


def test_resolved_stages_fill_persona_numbers_and_offsets() -> None:
    scenario = Scenario.model_validate(variant(
        personas={"chat": {"pairs": 10}, "rest": {"users": 3}},
        load={"stages": [{"duration": "10s", "messages_per_second": 5},
                         {"duration": "20s", "messages_per_second": 10, "pairs": 4, "rest_users": 0,
                          "settle": "5s"}]}))
    assert scenario.resolved_stages() == [
        ResolvedStage(index=0, offset=0.0, duration=10.0, settle=0.0, messages_per_second=5, pairs=10, rest_users=3,
                      upload_users=0),
        ResolvedStage(index=1, offset=10.0, duration=20.0, settle=5.0, messages_per_second=10, pairs=4,
                      rest_users=0, upload_users=0),
    ]
    assert scenario.resolved_stages()[1].end == scenario.send_duration == 30.0


def test_persona_defaults() -> None:
    personas = Scenario.model_validate(variant(personas={"chat": {"pairs": 1}, "rest": {"users": 1},
                                                         "upload": {"users": 1, "wait": "3s"}})).personas
    assert personas.chat is not None and (personas.chat.typing_ratio, personas.chat.read_every) == (0.1, 5)
    assert personas.rest is not None and (personas.rest.conversations, personas.rest.wait) == (10, (0.5, 1.5))
    assert personas.upload is not None and personas.upload.wait == (3.0, 3.0)
    assert Scenario.model_validate(BASE).grace == 5.0


def test_with_duration_scales_the_stages() -> None:
    capacity = load_scenario("capacity")
    short = capacity.with_duration(120)
    assert short.send_duration == pytest.approx(120)
    assert [stage.duration for stage in short.load.stages] == pytest.approx([15.0] * 8)
    assert [stage.settle for stage in short.load.stages] == pytest.approx([3.75] * 8)  # 15 s no longer fits
    assert short.warmup == 15  # still fits: kept
    assert [stage.messages_per_second for stage in short.load.stages] == [50, 100, 200, 300, 400, 600, 800, 1000]
    assert capacity.send_duration == 480  # the original is untouched

    spike = load_scenario("spike").with_duration(360)
    assert [stage.duration for stage in spike.load.stages] == pytest.approx([120, 60, 180])
    smoke = load_scenario("smoke")
    assert smoke.with_duration(90).warmup == 10
    assert smoke.with_duration(9).warmup == pytest.approx(2)  # 10 s of 45 scaled like the stages


@pytest.mark.parametrize("seconds", [0, -5, float("nan")])
def test_with_duration_rejects_non_positive(seconds: float) -> None:
    with pytest.raises(ScenarioError, match="must be > 0"):
        load_scenario("smoke").with_duration(seconds)


@pytest.mark.parametrize("name", SHIPPED)
def test_to_yaml_round_trips(tmp_path: Path, name: str) -> None:
    scenario = load_scenario(name)
    text = scenario.to_yaml()
    assert load_scenario(write(tmp_path, text, name=name)) == scenario
    raw = yaml.safe_load(text)
    assert isinstance(raw["load"]["stages"][0]["duration"], float)  # plain seconds


def test_to_yaml_round_trips_a_scaled_copy(tmp_path: Path) -> None:
    scaled = load_scenario("capacity").with_duration(100)
    path = tmp_path / "run" / "scenario.yaml"
    path.parent.mkdir()
    path.write_text(scaled.to_yaml())
    assert load_scenario(path, check_name=False) == scaled


# --- the command line ---------------------------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scenarios", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)


def test_cli_validate_the_shipped_files() -> None:
    result = cli("validate")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [f"ok scenarios/{name}.yaml" for name in SHIPPED]


def test_cli_validate_a_bad_file(tmp_path: Path) -> None:
    path = write(tmp_path, variant(warmup="5 minutes"))
    result = cli("validate", "smoke", str(path))
    assert result.returncode == 2
    assert result.stdout.splitlines()[0] == "ok scenarios/smoke.yaml"
    assert result.stdout.splitlines()[1].startswith(f"{path}: warmup: not a duration")
    assert "Traceback" not in result.stderr


def test_cli_list_shows_every_scenario() -> None:
    result = cli("list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["NAME", "SEND"]
    assert [line.split()[0] for line in lines[1:]] == SHIPPED


def test_cli_run_arguments() -> None:
    args = _parser().parse_args(["run", "smoke"])
    assert (args.command, args.scenario, args.target, args.workers, args.duration) == (
        "run", "smoke", "http://127.0.0.1:5240", None, None)   # workers: as the users need
    assert (args.run_dir_root, args.metrics_port, args.no_seed, args.web) == (Path("runs"), 9646, False, False)
    args = _parser().parse_args(["run", "capacity", "--duration", "5m", "--workers", "4", "--no-seed", "--web",
                                 "--env-file", ".env", "--prometheus", "http://p:9090"])
    assert (args.duration, args.workers, args.no_seed, args.web, args.env_file) == (300.0, 4, True, True,
                                                                                    Path(".env"))


@pytest.mark.parametrize("argv", [["run", "smoke", "--duration", "5 minutes"], ["run", "smoke", "--duration", "0"],
                                  ["run", "smoke", "--workers", "0"], ["run"]])
def test_cli_run_rejects_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(argv)
    assert info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_an_instances_cpu_over_the_run_is_one_processs_or_not_known() -> None:
    started = 1_795_600_000.0
    assert _cpu_over((12.5, started), (40.25, started)) == 27.75
    assert _cpu_over((12.5, started), (3.0, started + 50)) is None    # restarted: its counter began again at 0
    assert _cpu_over((12.5, started), (90.0, started + 50)) is None   # restarted and ran past the old count
    assert _cpu_over(None, (3.0, started)) is None and _cpu_over((3.0, started), None) is None   # did not answer
