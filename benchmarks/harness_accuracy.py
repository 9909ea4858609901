"""Does the harness measure delivery latency right? Its figures next to a plain asyncio client's, same traffic.

Starts its own service (private database, free port), runs a fixed-rate chat scenario with
`python -m scenarios run` (N pairs, R messages/s), and meanwhile, in this process, a plain python-socketio
`AsyncClient` connects as a second device of every pair's artist: the service sends each `message:new` to both
devices. The observer measures customer -> artist delivery on the wall clock (the payload carries the send time on
both clocks; sender and observer are on one machine), for the messages sent inside the run's evaluation window.
Reports both p50/p99 and their ratios; the harness is right when they agree within 10%.

    python -m benchmarks.harness_accuracy [--pairs 60] [--rate 300] [--seconds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jwt
import socketio

from benchmarks.pairs import SECRET, chat_scenario, drop_database, free_port, pct, prepare_database, start_service

ID_BASE = 5_000_000_000


async def _observe(base: str, pairs: int, samples: list[tuple[float, float]], ready: asyncio.Event,
                   done: asyncio.Event) -> None:
    clients = []
    for p in range(pairs):
        customer, artist = ID_BASE + 2 * p, ID_BASE + 2 * p + 1
        token = jwt.encode({"sub": str(artist), "role": "artist", "exp": int(time.time()) + 3600}, SECRET,
                           algorithm="HS256")
        sio = socketio.AsyncClient()

        def on_message(data: dict[str, Any], customer: int = customer) -> None:
            now = time.time()
            message = data.get("message") or {}
            body = message.get("body") or ""
            if message.get("sender_id") != customer or "~" not in body:
                return
            sent = float(body[body.rfind("~") + 1:].split()[0])
            samples.append((sent, now - sent))

        sio.on("message:new", on_message)
        await sio.connect(base, auth={"token": token}, transports=["websocket"])
        clients.append(sio)
    ready.set()
    await done.wait()
    for sio in clients:
        await sio.disconnect()


async def main(pairs: int, rate: float, seconds: float) -> dict[str, Any]:
    name, url = await prepare_database()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    samples: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="accuracy-") as tmp:
        service = start_service(url, port, subprocess.DEVNULL, "uvloop")
        try:
            scenario = Path(tmp) / "accuracy.yaml"
            scenario.write_text(chat_scenario("accuracy", "fixed-rate chat traffic for the harness accuracy check",
                                              pairs, rate, seconds, warmup=5))
            ready, done = asyncio.Event(), asyncio.Event()
            observer = asyncio.create_task(_observe(base, pairs, samples, ready, done))
            await ready.wait()
            env = {**os.environ, "CHATLOAD_ID_BASE": str(ID_BASE)}
            run = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "scenarios", "run", str(scenario), "--target", base, "--jwt-secret", SECRET,
                "--no-seed", "--metrics-port", str(free_port()), "--run-dir-root", str(Path(tmp) / "runs"),
                env=env, stdout=subprocess.DEVNULL)
            await run.wait()
            done.set()
            await observer
            folder = next((Path(tmp) / "runs").iterdir())
            summary = json.loads((folder / "summary.json").read_text())
            timeline = json.loads((folder / "timeline.json").read_text())
        finally:
            service.terminate()
            service.wait(timeout=20)
            await drop_database(name)
    window = [lat for sent, lat in samples if timeline["warmup_end"] <= sent < timeline["send_end"]]
    harness = summary["delivery"]
    observed = {"count": len(window), "p50": pct(window, 0.5) / 1000, "p99": pct(window, 0.99) / 1000}  # seconds
    return {
        "pairs": pairs, "target_messages_per_second": rate, "seconds": seconds,
        "harness_ms": {"count": harness["count"], "p50": round(harness["p50"] * 1000, 2),
                       "p99": round(harness["p99"] * 1000, 2)},
        "asyncio_observer_ms": {"count": observed["count"], "p50": round(observed["p50"] * 1000, 2),
                                "p99": round(observed["p99"] * 1000, 2)},
        "ratio_p50": round(observed["p50"] / harness["p50"], 3),
        "ratio_p99": round(observed["p99"] / harness["p99"], 3),
        "checker": summary["checker"], "verdict": summary["verdict"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=60)
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--seconds", type=float, default=40)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.pairs, args.rate, args.seconds)), indent=1))
