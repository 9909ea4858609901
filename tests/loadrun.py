"""Running the harness from a test: a short scenario file, `python -m scenarios run` as a subprocess."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

from tests.support import JWT_SECRET, ServiceProcess, server_port


def scenario_file(tmp_path: Path, *, seconds: int, slos: str, pairs: int = 6, rate: int = 12, rest: int = 2,
                  upload: int = 1, chat: str | None = None) -> Path:
    path = tmp_path / "short.yaml"
    path.write_text(f"""name: short
description: a short run for the test suite
warmup: 2s
grace: 2s
personas:
  chat: {chat or f"{{pairs: {pairs}}}"}
  rest: {{users: {rest}, conversations: 3, wait: [0.3s, 0.6s]}}
  upload: {{users: {upload}, wait: [1s, 2s]}}
load:
  stages:
    - {{duration: {seconds}s, messages_per_second: {rate}}}
slos:
{slos}
""")
    return path


def start_run(scenario: str | Path, targets: list[ServiceProcess], tmp_path: Path, *extra: str,
              metrics_port: int | None = None) -> subprocess.Popen[str]:
    # the harness's users take ids up to its base + 3e8: a range new_id() never reaches (it stays below 9e15)
    env = {**os.environ, "CHATLOAD_ID_BASE": str(random.randrange(10**16, 10**17, 10**9))}
    env.pop("JWT_SECRET", None)
    cmd = [sys.executable, "-m", "scenarios", "run", str(scenario),
           "--target", ",".join(t.url for t in targets), "--run-dir-root", str(tmp_path / "runs"),
           "--metrics-port", str(metrics_port or server_port()), "--jwt-secret", JWT_SECRET, "--no-seed",
           "--prometheus", "http://127.0.0.1:1", *extra]
    return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen[str], timeout: float = 150) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out
