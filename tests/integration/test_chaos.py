"""The chaos scenarios, short forms, on a local stack of their own: its own PostgreSQL (initdb in a temp folder)
and Redis on free ports, two instances behind nginx when nginx is installed. The machine's shared PostgreSQL and
Redis are never restarted. Each run must pass: nothing acked lost or duplicated after catch-up, the fault
applied and undone, the clients recovered within the scenario's bound, every instance healthy again."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_stack import stack
from tests.support import JWT_SECRET, stack_ports

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def chaos_stack() -> Iterator[dict[str, str]]:
    folder = Path(tempfile.mkdtemp(prefix="chatload-chaos-"))
    folder.chmod(0o755)     # as root the stack's PostgreSQL runs as the postgres user, who must reach its folder
    ports, (postgres, redis) = stack_ports(extra=2)
    env = {**os.environ, "STACK_DIR": str(folder), "JWT_SECRET": JWT_SECRET, "RATE_LIMIT_PER_SECOND": "0", **ports,
           "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{postgres}/messaging",
           "REDIS_URL": f"redis://127.0.0.1:{redis}/0"}
    try:
        up = stack(env, "up", "--no-seed")
        assert up.returncode == 0, up.stdout + up.stderr
        yield env
    finally:
        stack(env, "down")
        shutil.rmtree(folder, ignore_errors=True)


def run_chaos(env: dict[str, str], scenario: str, tmp_path: Path) -> tuple[dict[str, Any], str]:
    done = stack(env, "run", scenario, "--", "--duration", "30s", "--no-seed", "--run-dir-root", str(tmp_path),
                 timeout=240)
    out = done.stdout + done.stderr
    [run_dir] = tmp_path.iterdir()
    summary: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    assert done.returncode == 0, out[-3000:]
    return summary, out


@pytest.mark.parametrize(("scenario", "action"), [("chaos-instance", "kill-instance"),
                                                  ("chaos-redis", "restart-redis"),
                                                  ("chaos-postgres", "stop-postgres")])
def test_a_chaos_scenario_loses_and_duplicates_nothing_and_recovers(chaos_stack: dict[str, str], tmp_path: Path,
                                                                    scenario: str, action: str) -> None:
    summary, out = run_chaos(chaos_stack, scenario, tmp_path)
    assert summary["verdict"] == "pass", out[-3000:]
    checker = summary["checker"]
    assert checker["acked"] > 0 and checker["lost"] == 0 and checker["duplicated"] == 0, checker
    [fault] = summary["faults"]
    assert fault["action"] == action and fault["applied"], fault
    assert fault["client_recovery"] is not None and fault["service_back"] is not None, fault
    if action == "stop-postgres":     # health says so while the database is away, and comes back
        assert all(seconds is not None and seconds > 0 for seconds in fault["unhealthy"].values()), fault
        assert fault["failures"] > 0
    if action == "kill-instance":     # only the killed one: instance 2, on the second service port
        second = int(chaos_stack["STACK_SUT_PORT"]) + 1
        assert list(fault["unhealthy"]) == [f"http://127.0.0.1:{second}"], fault
    status = stack(chaos_stack, "status")
    assert status.returncode == 0, status.stdout    # every process of the stack is back
