"""The local stack's processes and the config files they read, rendered into the state folder.

The config files are compose's (compose/nginx/chat.conf, compose/prometheus/prometheus.yml, alerts/): the local
stack changes only what the topology forces (loopback addresses, ports, paths) and says so in each rendered file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml

from stack.config import COMPOSE, PACKAGES, ROOT, StackConfig, binary, require

NOFILE_WANTED = 65536


@dataclass(frozen=True)
class Program:
    """One supervised process: what runs, how the stack knows it is ready, and what it listens on."""

    name: str
    command: list[str]
    port: int | None                  # what it listens on (checked free before it starts)
    probe: str                        # "http:<url>" answering 2xx, "tcp" (the port accepts), "redis", "postgres"
    stage: int                        # started stage by stage: 0 storage, 1 the service, 2 in front and around
    user: str | None = None
    stopsignal: str = "TERM"
    stopwaitsecs: int = 20
    what: str = ""                    # for status and errors: "PostgreSQL", "instance 1", ...


@dataclass(frozen=True)
class Plan:
    programs: list[Program]
    skipped: dict[str, str]           # component -> why it is not part of this stack (a binary is missing)


def plan(config: StackConfig, *, own_postgres: bool, own_redis: bool) -> Plan:
    programs: list[Program] = []
    skipped: dict[str, str] = {}
    d = config.dir
    if own_postgres:
        url = urlsplit(config.database_url)
        programs.append(Program(
            "postgres", [require("postgres"), "-D", str(d / "postgres" / "data"), "-p", str(url.port or 5432),
                         "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={d / 'postgres'}",
                         "-c", "max_connections=300", "-c", "fsync=on"],
            url.port or 5432, "postgres", 0, user="postgres" if os.geteuid() == 0 else None, stopsignal="INT",
            stopwaitsecs=30, what="PostgreSQL (the stack's own)"))
    if own_redis:
        url = urlsplit(config.redis_url)
        programs.append(Program(
            "redis", [require("redis-server"), "--bind", "127.0.0.1", "--port", str(url.port or 6379),
                      "--save", "", "--appendonly", "no", "--dir", str(d / "redis")],
            url.port or 6379, "redis", 0, what="Redis (the stack's own)"))
    programs.append(Program(
        "s3", [config.python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(config.ports["s3"])],
        config.ports["s3"], f"http:{config.url('s3')}/moto-api/", 0, what="S3 (moto)"))
    for i, port in enumerate(config.sut_ports):
        programs.append(Program(
            f"sut-{i + 1}", [config.python, "-m", "sut", "serve", "--host", "127.0.0.1", "--port", str(port)],
            port, f"http:http://127.0.0.1:{port}/health", 1, what=f"service instance {i + 1}"))

    def optional(name: str, bin_name: str, command: list[str], port: int, probe: str, what: str) -> None:
        path = binary(bin_name)
        if path is None:
            skipped[name] = f"{bin_name} is not installed (apt-get install {PACKAGES[bin_name]})"
            return
        programs.append(Program(name, [path, *command], port, probe, 2, what=what))

    optional("nginx", "nginx", ["-p", str(d / "nginx"), "-c", str(d / "nginx" / "nginx.conf"),
                                "-e", str(config.logs / "nginx-error.log")],
             config.ports["lb"], f"http:{config.url('lb')}/lb-health", "load balancer (nginx)")
    optional("prometheus", "prometheus", [
        f"--config.file={d / 'prometheus' / 'prometheus.yml'}", f"--storage.tsdb.path={d / 'prometheus' / 'data'}",
        f"--web.listen-address=127.0.0.1:{config.ports['prometheus']}", "--web.enable-lifecycle",
        "--storage.tsdb.retention.time=15d"],
        config.ports["prometheus"], f"http:{config.url('prometheus')}/-/ready", "Prometheus")
    programs.append(Program(
        "alert-sink", [config.python, "-m", "stack.alertsink", "--port", str(config.ports["alert-sink"])],
        config.ports["alert-sink"], f"http:{config.url('alert-sink')}/", 2, what="alert sink (webhooks)"))
    optional("alertmanager", "prometheus-alertmanager", [
        f"--config.file={d / 'alertmanager' / 'alertmanager.yml'}", f"--storage.path={d / 'alertmanager'}",
        f"--web.listen-address=127.0.0.1:{config.ports['alertmanager']}", "--cluster.listen-address="],
        config.ports["alertmanager"], f"http:{config.url('alertmanager')}/-/ready", "Alertmanager")
    optional("postgres-exporter", "prometheus-postgres-exporter", [
        f"--web.listen-address=127.0.0.1:{config.ports['postgres-exporter']}"],
        config.ports["postgres-exporter"], f"http:{config.url('postgres-exporter')}/metrics",
        "postgres_exporter")
    optional("redis-exporter", "prometheus-redis-exporter", [
        f"--web.listen-address=127.0.0.1:{config.ports['redis-exporter']}", f"--redis.addr={config.redis_url}"],
        config.ports["redis-exporter"], f"http:{config.url('redis-exporter')}/metrics", "redis_exporter")
    optional("node-exporter", "prometheus-node-exporter", [
        f"--web.listen-address=127.0.0.1:{config.ports['node-exporter']}"],
        config.ports["node-exporter"], f"http:{config.url('node-exporter')}/metrics", "node_exporter")
    return Plan(programs, skipped)


def nofile_limit() -> int:
    """The open-files limit the stack's processes get: 65,536, or the hard limit when it is lower (containers
    cap it, root included). supervisord raises its soft limit to this, and its children inherit it."""
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return NOFILE_WANTED if hard == resource.RLIM_INFINITY else min(NOFILE_WANTED, hard)


def process_env(config: StackConfig, base: dict[str, str]) -> dict[str, str]:
    """The environment supervisord starts with and every process inherits: the service's settings, and the
    postgres exporter's DSN. Passed this way, not as `environment=` lines, so no value needs quoting for
    supervisord's config parser."""
    db = urlsplit(config.database_url)
    dsn = config.database_url + ("&" if db.query else "?") + "sslmode=disable"
    return {**base, **config.service_env, "DATA_SOURCE_NAME": dsn}


