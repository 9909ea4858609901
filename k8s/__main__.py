"""`python -m k8s [--check]`: write k8s/monitoring/prometheusrule.yaml and dashboards.yaml from alerts/rules/*.yml
and dashboards/json/*.json (or check the committed files are current). The design: k8s/generate.py."""

from __future__ import annotations

import argparse
import sys

import yaml

from k8s.generate import outputs, stale, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m k8s", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file differs")
    args = parser.parse_args(argv)
    try:
        wanted = outputs()
    except (OSError, ValueError, yaml.YAMLError) as exc:  # an unreadable source, a broken rule file or dashboard
        print(f"python -m k8s: {exc}", file=sys.stderr)
        return 1
    if args.check:
        bad = stale(wanted)
        for path in bad:
            print(f"{path} is out of date: run `python -m k8s`", file=sys.stderr)
        if not bad:
            print(f"{', '.join(str(p) for p in wanted)} are current")
        return 1 if bad else 0
    for path, text in wanted.items():
        write(path, text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
