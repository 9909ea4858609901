"""Is the load generator ever the bottleneck? Its CPU per delivered message next to the service's (the idle
connections one generator process holds are benchmarks/connections.py's).

1. A fixed-rate chat scenario (`python -m scenarios run`, one Locust process, the harness's own personas) against one
   service process: the Locust process's CPU seconds (getrusage of the runner's children) and the service's (its
   process_cpu_seconds_total), both over the same run, per message the checker saw delivered. Target: the generator
   spends less than the service.

    python -m benchmarks.generator [--pairs 60] [--rate 300] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.pairs import SECRET, chat_scenario, drop_database, free_port, prepare_database, s3_server, start_service

ID_BASE = 6_000_000_000


async def generator_cpu(base: str, pairs: int, rate: float, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-generator-") as tmp:
        scenario = Path(tmp) / "generator-cpu.yaml"
        scenario.write_text(chat_scenario("generator-cpu", "fixed-rate chat traffic for the generator's CPU per "
                                          "delivered message", pairs, rate, seconds, warmup=3))
        run = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "scenarios", "run", str(scenario), "--target", base, "--jwt-secret", SECRET,
            "--no-seed", "--metrics-port", str(free_port()), "--run-dir-root", str(Path(tmp) / "runs"),
            env={**os.environ, "CHATLOAD_ID_BASE": str(ID_BASE)}, stdout=subprocess.DEVNULL)
        try:
            await asyncio.wait_for(run.wait(), seconds + 180)
        except TimeoutError:
            run.kill()
            await run.wait()
            raise SystemExit("the generator scenario did not end in time") from None
        if run.returncode not in (0, 2) or not (Path(tmp) / "runs").exists():   # 2: a verdict of FAIL
            raise SystemExit(f"the generator scenario did not run (exit {run.returncode})")
        folder = next((Path(tmp) / "runs").iterdir())
        meta = json.loads((folder / "meta.json").read_text())
        summary = json.loads((folder / "summary.json").read_text())
    cpu = meta["cpu"]
    service = sum(cpu["service_seconds"].values())
    checker = summary["checker"]
    delivered = checker.get("delivered") or checker.get("received") or summary["delivery"]["count"]
    return {"pairs": pairs, "messages_per_second": rate, "wall_seconds": cpu["wall_seconds"],
            "delivered": delivered, "lost": checker.get("lost"), "verdict": summary["verdict"],
            "generator_cpu_seconds": cpu["generator_seconds"], "service_cpu_seconds": round(service, 3),
            "generator_us_per_delivered": round(1e6 * cpu["generator_seconds"] / max(delivered, 1), 1),
            "service_us_per_delivered": round(1e6 * service / max(delivered, 1), 1),
            "generator_over_service": round(cpu["generator_seconds"] / max(service, 1e-9), 3)}


async def main(pairs: int, rate: float, seconds: float) -> dict[str, Any]:
    name, url = await prepare_database()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        with tempfile.TemporaryFile() as log, s3_server() as s3:
            service = start_service(url, port, log, "uvloop", s3)
            try:
                cpu = await generator_cpu(base, pairs, rate, seconds)
            finally:
                service.terminate()
                service.wait(timeout=30)
    finally:
        await drop_database(name)
    return {"cpu_per_delivered": cpu}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.generator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=60)
    parser.add_argument("--rate", type=float, default=300, help="messages/s of the scenario")
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.pairs, args.rate, args.seconds)), indent=2))
