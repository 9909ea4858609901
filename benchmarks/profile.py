"""py-spy on the service while a benchmark loads it: raw (collapsed) stacks and their top entries."""

from __future__ import annotations

import collections
import contextlib
import itertools
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ATTACHED = "Sampling process"
COUNTS = re.compile(r"Samples: (\d+) Errors: (\d+)")


@contextlib.contextmanager
def profiling(pid: int, out: Path | None, name: str, attach_seconds: float = 30) -> Iterator[dict[str, Any]]:
    """py-spy records `pid` (100 samples/s, without pausing it) over the with block into OUT/NAME.raw.

    The block starts once py-spy has attached (it says so: reading the interpreter's symbols takes up to seconds
    on a loaded machine) and py-spy stops when the block ends, so the samples cover the measured work and nothing
    else. When the block ends the yielded dict gets py-spy's counts, {"samples": N, "errors": M}, and with samples
    also "raw" (the file) and "top" (top_entries). With `out` None, or py-spy absent or unable to attach (its words
    on stderr), the block runs unprofiled and the dict stays empty."""
    counts: dict[str, Any] = {}
    spy = _attach(pid, out, name, attach_seconds) if out is not None else None
    try:
        yield counts
    finally:
        if spy is not None and out is not None:
            counts.update(_stop(spy))
            raw = out / f"{name}.raw"
            if counts.get("samples"):
                counts.update(raw=str(raw), top=top_entries(raw))
            elif counts:
                print(f"py-spy recorded no samples of the busy service ({counts['errors']} errors): no profile",
                      file=sys.stderr)


def _attach(pid: int, out: Path, name: str, seconds: float) -> subprocess.Popen[str] | None:
    out.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).with_name("py-spy")
    if not exe.exists():
        print("py-spy is not installed in the venv (make venv): no profile", file=sys.stderr)
        return None
    spy = subprocess.Popen([str(exe), "record", "-p", str(pid), "-r", "100", "--nonblocking", "--format", "raw",
                            "-o", str(out / f"{name}.raw")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    said: list[str] = []
    deadline = time.monotonic() + seconds
    assert spy.stdout is not None
    with selectors.DefaultSelector() as ready:
        ready.register(spy.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0 and ready.select(left):
            line = spy.stdout.readline()
            if not line:  # py-spy ended: it could not attach
                break
            said.append(line)
            if ATTACHED in line:
                return spy
    spy.kill()
    said += spy.communicate()[0].splitlines()
    said = list(itertools.takewhile(lambda line: "backtrace" not in line, said))   # the error, not its trace
    why = " / ".join(s.strip() for s in said if s.strip()) or f"nothing within {seconds:.0f} s"
    print(f"py-spy did not attach to the service ({why}): no profile", file=sys.stderr)
    return None


def _stop(spy: subprocess.Popen[str]) -> dict[str, int]:
    """Stops py-spy as Control-C would (it writes its file then) and returns its counts."""
    spy.send_signal(signal.SIGINT)
    try:
        said, _ = spy.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        spy.kill()
        said, _ = spy.communicate()
    found = COUNTS.search(said)
    if found is None:
        print(f"py-spy wrote no profile: {' / '.join(said.splitlines()[-3:]).strip()}", file=sys.stderr)
        return {}
    return {"samples": int(found[1]), "errors": int(found[2])}


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
