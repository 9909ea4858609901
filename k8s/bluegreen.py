"""`python -m k8s.bluegreen deploy|rollback|status`: the service's blue-green rollout, driven with kubectl.

Two Deployments, `sut-blue` and `sut-green` (label `slot: blue|green`, both `app.kubernetes.io/name: sut`), run
side by side; the Service `sut` selects one of them through `slot: <live>` in its selector. A deploy never touches
the live slot:

1. the live slot is read from the Service (`--dry-run` cannot ask a cluster, so it takes `--live`);
2. the schema migration runs first, as a uniquely named copy of the Job in k8s/base/migrate-job.yaml
   (`sut-migrate-<image tag>-<UTC time>`, its `migrate` container on the new image) applied from stdin and waited
   for: Jobs are immutable, so a fixed name could not take a new image, and the old slot keeps serving during the
   migration, so migrations must stay compatible with the code that is live (expand now, contract a release later);
3. the idle slot gets the image, is scaled to the live slot's replica count (or `--replicas`) and is waited for;
4. one patch switches the Service's selector to the idle slot and records the slot it replaced in the annotation
   `chatload/previous-slot`, in the same request, so the record never disagrees with the selector.

The old slot keeps running: `rollback` switches back to it (the annotation says which, or `--to`) with no
start-up, scaling it up first only if someone scaled it to 0 meanwhile, and it records the slot it left, so a
rollback can itself be undone. Scaling the old slot to 0 once the new one is trusted is left to the operator; the
command to do it is printed.

Every kubectl command is printed (`+ kubectl ...`, shell-quoted) before it runs; `--dry-run` prints them and runs
nothing. kubectl runs without a shell; the first failure stops the command with kubectl's exit code and a one-line
error, and a missing kubectl exits 2.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
JOB_MANIFEST = ROOT / "k8s" / "base" / "migrate-job.yaml"
PROG = "python -m k8s.bluegreen"
SLOTS = ("blue", "green")
SERVICE = "sut"
CONTAINER = "sut"  # the service's container in both Deployments
MIGRATE_CONTAINER = "migrate"  # the Job's container
PREVIOUS = "chatload/previous-slot"
NAMESPACE = "chatload"
PLACEHOLDER_REPLICAS = 2  # what a dry run shows where a real run reads a replica count
JOB_PREFIX = "sut-migrate-"
JOB_NAME_MAX = 63  # a Job's name becomes the value of its pods' job-name label
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DURATION = re.compile(r"(\d+(\.\d+)?(ms|s|m|h))+")


class Failure(Exception):
    """Stops the command: a one-line message and the exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def other(slot: str) -> str:
    return SLOTS[1 - SLOTS.index(slot)]


def deployment(slot: str) -> str:
    return f"{SERVICE}-{slot}"


