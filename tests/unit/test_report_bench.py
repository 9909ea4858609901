"""benchmarks.report_build runs end to end on a small run (the one-hour figures come from `make bench`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_report_build_benchmark_reports_its_figures(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.report_build", "--samples", "30000", "--hours", "0.05",
                           "--repeats", "1", "--keep", str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                          timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout[: done.stdout.rindex("}") + 1])
    assert abs(result["samples"] - 30_000) < 1_500
    assert result["interval_records"] > 0 and result["stats_history_rows"] > 0
    assert result["build_seconds_median"] > 0 and result["peak_rss_mib"] > 0
    assert "latency.png" in result["plots"]
    assert "| peak RSS |" in done.stdout
    assert (tmp_path / "hour-run" / "report.html").is_file()
