"""The docker compose stack, offline (no Docker engine runs here): the file against the compose-spec schema, its
mounts and build inputs present, nginx -t and promtool on the configs it mounts, env names the service and the load
generator know, published ports, start order and healthchecks, the Dockerfile's essentials, and the names the
shared configs (nginx upstreams, Prometheus targets and jobs, Grafana) expect."""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability import ROOT, RULES, rule_groups

COMPOSE_DIR = ROOT / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
DOCKERFILE = COMPOSE_DIR / "Dockerfile"
PROMETHEUS_CONFIG = COMPOSE_DIR / "prometheus" / "prometheus.yml"
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())   # PyYAML resolves the `<<` merge keys
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILE_LINES = [line.strip() for line in DOCKERFILE.read_text().replace("\\\n", " ").splitlines()]

# DESIGN.md's ports, and which service publishes each (the same port inside and out)
PUBLISHED = {"nginx": {8080}, "prometheus": {9090}, "alertmanager": {9093}, "grafana": {3000},
             "locust-master": {8089, 9646}, "minio": {9000}}
ONE_SHOTS = {"migrate", "minio-init"}
# long-running services without a healthcheck, and why
UNCHECKED = {"redis-exporter": "a scratch image: no shell, no wget", "locust-worker": "no port of its own"}
# bind-mounted folders the stack writes its output to (gitignored, so absent from a fresh checkout)
OUTPUTS = {ROOT / "runs"}
# what the service names in other files expect (compose/nginx/upstreams.conf, compose/prometheus/prometheus.yml)
EXPECTED_SERVICES = {"sut", "nginx", "migrate", "postgres", "redis", "minio", "minio-init", "prometheus",
                     "alertmanager", "grafana", "postgres-exporter", "redis-exporter", "node-exporter",
                     "locust-master", "locust-worker", "alert-sink"}

_VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^${}]*))?\}")


def interpolate(text: str) -> str:
    """Compose's interpolation in an empty environment: `${VAR:-default}` gives its default (nested ones from the
    inside out), `${VAR:?message}` a placeholder, `$$` a literal `$`."""
    text = text.replace("$$", "\0")

    def value(m: re.Match[str]) -> str:
        if m.group(2) is None:
            return ""
        return "<required>" if m.group(2).endswith("?") else m.group(3)

    while (done := _VARIABLE.sub(value, text)) != text:
        text = done
    return text.replace("\0", "$")


def run(*cmd: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)


def env_names(source: Path) -> set[str]:
    """The environment variables a module reads: `env.get("X", ...)`, `env["X"]` and helpers called `f(env, "X")`."""
    names = set()
    for node in ast.walk(ast.parse(source.read_text())):
        key: ast.expr | None = None
        if isinstance(node, ast.Call):
            func, args = node.func, node.args
            if isinstance(func, ast.Attribute) and func.attr == "get" and _is_env(func.value) and args:
                key = args[0]
            elif len(args) >= 2 and _is_env(args[0]):
                key = args[1]
        elif isinstance(node, ast.Subscript) and _is_env(node.value):
            key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            names.add(key.value)
    return names


