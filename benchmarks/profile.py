"""py-spy on the service while a benchmark loads it: raw (collapsed) stacks and their top entries."""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path
from typing import Any


def start_profile(pid: int, seconds: float, out: Path, name: str) -> subprocess.Popen[bytes] | None:
    """py-spy record of `pid` for `seconds` into OUT/NAME.raw (100 samples/s, without pausing the process). Its
    duration counts from its start, attaching included (up to a second on a loaded machine): give it the whole
    measured loop and wait for it after."""
    out.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        print("py-spy is not installed in the venv (make venv): no profile", file=sys.stderr)
        return None
    return subprocess.Popen([str(spy), "record", "-p", str(pid), "-d", str(max(1, int(seconds))), "-r", "100",
                             "--nonblocking", "--format", "raw", "-o", str(out / f"{name}.raw")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def top_entries(raw: Path, count: int = 15) -> list[dict[str, Any]]:
    """The functions with the most samples of their own, with their share inclusive of what they call."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        total += int(n)
        own[frames[-1]] += int(n)
        for frame in set(frames):
            inclusive[frame] += int(n)
    return [{"function": f, "self_percent": round(100 * n / total, 1),
             "inclusive_percent": round(100 * inclusive[f] / total, 1)} for f, n in own.most_common(count)]
