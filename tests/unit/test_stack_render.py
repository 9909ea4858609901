"""The local stack's settings and rendered config files: compose's shared files with only the topology changed,
checked by the real tools (nginx -t, promtool), and the errors a user can cause."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from stack import render
from stack.config import COMPOSE, ROOT, StackConfig
from stack.errors import StackError
from tests.support import answers, free_port, stack_ports

NGINX = "/usr/sbin/nginx"


def config(tmp_path: Path, **extra: str) -> StackConfig:
    env = {"STACK_DIR": str(tmp_path / "stack"), **stack_ports()[0], "JWT_SECRET": "x" * 40, **extra}
    return StackConfig.load(env)


def a_plan(cfg: StackConfig, *, own: bool = False) -> render.Plan:
    return render.plan(cfg, own_postgres=own, own_redis=own)


def test_defaults_are_the_design_ports_and_two_replicas(tmp_path: Path) -> None:
    cfg = StackConfig.load({"STACK_DIR": str(tmp_path)})
    assert cfg.ports == {"lb": 8080, "sut": 5240, "prometheus": 9090, "alertmanager": 9093, "s3": 9000,
                         "postgres-exporter": 9187, "redis-exporter": 9121, "node-exporter": 9100, "locust": 9646,
                         "alert-sink": 5001}
    assert cfg.sut_ports == [5240, 5241]
    assert cfg.service_env["S3_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    assert len(cfg.service_env["JWT_SECRET"]) >= 32


def test_environment_wins_over_the_env_file_which_wins_over_defaults(tmp_path: Path) -> None:
    (tmp_path / "env").write_text("JWT_SECRET=from-the-file-0123456789abcdef0123\nREDIS_URL=redis://127.0.0.1:1/0\n")
    cfg = StackConfig.load({"STACK_DIR": str(tmp_path), "REDIS_URL": "redis://127.0.0.1:2/0", "LOG_LEVEL": "DEBUG"})
    assert cfg.service_env["JWT_SECRET"] == "from-the-file-0123456789abcdef0123"
    assert cfg.redis_url == "redis://127.0.0.1:2/0"
    assert cfg.database_url == "postgresql://postgres@127.0.0.1:5432/messaging"
    assert cfg.service_env["LOG_LEVEL"] == "DEBUG"
    cfg.write_env_file()
    assert "REDIS_URL=redis://127.0.0.1:2/0" in (tmp_path / "env").read_text()
    assert (tmp_path / "env").stat().st_mode & 0o077 == 0


def test_tuning_settings_kept_from_the_env_file_are_named(tmp_path: Path) -> None:
    """An earlier `GC_FREEZE=false make run` stays in the file: `up` names what came from there."""
    (tmp_path / "env").write_text("GC_FREEZE=false\nMAX_IN_FLIGHT=512\nJWT_SECRET=s-0123456789abcdef0123456789\n")
    cfg = StackConfig.load({"STACK_DIR": str(tmp_path), "MAX_IN_FLIGHT": "256"})
    assert cfg.service_env["GC_FREEZE"] == "false" and cfg.service_env["MAX_IN_FLIGHT"] == "256"
    assert cfg.kept == ("GC_FREEZE",)


@pytest.mark.parametrize(("env", "message"), [
    ({"STACK_LB_PORT": "http"}, "STACK_LB_PORT='http': not an integer"),
    ({"STACK_PROMETHEUS_PORT": "70000"}, "STACK_PROMETHEUS_PORT=70000: must be between 1 and 65535"),
    ({"STACK_REPLICAS": "0"}, "STACK_REPLICAS=0: must be between 1 and 16"),
    ({"STACK_SUT_PORT": "9089", "STACK_REPLICAS": "2"}, "overlap prometheus: move STACK_SUT_PORT"),
    ({"DATABASE_URL": "not a url"}, "DATABASE_URL='not a url' is not a URL"),
])
def test_bad_settings_are_one_clear_line(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(StackError, match=re.escape(message)):
        StackConfig.load({"STACK_DIR": str(tmp_path), **env})


def test_the_nginx_server_block_is_composes_with_only_the_listen_line_moved(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    source = (COMPOSE / "nginx" / "chat.conf").read_text().splitlines()
    rendered = render.nginx_server(cfg).splitlines()[1:]
    changed = [(a, b) for a, b in zip(source, rendered, strict=True) if a != b]
    assert changed == [("    listen 8080;", f"    listen 127.0.0.1:{cfg.ports['lb']};")]


def test_the_upstreams_are_composes_with_one_server_line_per_local_instance(tmp_path: Path) -> None:
    cfg = config(tmp_path, STACK_REPLICAS="2")
    source = (COMPOSE / "nginx" / "upstreams.conf").read_text().splitlines()
    rendered = render.nginx_upstreams(cfg).splitlines()[1:]
    expected: list[str] = []
    for line in source:
        if "server sut:5240" in line:
            expected += [line.replace("sut:5240", f"127.0.0.1:{port}") for port in cfg.sut_ports]
        else:
            expected.append(line)
    assert rendered == expected
    text = "\n".join(source)
    sut, sticky = text.index("upstream sut {"), text.index("upstream sut_sticky {")
    assert "least_conn;" in text[sut:sticky] and "zone sut " in text[sut:sticky]
    assert "ip_hash;" in text[sticky:]


def test_the_local_nginx_config_passes_nginx_t_and_balances_every_instance(tmp_path: Path) -> None:
    cfg = config(tmp_path, STACK_REPLICAS="3")
    render.write_all(cfg, a_plan(cfg))
    upstreams = (cfg.dir / "nginx" / "upstreams.conf").read_text()
    for port in cfg.sut_ports:
        assert upstreams.count(f"server 127.0.0.1:{port} ") == 2   # in the least_conn and the sticky upstream
    done = subprocess.run([NGINX, "-t", "-p", str(cfg.dir / "nginx"), "-c", str(cfg.dir / "nginx" / "nginx.conf"),
                           "-e", str(cfg.logs / "nginx-error.log")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


def test_the_local_prometheus_config_is_composes_with_loopback_targets_and_loads_every_rule(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    render.write_all(cfg, a_plan(cfg))
    source = yaml.safe_load((COMPOSE / "prometheus" / "prometheus.yml").read_text())
    rendered = yaml.safe_load((cfg.dir / "prometheus" / "prometheus.yml").read_text())
    assert rendered["global"] == source["global"]
    assert [j["job_name"] for j in rendered["scrape_configs"]] == [j["job_name"] for j in source["scrape_configs"]]
    targets = {j["job_name"]: j["static_configs"][0]["targets"] for j in rendered["scrape_configs"]}
    assert targets["sut"] == [f"127.0.0.1:{p}" for p in cfg.sut_ports]
    assert targets["node"] == [f"127.0.0.1:{cfg.ports['node-exporter']}"]
    assert all(not k.endswith("_sd_configs") for j in rendered["scrape_configs"] for k in j)
    done = subprocess.run(["promtool", "check", "config", str(cfg.dir / "prometheus" / "prometheus.yml")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    rule_files = sorted(p.name for p in (ROOT / "alerts" / "rules").glob("*.yml"))
    for name in rule_files:
        assert re.search(r"SUCCESS: \d+ rules found", done.stdout) and name in done.stdout, done.stdout


def test_the_local_alertmanager_config_is_the_shared_one_with_the_sink_address(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    render.write_all(cfg, a_plan(cfg))
    source = (ROOT / "alerts" / "alertmanager.yml").read_text().splitlines()
    path = cfg.dir / "alertmanager" / "alertmanager.yml"
    rendered = path.read_text().splitlines()[1:]
    changed = [(a, b) for a, b in zip(source, rendered, strict=True) if a != b]
    assert len(changed) == 3
    assert all(a.replace("127.0.0.1:5001", f"127.0.0.1:{cfg.ports['alert-sink']}") == b for a, b in changed)
    done = subprocess.run(["amtool", "check-config", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_missing_component_drops_its_scrape_job(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    full = a_plan(cfg)
    without = render.Plan([p for p in full.programs if p.name != "node-exporter"],
                          {"node-exporter": "prometheus-node-exporter is not installed"})
    jobs = [j["job_name"] for j in yaml.safe_load(render.prometheus_conf(cfg, without))["scrape_configs"]]
    assert "node" not in jobs and "sut" in jobs


def test_supervisord_starts_nothing_by_itself_and_its_processes_inherit_the_settings(tmp_path: Path) -> None:
    from supervisor.options import ServerOptions

    secret = "ends-in-a-quote ; # %(here)s \"'"
    cfg = config(tmp_path, RATE_LIMIT_PER_SECOND="0", JWT_SECRET=secret,
                 DATABASE_URL="postgresql://u:p%40ss@127.0.0.1:5432/messaging")
    render.write_all(cfg, a_plan(cfg, own=True))
    conf_path = cfg.dir / "supervisord.conf"
    conf = conf_path.read_text()
    assert secret not in conf and "DATABASE_URL" not in conf       # settings go by the environment, unquoted
    assert conf_path.stat().st_mode & 0o077 == 0
    options = ServerOptions()
    options.realize(["-c", str(conf_path)])                        # supervisord's own parser takes the file
    programs = [group.name for group in options.process_group_configs]
    assert programs[:3] == ["postgres", "redis", "s3"] and "sut-2" in programs and "nginx" in programs
    assert all(not p.autostart for g in options.process_group_configs for p in g.process_configs)
    env = render.process_env(cfg, {"PATH": "/usr/bin"})
    assert env["JWT_SECRET"] == secret and env["RATE_LIMIT_PER_SECOND"] == "0" and env["PATH"] == "/usr/bin"
    assert env["DATA_SOURCE_NAME"] == "postgresql://u:p%40ss@127.0.0.1:5432/messaging?sslmode=disable"
    if os.geteuid() == 0:
        assert "user=postgres" in conf


def _stack(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stack", *args], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=60, check=False)


def test_a_taken_port_stops_up_before_anything_starts(tmp_path: Path) -> None:
    env = {"STACK_DIR": str(tmp_path / "stack"), **stack_ports()[0]}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(env["STACK_LB_PORT"])))
        taken.listen()
        done = _stack(env, "up", "--no-seed")
    assert done.returncode == 2
    assert f"port {env['STACK_LB_PORT']} (load balancer (nginx)) is taken" in done.stderr
    assert "STACK_LB_PORT=" in done.stderr
    assert not (tmp_path / "stack" / "supervisord.pid").exists()


def test_status_and_down_of_a_stack_that_is_not_up(tmp_path: Path) -> None:
    env = {"STACK_DIR": str(tmp_path / "stack")}
    status = _stack(env, "status")
    assert status.returncode == 3 and "is down" in status.stdout
    down = _stack(env, "down")
    assert down.returncode == 0 and "is not running" in down.stdout
    logs = _stack(env, "logs", "--no-follow")
    assert logs.returncode == 2 and "has not been up yet" in logs.stderr


def test_a_missing_binary_leaves_its_part_out_and_names_the_package(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(tmp_path)
    real = render.binary
    monkeypatch.setattr(render, "binary", lambda name: None if name in ("nginx", "prometheus") else real(name))
    the_plan = a_plan(cfg)
    assert the_plan.skipped == {"nginx": "nginx is not installed (apt-get install nginx)",
                                "prometheus": "prometheus is not installed (apt-get install prometheus)"}
    assert {"nginx", "prometheus"}.isdisjoint(p.name for p in the_plan.programs)
    monkeypatch.setattr("stack.config.binary", lambda name: None)
    with pytest.raises(StackError, match=re.escape("postgres is not installed: apt-get install postgresql-15")):
        render.plan(cfg, own_postgres=True, own_redis=False)


def test_the_alert_sink_prints_a_line_per_alert_and_refuses_what_is_not_a_notification(tmp_path: Path) -> None:
    port = free_port()
    with open(tmp_path / "sink.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "stack.alertsink", "--port", str(port)], stdout=log)
    try:
        url = f"http://127.0.0.1:{port}"
        assert answers(f"{url}/", proc, within=10, timeout=1, pause=0.05)

        def post(body: bytes) -> int:
            request = urllib.request.Request(f"{url}/tickets", data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=5) as resp:
                    return int(resp.status)
            except urllib.error.HTTPError as exc:
                return exc.code

        assert post(b"not json") == 400
        assert post(b'{"no": "alerts"}') == 400
        notification = {"receiver": "tickets", "alerts": [
            {"status": "firing", "labels": {"alertname": "A", "severity": "warning"}, "annotations": {}},
            {"status": "resolved", "labels": {"alertname": "B"}, "annotations": {"summary": "s"}}]}
        assert post(json.dumps(notification).encode()) == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    lines = [json.loads(line) for line in (tmp_path / "sink.log").read_text().splitlines()]
    assert [(x["receiver"], x["alertname"], x["status"]) for x in lines] == [("tickets", "A", "firing"),
                                                                             ("tickets", "B", "resolved")]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the stack's PostgreSQL as another user")
def test_a_state_folder_the_postgres_user_cannot_enter_is_one_clear_line(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    env = {"STACK_DIR": str(closed / "stack"), **stack_ports()[0],
           "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/messaging"}
    done = _stack(env, "up", "--no-seed")
    assert done.returncode == 2
    assert f"the postgres user cannot enter {closed / 'stack' / 'postgres'}" in done.stderr
    assert not (closed / "stack" / "supervisord.pid").exists()