def supervisord_conf(config: StackConfig, the_plan: Plan) -> str:
    d = config.dir
    lines = [
        "; the local stack's processes (python -m stack renders this file: edit stack/render.py instead)",
        "[unix_http_server]", f"file={d / 'supervisor.sock'}", "chmod=0700", "",
        "[supervisord]", f"logfile={config.logs / 'supervisord.log'}", f"pidfile={d / 'supervisord.pid'}",
        f"childlogdir={config.logs}", f"directory={ROOT}", f"minfds={nofile_limit()}", "identifier=chatload-stack",
        "nodaemon=false", "", "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
        "[supervisorctl]", f"serverurl=unix://{d / 'supervisor.sock'}", "",
    ]
    for p in the_plan.programs:
        lines += [f"[program:{p.name}]", "command=" + " ".join(_quote(arg) for arg in p.command),
                  "autostart=false", "autorestart=true", "startsecs=1", "startretries=3",
                  f"stopsignal={p.stopsignal}", f"stopwaitsecs={p.stopwaitsecs}", "stopasgroup=true",
                  "killasgroup=true", "redirect_stderr=true", f"stdout_logfile={config.logs / (p.name + '.log')}",
                  "stdout_logfile_maxbytes=20MB", "stdout_logfile_backups=2", f"priority={100 + 100 * p.stage}"]
        if p.user:
            lines.append(f"user={p.user}")
        lines.append("")
    return "\n".join(lines)


