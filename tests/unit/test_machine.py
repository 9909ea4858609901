"""The machine's CPU by part: the runner's sampler (scenarios/machine.py) on real processes, and what the report
makes of its machine.jsonl (reports/machine.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from reports.build import build
from reports.machine import machine_summary
from reports.rundata import load_run
from scenarios.machine import GENERATOR, MACHINE_FILE, CpuByPart
from tests.support import free_port
from tests.unit.test_reports import SEND, T0, steady, write_run

BURN = "import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass\n"
LISTEN_AND_BURN = ("import socket, time\ns = socket.socket()\ns.bind(('127.0.0.1', {port}))\ns.listen()\n"
                   "print('listening', flush=True)\n" + BURN)


def _seconds(path: Path, part: str) -> float:
    """CPU seconds the samples give `part` in all."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return sum(line["cores"].get(part, 0.0) * line["interval"] for line in lines)


def test_the_sampler_gives_the_generator_its_tree_and_an_instance_the_process_on_its_port(tmp_path: Path) -> None:
    port = free_port()
    instance = subprocess.Popen([sys.executable, "-c", LISTEN_AND_BURN.format(port=port, seconds=1.5)],
                                stdout=subprocess.PIPE, text=True)
    assert instance.stdout is not None and instance.stdout.readline().strip() == "listening"
    # the generator: a shell standing for the runner, and the process it started (as Locust's workers are)
    generator = subprocess.Popen(["sh", "-c", f"{sys.executable} -c '{BURN.format(seconds=1.5)}'; sleep 0.2"])
    try:
        sampler = CpuByPart(tmp_path, [f"http://127.0.0.1:{port}", "http://10.9.8.7:5240"], every=0.3,
                            root=generator.pid).start()
        generator.wait(timeout=20)
        instance.wait(timeout=20)
        sampler.stop()
    finally:
        instance.kill()
        generator.kill()
        instance.communicate()
    path = tmp_path / MACHINE_FILE
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines and all(line["interval"] > 0 and line["cpus"] >= 1 for line in lines)
    # each burned ~1.5 s of wall time; on a shared machine it gets at least a fifth of a core of it
    assert _seconds(path, GENERATOR) > 0.3
    assert _seconds(path, f"service 127.0.0.1:{port}") > 0.3
    assert sampler.generator_seconds >= _seconds(path, GENERATOR) * 0.99
    assert not any("10.9.8.7" in part for line in lines for part in line["cores"])   # a remote instance: no part
    assert all(line["busy"] <= line["cpus"] * 1.05 for line in lines)


def machine_lines(service: tuple[float, float], other: float = 0.1) -> list[dict[str, Any]]:
    """2 s samples over 66 s of a 2-CPU machine: the generator at 0.5 core, the instance at service[0] until 30 s
    then service[1]."""
    lines = []
    for k in range(1, 34):
        cores = {GENERATOR: 0.5, "service 127.0.0.1:5240": service[0] if 2 * k <= 30 else service[1],
                 "other": other}
        lines.append({"at": T0 + 2 * k, "interval": 2.0, "cpus": 2, "busy": round(sum(cores.values()), 3),
                      "cores": cores})
    return lines


def write_machine(run_dir: Path, lines: list[dict[str, Any]]) -> None:
    (run_dir / MACHINE_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_each_part_is_its_samples_mean_over_the_send_window_and_the_report_says_what_bounded_it(
        tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", slos=[], hist={SEND: steady(0, 60, [5] * 20)})   # send window 10..60 s
    write_machine(run_dir, machine_lines((0.8, 1.2)))
    summary = machine_summary(load_run(run_dir))
    assert summary is not None
    # 25 whole intervals in the window: 10 at 0.8, 15 at 1.2
    assert summary["parts"]["service 127.0.0.1:5240"] == {"cores": 1.04, "peak": 1.2, "share": 0.52}
    assert summary["parts"][GENERATOR]["cores"] == 0.5
    assert list(summary["parts"]) == [GENERATOR, "service 127.0.0.1:5240", "other"]
    assert summary["busy_cores"] == 1.64 and summary["at_capacity"] is False

    write_machine(run_dir, machine_lines((1.3, 1.5)))
    built = build(run_dir)
    assert built["machine"]["at_capacity"] is True and built["machine"]["busy_cores"] >= 1.8
    page = (run_dir / "report.html").read_text()
    assert "<h2>The machine&#x27;s CPU</h2>" in page or "<h2>The machine's CPU</h2>" in page
    assert "The machine was at its CPU" in page and "<img src='machine.png'" in page


def test_a_run_without_samples_has_no_machine_figures(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", slos=[], hist={SEND: steady(0, 60, [5] * 20)})
    assert machine_summary(load_run(run_dir)) is None
    write_machine(run_dir, [line | {"at": T0 + 200 + line["at"] - T0} for line in machine_lines((1, 1))])
    assert machine_summary(load_run(run_dir)) is None   # samples, none inside the send window
    assert build(run_dir)["machine"] is None
    assert "The machine&#x27;s CPU</h2>" not in (run_dir / "report.html").read_text()