class Kubectl:
    """kubectl in one namespace: each command printed, then run unless this is a dry run."""

    def __init__(self, namespace: str, dry_run: bool) -> None:
        self.namespace = namespace
        self.dry_run = dry_run

    def argv(self, args: tuple[str, ...]) -> list[str]:
        return ["kubectl", "-n", self.namespace, *args]

    def show(self, args: tuple[str, ...], note: str = "") -> list[str]:
        argv = self.argv(args)
        print(f"+ {shlex.join(argv)}" + (f"  # {note}" if note else ""), flush=True)
        return argv

    def _call(self, args: tuple[str, ...], note: str, hint: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        argv = self.show(args, note)
        try:
            done = subprocess.run(argv, text=True, check=False, **kwargs)
        except FileNotFoundError:
            raise Failure("kubectl is not on PATH: install it (https://kubernetes.io/docs/tasks/tools/)", 2) from None
        if done.returncode != 0:
            why = f"`{shlex.join(argv)}` failed with exit code {done.returncode}"
            raise Failure(f"{why}: {hint}" if hint else why, done.returncode if done.returncode > 0 else 1)
        return done

    def run(self, *args: str, stdin: str | None = None, note: str = "", hint: str = "") -> None:
        """A change: printed, and run unless this is a dry run."""
        if self.dry_run:
            self.show(args, note)
            return
        self._call(args, note, hint, input=stdin)

    def read(self, *args: str) -> str:
        """A query's output (never called in a dry run: there is no cluster to ask)."""
        if self.dry_run:
            raise RuntimeError(f"a dry run reads nothing: kubectl {shlex.join(args)}")
        return self._call(args, "", "", stdout=subprocess.PIPE).stdout.strip()


def live_slot(kubectl: Kubectl) -> str:
    slot = kubectl.read("get", "service", SERVICE, "-o", "jsonpath={.spec.selector.slot}")
    if slot not in SLOTS:
        found = f"slot {slot!r}" if slot else "no slot"
        raise Failure(f"service {SERVICE} selects {found}, not blue or green: apply the bluegreen overlay first")
    return slot


def previous_slot(kubectl: Kubectl) -> str:
    slot = kubectl.read("get", "service", SERVICE, "-o", f"jsonpath={{.metadata.annotations.{PREVIOUS}}}")
    if slot not in SLOTS:
        raise Failure(f"service {SERVICE} has no {PREVIOUS} annotation (no deploy recorded one): pass --to", 2)
    return slot


def replicas(kubectl: Kubectl, slot: str) -> int:
    text = kubectl.read("get", "deployment", deployment(slot), "-o", "jsonpath={.spec.replicas}")
    try:
        return int(text)
    except ValueError:
        raise Failure(f"deployment {deployment(slot)} reports replicas {text!r}, not a number") from None


def switch_patch(to: str, previous: str) -> str:
    """One patch: the selector to the new slot and the annotation naming the slot it replaces."""
    body = {"metadata": {"annotations": {PREVIOUS: previous}}, "spec": {"selector": {"slot": to}}}
    return json.dumps(body, separators=(",", ":"))


def job_name(image: str, now: datetime) -> str:
    """`sut-migrate-<tag>-<UTC time>`: the tag (or digest) made a DNS label, cut so the name fits 63 characters."""
    ref = image.rsplit("/", 1)[-1]
    if "@" in ref:
        tag = ref.split("@", 1)[1].rsplit(":", 1)[-1][:12]
    else:
        tag = ref.split(":", 1)[1] if ":" in ref else "latest"
    stamp = now.astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    room = JOB_NAME_MAX - len(JOB_PREFIX) - len(stamp) - 1
    slug = re.sub(r"[^a-z0-9]+", "-", tag.lower())[:room].strip("-")
    return f"{JOB_PREFIX}{slug}-{stamp}" if slug else f"{JOB_PREFIX}{stamp}"


def migrate_job(manifest: Path, image: str, name: str) -> dict[str, Any]:
    """The committed migration Job under a new name, its `migrate` container on `image`, namespace left to -n."""
    try:
        docs = list(yaml.safe_load_all(manifest.read_text()))
    except OSError as exc:
        raise Failure(f"{manifest}: {exc.strerror}", 2) from None
    except yaml.YAMLError as exc:
        raise Failure(f"{manifest}: not YAML: {str(exc).splitlines()[0]}", 2) from None
    jobs = [doc for doc in docs if isinstance(doc, dict) and doc.get("kind") == "Job"]
    if len(jobs) != 1:
        raise Failure(f"{manifest}: expected one Job, found {len(jobs)}", 2)
    job = jobs[0]
    containers = job.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    matching = [c for c in containers if isinstance(c, dict) and c.get("name") == MIGRATE_CONTAINER]
    if not matching:
        raise Failure(f"{manifest}: the Job has no container named {MIGRATE_CONTAINER}", 2)
    matching[0]["image"] = image
    metadata = job.setdefault("metadata", {})
    metadata["name"] = name
    metadata.pop("namespace", None)
    return job


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def deploy(kubectl: Kubectl, args: argparse.Namespace, now: datetime) -> None:
    ns = kubectl.namespace
    name = job_name(args.image, now)
    job = migrate_job(args.job_manifest, args.image, name)  # a broken manifest stops the deploy before kubectl runs
    if kubectl.dry_run:
        if args.live is None:
            raise Failure("--dry-run needs --live blue|green: no cluster is asked which slot is live", 2)
        live = args.live
        print(f"# live slot: {live} (--live)")
    else:
        live = live_slot(kubectl)
        if args.live is not None and args.live != live:
            raise Failure(f"service {SERVICE} routes to {live}, not {args.live} (--live): nothing changed", 2)
    idle = other(live)
    if args.replicas is not None:
        count = args.replicas
    elif kubectl.dry_run:
        count = PLACEHOLDER_REPLICAS
        print(f"# replicas: {count} (placeholder: a real run matches {deployment(live)}'s count)")
    else:
        count = max(1, replicas(kubectl, live))

    kubectl.run("apply", "-f", "-", stdin=yaml.safe_dump(job, sort_keys=False),
                note=f"stdin: Job {name} from {_rel(args.job_manifest)}, image {args.image}")
    kubectl.run("wait", "--for=condition=complete", f"job/{name}", "--timeout", args.timeout,
                hint=f"the migration did not complete, {live} is still live: kubectl -n {ns} logs job/{name}")
    kubectl.run("set", "image", f"deployment/{deployment(idle)}", f"{CONTAINER}={args.image}")
    kubectl.run("scale", f"deployment/{deployment(idle)}", "--replicas", str(count))
    kubectl.run("rollout", "status", f"deployment/{deployment(idle)}", "--timeout", args.timeout,
                hint=f"{deployment(idle)} is not ready, {live} is still live: kubectl -n {ns} describe "
                     f"deployment/{deployment(idle)}")
    kubectl.run("patch", "service", SERVICE, "-p", switch_patch(idle, live))

    done = "would be" if kubectl.dry_run else "is"
    print(f"{idle} {done} live ({live} was); {deployment(live)} keeps running for a rollback:")
    print(f"  {PROG} rollback --namespace {ns}")
    print(f"once {idle} is trusted, scale {live} down:")
    print(f"  {shlex.join(['kubectl', '-n', ns, 'scale', f'deployment/{deployment(live)}', '--replicas', '0'])}")


def rollback(kubectl: Kubectl, args: argparse.Namespace) -> None:
    if kubectl.dry_run:
        if args.to is None:
            raise Failure("--dry-run needs --to blue|green: no cluster is asked which slot was live before", 2)
        target, live = args.to, other(args.to)
        print(f"# live slot: {live} (the other of --to)")
        count = args.replicas if args.replicas is not None else PLACEHOLDER_REPLICAS
        kubectl.run("scale", f"deployment/{deployment(target)}", "--replicas", str(count),
                    note=f"only if {deployment(target)} has 0 replicas; a real run matches {deployment(live)}'s")
    else:
        live = live_slot(kubectl)
        target = args.to if args.to is not None else previous_slot(kubectl)
        if target == live:
            raise Failure(f"{target} is already live: nothing changed", 2)
        if replicas(kubectl, target) == 0:
            count = args.replicas if args.replicas is not None else max(1, replicas(kubectl, live))
            kubectl.run("scale", f"deployment/{deployment(target)}", "--replicas", str(count))
    kubectl.run("rollout", "status", f"deployment/{deployment(target)}", "--timeout", args.timeout,
                hint=f"{deployment(target)} is not ready, {live} is still live")
    kubectl.run("patch", "service", SERVICE, "-p", switch_patch(target, live))
    done = "would be" if kubectl.dry_run else "is"
    print(f"{target} {done} live again ({live} was); {deployment(live)} keeps running")


def status(kubectl: Kubectl, args: argparse.Namespace) -> None:
    live = kubectl.read("get", "service", SERVICE, "-o", "jsonpath={.spec.selector.slot}")
    previous = kubectl.read("get", "service", SERVICE, "-o", f"jsonpath={{.metadata.annotations.{PREVIOUS}}}")
    listing = kubectl.read("get", "deployment", *(deployment(s) for s in SLOTS), "--ignore-not-found", "-o", "json")
    try:
        items = {item["metadata"]["name"]: item for item in json.loads(listing or '{"items": []}')["items"]}
    except (ValueError, KeyError, TypeError):
        raise Failure("kubectl get deployment -o json printed something that is not a list of Deployments") from None
    print(f"live slot: {live or '(none: the service selects no slot)'}")
    print(f"previous slot: {previous or '(none recorded)'}")
    for slot in SLOTS:
        item = items.get(deployment(slot))
        if item is None:
            print(f"{deployment(slot)}: not found")
            continue
        ready = item.get("status", {}).get("readyReplicas", 0)
        wanted = item.get("spec", {}).get("replicas", 0)
        images = [c.get("image", "?") for c in item.get("spec", {}).get("template", {}).get("spec", {})
                  .get("containers", []) if c.get("name") == CONTAINER]
        print(f"{deployment(slot)}: {ready}/{wanted} ready, image {images[0] if images else '?'}")


def _namespace(text: str) -> str:
    if not _DNS_LABEL.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a namespace name (a DNS label)")
    return text


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of replicas >= 1")
    return int(text)


def _duration(text: str) -> str:
    if not _DURATION.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 300s or 5m")
    return text


def _image(text: str) -> str:
    if not text or text.startswith("-") or any(ch.isspace() for ch in text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an image reference")
    return text


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n", 1)[0],
                                  epilog="The design: the docstring of k8s/bluegreen.py.")
    sub = top.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--namespace", "-n", type=_namespace, default=NAMESPACE, help=f"default {NAMESPACE}")

    dep = sub.add_parser("deploy", parents=[common], help="migrate, bring up the idle slot, switch the Service to it")
    dep.add_argument("--image", type=_image, required=True, help="the image both the Job and the slot run")
    dep.add_argument("--dry-run", action="store_true", help="print the kubectl commands, run none")
    dep.add_argument("--live", choices=SLOTS, help="the live slot (required with --dry-run; else checked)")
    dep.add_argument("--replicas", type=_count, help="the new slot's replicas (default: the live slot's)")
    dep.add_argument("--timeout", type=_duration, default="300s", help="for the Job and the rollout (default 300s)")
    dep.add_argument("--job-manifest", type=Path, default=JOB_MANIFEST,
                     help=f"the migration Job to copy (default {_rel(JOB_MANIFEST)})")

    back = sub.add_parser("rollback", parents=[common], help="switch the Service back to the previous slot")
    back.add_argument("--to", choices=SLOTS, help="the slot to go back to (default: the recorded previous slot; "
                                                  "required with --dry-run)")
    back.add_argument("--dry-run", action="store_true", help="print the kubectl commands, run none")
    back.add_argument("--replicas", type=_count, help="if the slot was scaled to 0: its replicas (default: the "
                                                      f"live slot's; {PLACEHOLDER_REPLICAS} in a dry run)")
    back.add_argument("--timeout", type=_duration, default="300s", help="for the rollout (default 300s)")

    sub.add_parser("status", parents=[common], help="the live and previous slot and both Deployments' readiness")
    return top


def main(argv: list[str] | None = None, now: datetime | None = None) -> int:
    args = parser().parse_args(argv)
    kubectl = Kubectl(args.namespace, getattr(args, "dry_run", False))
    try:
        if args.command == "deploy":
            deploy(kubectl, args, now or datetime.now(UTC))
        elif args.command == "rollback":
            rollback(kubectl, args)
        else:
            status(kubectl, args)
    except Failure as exc:
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return exc.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
