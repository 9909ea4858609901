"""What one socket.io connection costs and how fast one instance takes new ones.

One service process (uvloop, as deployed; its connect bucket off, CONNECT_ADMISSION_PER_SECOND=0, so the figure
is the instance's own ceiling and not the bucket's rate) and one gevent generator process, as a Locust worker is
(benchmarks/idle_worker.py), each connection a different user bound round robin to two 127.0.0.x source
addresses. The worker records (connections, its RSS, the service's RSS) every 1,000 connections; bytes per
connection is the slope of RSS against connections (numpy polyfit, as the report's "Users held" does), so the
interpreter, the pools and the caches each process starts with are not counted, and connections per GiB is
2^30 over it. Connects/s is the connections over the connect phase's wall time, with both processes' CPU over the
same phase: a process near 100 % of a core is the bound. The instance's connect bucket (1,000/s by default)
should sit below that ceiling, or it does not protect the instance in a reconnect storm. Last, every connection
closes at once (a generator's end, a partition): the service's CPU until it is idle again, per disconnect, next to
its CPU per connect.

    python -m benchmarks.connections [--connections 10000] [--hold 5] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from typing import Any

from benchmarks.pairs import drop_database, free_port, prepare_database, s3_server, start_service
from reports.connections import bytes_per_connection
from sut.settings import Settings

ID_BASE = 6_200_000_000
SOURCES = "127.0.0.1,127.0.0.2"


def _per_gib(slope: float | None) -> float | None:
    return None if not slope or slope <= 0 else round(2**30 / slope)


def _ms_each(seconds: float | None, count: int) -> float | None:
    return None if seconds is None or not count else round(1000 * seconds / count, 3)


def summarize(worker: dict[str, Any], admission_rate: float) -> dict[str, Any]:
    """The figures of one idle-connection run: slopes, per GiB, connects/s and who was busy."""
    samples = worker["samples"]
    service = bytes_per_connection([(n, svc) for n, _gen, svc in samples[:-1]])   # the last: after the hold
    generator = bytes_per_connection([(n, gen) for n, gen, _svc in samples[:-1]])
    seconds = max(worker["connect_seconds"], 1e-9)
    rate = worker["connected"] / seconds
    return {**worker, "rss_mib": round(worker["rss_bytes"] / 2**20, 1),
            "service_bytes_per_connection": None if service is None else round(service),
            "generator_bytes_per_connection": None if generator is None else round(generator),
            "service_kib_per_connection": None if service is None else round(service / 1024, 1),
            "generator_kib_per_connection": None if generator is None else round(generator / 1024, 1),
            "service_connections_per_gib": _per_gib(service), "generator_connections_per_gib": _per_gib(generator),
            "connects_per_second": round(rate, 1),
            "service_busy_percent": None if worker["service_cpu_seconds"] is None
            else round(100 * worker["service_cpu_seconds"] / seconds, 1),
            "generator_busy_percent": round(100 * worker["generator_cpu_seconds"] / seconds, 1),
            "service_cpu_ms_per_connect": _ms_each(worker["service_cpu_seconds"], worker["connected"]),
            "service_cpu_ms_per_disconnect": _ms_each(worker.get("disconnect_service_cpu_seconds"),
                                                      worker["connected"]),
            "admission_per_second": admission_rate,
            "ceiling_over_admission": round(rate / admission_rate, 2) if admission_rate else None}


async def hold(base: str, service_pid: int, count: int, hold_seconds: float, concurrency: int) -> dict[str, Any]:
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.idle_worker", base, str(count), str(ID_BASE), str(hold_seconds),
        "--source-addresses", SOURCES, "--service-pid", str(service_pid), "--sample-every", str(max(count // 10, 1)),
        "--concurrency", str(concurrency), stdout=subprocess.PIPE)
    try:
        out, _ = await asyncio.wait_for(worker.communicate(), timeout=120 + count / 50)
    except TimeoutError:
        worker.kill()
        await worker.wait()
        raise SystemExit("the idle-connection worker did not end in time") from None
    if worker.returncode != 0:
        raise SystemExit(f"the idle-connection worker failed (exit {worker.returncode})")
    result: dict[str, Any] = json.loads(out)
    return result


async def main(count: int, hold_seconds: float, concurrency: int = 64) -> dict[str, Any]:
    name, url = await prepare_database()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        with tempfile.TemporaryFile() as log, s3_server() as s3:
            service = start_service(url, port, log, "uvloop",
                                    {**s3, "CONNECT_ADMISSION_PER_SECOND": "0", "MAX_CONNECTIONS": "0"})
            try:
                worker = await hold(base, service.pid, count, hold_seconds, concurrency)
            finally:
                service.terminate()
                service.wait(timeout=30)
    finally:
        await drop_database(name)
    return summarize(worker, Settings().connect_admission_per_second)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.connections", description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000, help="idle connections the generator opens")
    parser.add_argument("--hold", type=float, default=5, help="seconds they are held before the last sample")
    parser.add_argument("--concurrency", type=int, default=64, help="connects in flight at once")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.connections, args.hold, args.concurrency)), indent=2))