def nginx_conf(config: StackConfig) -> str:
    """The local top-level file: state paths and limits around compose's upstreams and server (both rendered)."""
    d, limit = config.dir / "nginx", nofile_limit()
    temp = "\n".join(f"    {kind}_temp_path {d / 'temp' / kind};" for kind in
                     ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""# the local stack's nginx (python -m stack renders this file): compose's upstreams and server
daemon off;
# every proxied socket.io connection takes two of a worker's files (client and upstream): 4 workers of
# {limit} files each hold about 2 x {limit} connected users, where `auto` (one per core) would hold half that
worker_processes 4;
worker_rlimit_nofile {limit};
error_log {config.logs / 'nginx-error.log'} warn;
pid {d / 'nginx.pid'};

events {{
    worker_connections {max(limit - 512, 1024)};
}}

http {{
{temp}
    include {d / 'upstreams.conf'};
    include {d / 'chat.conf'};
    access_log {config.logs / 'nginx-access.log'} chat buffer=64k flush=5s;
}}
"""


SERVER = re.compile(r"^(\s*)server\s+sut:5240(\s[^;]*)?;", re.MULTILINE)


def nginx_upstreams(config: StackConfig) -> str:
    """compose/nginx/upstreams.conf with each `server sut:5240 ...;` line repeated for every local instance."""
    source = (COMPOSE / "nginx" / "upstreams.conf").read_text()

    def local(match: re.Match[str]) -> str:
        indent, params = match.group(1), match.group(2) or ""
        return "\n".join(f"{indent}server 127.0.0.1:{port}{params};" for port in config.sut_ports)

    rendered, count = SERVER.subn(local, source)
    if count == 0:
        raise ValueError("compose/nginx/upstreams.conf: no `server sut:5240` line to render")
    return "# rendered from compose/nginx/upstreams.conf by python -m stack: only the server lines differ\n" + rendered


LISTEN = re.compile(r"^(\s*)listen\s+[^;]+;", re.MULTILINE)


def nginx_server(config: StackConfig) -> str:
    """compose/nginx/chat.conf with its `listen` lines moved to the stack's loopback port."""
    source = (COMPOSE / "nginx" / "chat.conf").read_text()
    rendered, count = LISTEN.subn(lambda m: f"{m.group(1)}listen 127.0.0.1:{config.ports['lb']};", source)
    if count != 1:
        raise ValueError(f"compose/nginx/chat.conf: expected one listen line, found {count}")
    return "# rendered from compose/nginx/chat.conf by python -m stack: only the listen line differs\n" + rendered


def prometheus_conf(config: StackConfig, the_plan: Plan) -> str:
    """compose/prometheus/prometheus.yml with loopback targets, the repo's rule files and the local Alertmanager.
    Jobs whose component is not part of this stack (its binary is missing) are left out."""
    source: dict[str, Any] = yaml.safe_load((COMPOSE / "prometheus" / "prometheus.yml").read_text())
    running = {p.name for p in the_plan.programs}
    targets = {
        "prometheus": [config.ports["prometheus"]], "alertmanager": [config.ports["alertmanager"]],
        "sut": config.sut_ports, "locust": [config.ports["locust"]],
        "postgres": [config.ports["postgres-exporter"]], "redis": [config.ports["redis-exporter"]],
        "node": [config.ports["node-exporter"]],
    }
    component = {"postgres": "postgres-exporter", "redis": "redis-exporter", "node": "node-exporter"}
    jobs = []
    for job in source["scrape_configs"]:
        name = job["job_name"]
        if name not in targets:
            raise ValueError(f"compose/prometheus/prometheus.yml: job {name!r} has no local address in stack/render.py")
        needed = component.get(name, name)
        if needed in the_plan.skipped:
            continue
        local = {k: v for k, v in job.items() if not k.endswith("_sd_configs") and k != "static_configs"}
        local["static_configs"] = [{"targets": [f"127.0.0.1:{port}" for port in targets[name]]}]
        jobs.append(local)
    rendered = {**source, "scrape_configs": jobs, "rule_files": [str(ROOT / "alerts" / "rules" / "*.yml")]}
    if "alertmanager" in running:
        rendered["alerting"] = {"alertmanagers": [{"static_configs": [
            {"targets": [f"127.0.0.1:{config.ports['alertmanager']}"]}]}]}
    else:
        rendered.pop("alerting", None)
    return ("# rendered from compose/prometheus/prometheus.yml by python -m stack: loopback targets, the repo's rules\n"
            + yaml.safe_dump(rendered, sort_keys=False))


SINK = "http://127.0.0.1:5001/"


def alertmanager_conf(config: StackConfig) -> str:
    """alerts/alertmanager.yml with its webhook receivers moved to the stack's alert sink."""
    source = (ROOT / "alerts" / "alertmanager.yml").read_text()
    if SINK not in source:
        raise ValueError(f"alerts/alertmanager.yml: no receiver at {SINK} to point at the stack's alert sink")
    return ("# rendered from alerts/alertmanager.yml by python -m stack: only the webhook address differs\n"
            + source.replace(SINK, f"{config.url('alert-sink')}/"))


def write_all(config: StackConfig, the_plan: Plan) -> None:
    """Every file the stack's processes read, under the state folder."""
    d = config.dir
    for sub in ("logs", "nginx/temp", "prometheus", "alertmanager", "redis"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    config.write_env_file()
    conf = d / "supervisord.conf"
    conf.write_text(supervisord_conf(config, the_plan))
    conf.chmod(0o600)
    (d / "nginx" / "nginx.conf").write_text(nginx_conf(config))
    (d / "nginx" / "upstreams.conf").write_text(nginx_upstreams(config))
    (d / "nginx" / "chat.conf").write_text(nginx_server(config))
    (d / "prometheus" / "prometheus.yml").write_text(prometheus_conf(config, the_plan))
    (d / "alertmanager" / "alertmanager.yml").write_text(alertmanager_conf(config))


def _quote(arg: str) -> str:
    # supervisord splits its command line with shlex and expands %(...)s
    arg = arg.replace("%", "%%")
    return arg if arg and re.fullmatch(r"[\w@%+=:,./-]+", arg) else "'" + arg.replace("'", "'\\''") + "'"


