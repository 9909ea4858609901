"""One gevent process, as a Locust worker is, holding N idle socket.io connections of the harness's client.

    python -m benchmarks.idle_worker BASE_URL COUNT FIRST_USER_ID HOLD_SECONDS   (prints one JSON object)

gevent patches the standard library first, before anything imports it, as Locust does.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import gevent.pool  # noqa: E402

from benchmarks.procstat import rss_bytes  # noqa: E402

SECRET = "bench-secret-0123456789abcdef-0123456789"   # benchmarks.pairs.SECRET, not imported: it pulls in asyncio code


def hold(base: str, count: int, first_id: int, seconds: float) -> dict[str, Any]:
    from loadtests.sioclient import ConnectError, SioClient
    from sut.auth import encode_token
    from sut.domain import Role

    clients: list[SioClient] = []
    failures: list[str] = []
    rss0 = rss_bytes(os.getpid())

    def connect(i: int) -> None:
        client = SioClient(base, encode_token(SECRET, user_id=first_id + i, role=Role.CUSTOMER, ttl=3600),
                           lambda event, data: None, timeout=30)
        try:
            client.connect()
            clients.append(client)
        except ConnectError as exc:
            failures.append(str(exc))

    t0 = time.perf_counter()
    gevent.pool.Pool(64).map(connect, range(count))
    connect_seconds = time.perf_counter() - t0
    gevent.sleep(seconds)
    result = {"requested": count, "connected": len(clients), "alive_after_hold": sum(c.connected for c in clients),
              "hold_seconds": seconds, "failures": len(failures), "first_failure": failures[0] if failures else None,
              "connect_seconds": round(connect_seconds, 1), "rss_before_bytes": rss0,
              "rss_bytes": rss_bytes(os.getpid())}
    for client in clients:
        client.close()
    return result


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    print(json.dumps(hold(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))))