def _is_env(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "env"


def locust_env_names() -> set[str]:
    """LOCUST_* variables Locust's argument parser reads (its source: importing locust would monkey-patch)."""
    spec = importlib.util.find_spec("locust")
    assert spec is not None and spec.submodule_search_locations
    source = Path(spec.submodule_search_locations[0]) / "argument_parser.py"
    return set(re.findall(r'env_var="(LOCUST_\w+)"', source.read_text()))


def environment(service: str) -> dict[str, Any]:
    env = SERVICES[service].get("environment") or {}
    assert isinstance(env, dict), f"{service}: environment as a mapping"
    return env


def command(service: str) -> list[str]:
    cmd = SERVICES[service].get("command")
    return cmd if isinstance(cmd, list) else str(cmd).split()


def bind_mounts(service: str) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of each short-syntax bind mount (named volumes left out)."""
    found = []
    for spec in SERVICES[service].get("volumes", []):
        source, target, *options = str(spec).split(":")
        if source.startswith((".", "/")):
            found.append((source, target, "ro" in ",".join(options).split(",")))
    return found


def mount_source(service: str, target: str) -> Path:
    sources = [COMPOSE_DIR / s for s, t, _ in bind_mounts(service) if t == target]
    assert len(sources) == 1, f"{service} mounts nothing (or twice) at {target}"
    return sources[0].resolve()


def builds_the_image(service: str) -> bool:
    build = SERVICES[service].get("build")
    return isinstance(build, dict) and build.get("dockerfile") == "compose/Dockerfile"


def has_healthcheck(service: str) -> bool:
    """Its own healthcheck, or the Dockerfile's HEALTHCHECK for a service of the built image, unless disabled."""
    check = SERVICES[service].get("healthcheck")
    if check is not None:
        return not check.get("disable", False)
    return builds_the_image(service) and any(line.startswith("HEALTHCHECK ") for line in DOCKERFILE_LINES)


def published_ports(service: str) -> set[tuple[str, int, int]]:
    found = set()
    for spec in SERVICES[service].get("ports", []):
        address, published, target = interpolate(str(spec)).rsplit(":", 2)
        found.add((address, int(published), int(target)))
    return found


# --- the file itself


def test_the_compose_file_matches_the_compose_spec_schema() -> None:
    done = run(sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_service_the_shared_configs_name_exists() -> None:
    assert set(SERVICES) == EXPECTED_SERVICES
    assert not [name for name, svc in SERVICES.items() if "container_name" in svc], "container names block replicas"


def test_every_bind_mount_and_build_input_exists() -> None:
    written = set()
    for name in SERVICES:
        for source, target, read_only in bind_mounts(name):
            path = (COMPOSE_DIR / source).resolve()
            assert path.exists() or path in OUTPUTS, f"{name}: {source} -> {target}"
            if not read_only:
                written.add(path)
        if builds_the_image(name):
            build = SERVICES[name]["build"]
            context = (COMPOSE_DIR / build["context"]).resolve()
            assert context == ROOT and (context / build["dockerfile"]).resolve() == DOCKERFILE, name
    assert written >= OUTPUTS, "an output folder no service writes"
    assert all(p.relative_to(ROOT).as_posix() + "/" in (ROOT / ".gitignore").read_text() for p in OUTPUTS)


def test_the_dockerignore_keeps_the_package_and_drops_local_state_and_secrets() -> None:
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    local = {".git", ".venv", ".stack", ".env", "runs"}    # whether or not this checkout has them
    ignored = {name for name in {p.name for p in ROOT.iterdir()} | local
               if any(fnmatch.fnmatch(name, pattern) for pattern in patterns)}
    assert local <= ignored
    packages = {p.rstrip("*") for p in _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert not ignored & (packages | {"pyproject.toml", "README.md"})


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# --- the configs it mounts, checked by their own tools


def test_nginx_accepts_the_compose_config(tmp_path: Path) -> None:
    """nginx -t as compose's nginx reads it: compose/nginx/ copied where the container mounts it (/etc/nginx/chat/,
    rewritten to the copy), its /tmp/ paths moved into the copy so a non-root run writes nothing shared, and
    `sut:5240` rewritten to loopback, because nginx resolves upstream hosts while it checks and `sut` exists only
    in compose's DNS."""
    assert mount_source("nginx", "/etc/nginx/chat") == COMPOSE_DIR / "nginx"
    assert mount_source("nginx", "/etc/nginx/nginx.conf") == COMPOSE_DIR / "nginx" / "nginx.conf"
    chat = tmp_path / "chat"
    shutil.copytree(COMPOSE_DIR / "nginx", chat)
    (tmp_path / "temp").mkdir()
    for conf in chat.glob("*.conf"):
        text = re.sub(r"(?<=\s)/tmp/", f"{tmp_path}/temp/", conf.read_text())
        text = text.replace("/etc/nginx/chat/", f"{chat}/").replace("sut:5240", "127.0.0.1:5240")
        conf.write_text(text)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    done = run(nginx, "-t", "-p", f"{tmp_path}/", "-c", str(chat / "nginx.conf"), "-e", str(tmp_path / "error.log"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "test is successful" in done.stderr


def test_promtool_checks_the_prometheus_config_with_the_rule_files_loaded(tmp_path: Path) -> None:
    """The config with each rule_files pattern under the container's rules mount pointed at what compose mounts
    there (alerts/rules/), so promtool loads and checks every rule file."""
    rules_mount = "/etc/prometheus/rules"
    assert mount_source("prometheus", rules_mount) == RULES
    assert mount_source("prometheus", "/etc/prometheus/prometheus.yml") == PROMETHEUS_CONFIG
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert all(p.startswith(rules_mount + "/") for p in config["rule_files"]), config["rule_files"]
    config["rule_files"] = [str(RULES) + p[len(rules_mount):] for p in config["rule_files"]]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    done = run("promtool", "check", "config", str(copy))
    assert done.returncode == 0, done.stdout + done.stderr
    files = sorted(RULES.glob("*.yml"))
    assert len(files) >= 3
    assert all(str(f) in done.stdout for f in files), done.stdout
    assert f"{len(files)} rule files found" in done.stdout


def test_alertmanager_mounts_the_config_test_alerts_checks() -> None:
    # tests/unit/test_alerts.py runs `amtool check-config` and the routing cases on this very file
    assert mount_source("alertmanager", "/etc/alertmanager/alertmanager.yml") == ROOT / "alerts" / "alertmanager.yml"
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in command("alertmanager")


def test_grafana_provisions_the_datasource_and_the_dashboards_where_the_provider_looks() -> None:
    provisioning = ROOT / "dashboards" / "provisioning"
    assert mount_source("grafana", "/etc/grafana/provisioning") == provisioning
    provider = yaml.safe_load((provisioning / "dashboards" / "chatload.yml").read_text())["providers"][0]
    assert mount_source("grafana", provider["options"]["path"]) == ROOT / "dashboards" / "json"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090" and "prometheus" in SERVICES


# --- the service's environment


def test_the_service_env_names_are_settings_the_service_reads() -> None:
    known = env_names(ROOT / "sut" / "settings.py")
    assert {"DATABASE_URL", "REDIS_URL", "JWT_SECRET", "S3_ENDPOINT_URL", "HOST", "PORT", "EVENT_LOOP"} <= known
    for name in ("sut", "migrate"):
        assert set(environment(name)) <= known, (name, set(environment(name)) - known)
    required = {"DATABASE_URL", "REDIS_URL", "JWT_SECRET", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_S3_BUCKET", "S3_ENDPOINT_URL", "CORS_ORIGIN", "LOG_LEVEL"}
    assert required <= set(environment("migrate"))
    assert required | {"HOST", "PORT"} <= set(environment("sut"))
    assert environment("sut")["HOST"] == "0.0.0.0" and str(environment("sut")["PORT"]) == "5240"


def test_the_load_generator_env_names_are_known() -> None:
    known = (env_names(ROOT / "sut" / "settings.py") | env_names(ROOT / "loadtests" / "config.py")
             | locust_env_names())
    assert {"CHATLOAD_PAIR_STRIDE", "CHATLOAD_METRICS_HOST", "LOCUST_HEADLESS"} <= known
    for name in ("locust-master", "locust-worker"):
        assert set(environment(name)) <= known, (name, set(environment(name)) - known)


def test_no_secret_is_committed() -> None:
    """Secrets come from the environment (or compose/.env): JWT_SECRET is required; the rest may only default to
    development values through `${VAR:-...}`."""
    assert environment("sut")["JWT_SECRET"].startswith("${JWT_SECRET:?")
    for name in SERVICES:
        for key, value in environment(name).items():
            if re.search(r"SECRET|PASSWORD", key):
                assert re.fullmatch(r"\$\{\w+(:[-?].*)?\}", str(value)), (name, key)
            if "://" in str(value) and "@" in str(value):   # a URL with credentials: the password interpolated
                assert re.search(r"://[^:/]+:\$\{\w+", str(value)), (name, key)


# --- ports, order, health


def test_published_ports_are_design_ports_on_the_loopback_by_default() -> None:
    for name in SERVICES:
        ports = published_ports(name)
        assert {p for _, p, _ in ports} == PUBLISHED.get(name, set()), name
        assert all(published == target and address == "127.0.0.1" for address, published, target in ports), name


def test_the_service_runs_as_replicas_behind_nginx() -> None:
    sut = SERVICES["sut"]
    assert int(interpolate(str(sut["deploy"]["replicas"]))) >= 2
    assert "ports" not in sut and "5240" in [str(p) for p in sut.get("expose", [])]
    upstreams = (COMPOSE_DIR / "nginx" / "upstreams.conf").read_text()
    assert set(re.findall(r"^\s*server\s+(\S+)", upstreams, re.M)) == {"sut:5240"}


def test_every_dependency_waits_for_the_right_condition() -> None:
    for name, svc in SERVICES.items():
        for dep, spec in svc.get("depends_on", {}).items():
            assert dep in SERVICES, (name, dep)
            want = ("service_completed_successfully" if dep in ONE_SHOTS
                    else "service_healthy" if has_healthcheck(dep) else "service_started")
            assert spec.get("condition") == want, (name, dep)
    order = _start_order()
    assert order.index("migrate") < order.index("sut") < order.index("nginx") < order.index("locust-master")


def _start_order() -> list[str]:
    """Services in an order depends_on allows; fails on a cycle."""
    order: list[str] = []
    while len(order) < len(SERVICES):
        ready = [n for n, s in SERVICES.items() if n not in order and set(s.get("depends_on", {})) <= set(order)]
        assert ready, f"a depends_on cycle among {set(SERVICES) - set(order)}"
        order += sorted(ready)
    return order


def test_every_long_running_service_has_a_healthcheck() -> None:
    for name in set(SERVICES) - ONE_SHOTS - set(UNCHECKED):
        assert has_healthcheck(name), name
    for name in ONE_SHOTS:
        assert SERVICES[name].get("restart") == "no", name


def test_the_alert_sink_answers_where_the_shared_alertmanager_config_sends() -> None:
    sink = SERVICES["alert-sink"]
    assert sink["network_mode"] == "service:alertmanager"          # 127.0.0.1 is Alertmanager's own loopback
    port = command("alert-sink")[command("alert-sink").index("--port") + 1]
    routes = (ROOT / "alerts" / "alertmanager.yml").read_text()
    assert f"http://127.0.0.1:{port}/" in routes
    assert "ports" not in sink


def test_migrations_run_once_before_the_replicas() -> None:
    migrate, sut = SERVICES["migrate"], SERVICES["sut"]
    assert command("migrate") == ["python", "-m", "sut", "migrate", "up"]
    assert migrate["image"] == sut["image"] and migrate["build"] == sut["build"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert sut["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "deploy" not in migrate


def test_the_bucket_is_created_private() -> None:
    script = " ".join(command("minio-init"))
    assert "mc mb --ignore-existing" in script and "mc anonymous set none" in script
    assert SERVICES["sut"]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"


# --- the image


def test_the_dockerfile_builds_a_slim_non_root_image_that_checks_its_health() -> None:
    directives = {line.split()[0]: line for line in DOCKERFILE_LINES if line and not line.startswith("#")}
    assert re.fullmatch(r"FROM python:3\.11-slim(-\w+)?", directives["FROM"]), directives["FROM"]
    user = directives["USER"].split()[1]
    assert user not in ("root", "0") and not user.startswith("0:")
    assert "/health" in directives["HEALTHCHECK"] and "urllib" in directives["HEALTHCHECK"]
    assert "curl" not in directives["HEALTHCHECK"]
    assert directives["EXPOSE"] == "EXPOSE 5240"
    assert "pip install" in DOCKERFILE.read_text()
    assert directives["CMD"] == 'CMD ["python", "-m", "sut", "serve", "--host", "0.0.0.0", "--port", "5240"]'


# --- Prometheus and the load generator


def test_the_scrape_jobs_are_the_jobs_the_rules_select_on() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    exprs = [str(rule["expr"]) for group in rule_groups() for rule in group["rules"]]
    selected = {name for expr in exprs for name in re.findall(r'\bjob\s*!?=~?\s*"([^"]+)"', expr)}
    assert {"sut", "locust"} <= selected
    assert selected <= jobs, selected - jobs
    assert {"sut", "locust", "postgres", "redis", "node"} <= jobs     # DESIGN.md's jobs


def test_every_prometheus_target_is_a_compose_service() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = [t for job in config["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]]
    targets += [t for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]]
    for target in targets:
        host, port = target.rsplit(":", 1)
        assert host == "localhost" or host in SERVICES, target
        if host == "locust-master":
            assert port == str(environment("locust-master")["CHATLOAD_METRICS_PORT"])
    sut_job = next(job for job in config["scrape_configs"] if job["job_name"] == "sut")
    assert sut_job["dns_sd_configs"][0]["names"] == ["sut"] and sut_job["dns_sd_configs"][0]["port"] == 5240


def test_the_load_generator_runs_as_a_master_and_workers_with_one_stride() -> None:
    master, worker = SERVICES["locust-master"], SERVICES["locust-worker"]
    assert master["profiles"] == ["load"] and worker["profiles"] == ["load"]
    assert master["image"] == worker["image"] == SERVICES["sut"]["image"]
    script = " ".join(command("locust-master"))
    assert "--master" in script and "loadtests/locustfile.py" in script
    expected_workers = re.search(r"--expect-workers (\S+)", script)
    assert expected_workers is not None
    # the workers' pair indexes interleave with a stride of the worker count (loadtests/config.py)
    for env in (environment("locust-master"), environment("locust-worker")):
        assert str(env["CHATLOAD_PAIR_STRIDE"]) == str(worker["deploy"]["replicas"]) == expected_workers.group(1)
        assert env["CHATLOAD_TARGETS"] == "http://nginx:8080" and env["CHATLOAD_METRICS_HOST"] == "0.0.0.0"
    assert command("locust-worker")[-3:] == ["--worker", "--master-host", "locust-master"]
    assert worker.get("restart") == "no", "a restarted worker takes an index past the stride"
    assert mount_source("locust-master", "/app/runs") == ROOT / "runs"


def test_the_master_command_is_valid_shell_after_interpolation() -> None:
    cmd = command("locust-master")
    assert cmd[:2] == ["sh", "-c"]
    done = run("sh", "-n", "-c", interpolate(cmd[2]))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("text", "expected"), [
    ("${A:-1}:8080:8080", "1:8080:8080"), ("${A:-${B:-2}}", "2"), ("${A:?set A}", "<required>"),
    ("$${X}", "${X}"), ("${A}", ""),
])
def test_interpolate_is_composes_with_an_empty_environment(text: str, expected: str) -> None:
    assert interpolate(text) == expected
