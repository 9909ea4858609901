"""One gevent process, as a Locust worker is, holding N idle socket.io connections of the harness's client.

    python -m benchmarks.idle_worker BASE_URL COUNT FIRST_USER_ID HOLD_SECONDS
        [--source-addresses 127.0.0.1,127.0.0.2] [--service-pid PID] [--sample-every 1000] [--concurrency 64]

Prints one JSON object: what connected and held, the connect time, this process's CPU seconds over the connects
(and the service's with --service-pid), and a sample (connections, this process's RSS, the service's RSS) after
every --sample-every connections, for the slope of memory against connections.

gevent patches the standard library first, before anything imports it, as Locust does.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import gevent.pool  # noqa: E402

from benchmarks.procstat import cpu_seconds, rss_bytes  # noqa: E402

SECRET = "bench-secret-0123456789abcdef-0123456789"   # benchmarks.pairs.SECRET, not imported: it pulls in asyncio code


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def hold(base: str, count: int, first_id: int, seconds: float, *, sources: list[str] | None = None,
         service_pid: int | None = None, sample_every: int = 1000, concurrency: int = 64) -> dict[str, Any]:
    from loadtests.sioclient import ConnectError, SioClient
    from sut.auth import encode_token
    from sut.domain import Role

    clients: list[SioClient] = []
    failures: list[str] = []
    me = os.getpid()

    def sample() -> list[int]:
        return [len(clients), rss_bytes(me), rss_bytes(service_pid) if service_pid else 0]

    samples = [sample()]

    def connect(i: int) -> None:
        client = SioClient(base, encode_token(SECRET, user_id=first_id + i, role=Role.CUSTOMER, ttl=3600),
                           lambda event, data: None, timeout=30,
                           source_address=sources[i % len(sources)] if sources else None)
        try:
            client.connect()
            clients.append(client)
        except ConnectError as exc:
            failures.append(str(exc))
            return
        if len(clients) % sample_every == 0:
            samples.append(sample())

    cpu0, service_cpu0 = _own_cpu(), cpu_seconds(service_pid) if service_pid else 0.0
    t0 = time.perf_counter()
    gevent.pool.Pool(concurrency).map(connect, range(count))
    connect_seconds = time.perf_counter() - t0
    cpu, service_cpu = _own_cpu() - cpu0, (cpu_seconds(service_pid) - service_cpu0) if service_pid else None
    gevent.sleep(seconds)
    samples.append(sample())
    result = {"requested": count, "connected": len(clients), "alive_after_hold": sum(c.connected for c in clients),
              "hold_seconds": seconds, "failures": len(failures), "first_failure": failures[0] if failures else None,
              "connect_seconds": round(connect_seconds, 2), "concurrency": concurrency,
              "generator_cpu_seconds": round(cpu, 2),
              "service_cpu_seconds": None if service_cpu is None else round(service_cpu, 2),
              "source_addresses": sorted({c.local_address for c in clients if c.local_address}),
              "rss_before_bytes": samples[0][1], "rss_bytes": samples[-1][1], "samples": samples}
    # then every connection closes at once, as a generator's end or a network partition does: the service's CPU
    # until it is idle again is what the disconnects cost it
    t0, service_cpu0 = time.perf_counter(), cpu_seconds(service_pid) if service_pid else 0.0
    for client in clients:
        client.close()
    if service_pid:
        result["disconnect_service_cpu_seconds"] = round(_until_idle(service_pid) - service_cpu0, 2)
        result["disconnect_seconds"] = round(time.perf_counter() - t0, 2)
    return result


def _until_idle(pid: int, limit: float = 300.0) -> float:
    """The process's CPU seconds once it has used under 2 % of a core over half a second (at most `limit` s)."""
    deadline = time.monotonic() + limit
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        gevent.sleep(0.5)
        now = cpu_seconds(pid)
        if now - last < 0.01:
            return now
        last = now
    return last


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.idle_worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("base")
    parser.add_argument("count", type=int)
    parser.add_argument("first_user_id", type=int)
    parser.add_argument("hold_seconds", type=float)
    parser.add_argument("--source-addresses", default=None, help="comma-separated local addresses, round robin")
    parser.add_argument("--service-pid", type=int, default=None, help="the service process, for its RSS and CPU")
    parser.add_argument("--sample-every", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64, help="connects in flight at once")
    a = parser.parse_args()
    print(json.dumps(hold(a.base, a.count, a.first_user_id, a.hold_seconds,
                          sources=a.source_addresses.split(",") if a.source_addresses else None,
                          service_pid=a.service_pid, sample_every=a.sample_every, concurrency=a.concurrency)))
