"""k8s/: every manifest validates (kubernetes-validate, strict; the Prometheus Operator resources against their
CRDs), every file is listed in its kustomization, and the manifests agree with compose, the service's settings,
the load generator and the alert rules. Offline: no cluster."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from scenarios.model import load_scenario
from tests.unit.test_compose import SERVICES, env_names, environment, locust_env_names

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
CRDS = ROOT / "tests" / "data" / "prometheus-operator"
KUSTOMIZATIONS = sorted(K8S.rglob("kustomization.yaml"))
OVERLAYS = ("dev", "prod", "bluegreen")
OPERATOR_KINDS = {"ServiceMonitor": "servicemonitors", "PodMonitor": "podmonitors",
                  "PrometheusRule": "prometheusrules"}
K8S_VERSION = "1.30.0"
GITIGNORED_INPUTS = {K8S / "overlays" / "dev" / "secrets.env", K8S / "overlays" / "dev" / "deps.env"}


def manifests() -> list[tuple[Path, dict[str, Any]]]:
    """Every resource document under k8s/ (kustomizations, generator inputs and `$patch: delete` entries out)."""
    found = []
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml" or path.parent.name == "scenarios":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and "$patch" not in doc:
                found.append((path, doc))
    return found


def by_kind(kind: str, name: str) -> dict[str, Any]:
    matches = [doc for path, doc in manifests() if doc["kind"] == kind and doc["metadata"]["name"] == name
               and "overlays" not in path.parts]
    assert len(matches) == 1, (kind, name, len(matches))
    return matches[0]


def kustomization(directory: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((directory / "kustomization.yaml").read_text())
    return loaded


def listed(k: dict[str, Any]) -> list[str]:
    """Every path a kustomization names: resources, patches, generator inputs."""
    paths = list(k.get("resources", []))
    paths += [p["path"] for p in k.get("patches", []) if "path" in p]
    for generator in (*k.get("configMapGenerator", []), *k.get("secretGenerator", [])):
        paths += generator.get("files", []) + generator.get("envs", [])
    return paths


def container(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in doc["spec"]["template"]["spec"]["containers"] if c["name"] == name)


# --- validation -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "doc"), [(p, d) for p, d in manifests() if d["kind"] not in OPERATOR_KINDS],
                         ids=lambda v: str(v.relative_to(K8S)) if isinstance(v, Path) else "")
def test_every_manifest_validates_strictly(path: Path, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_a_bad_manifest_is_refused() -> None:
    doc = by_kind("Deployment", "sut")
    broken = {**doc, "spec": {**doc["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def crd_schema(kind: str) -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / f"monitoring.coreos.com_{OPERATOR_KINDS[kind]}.yaml").read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def crd_validator(kind: str) -> jsonschema.Draft7Validator:
    """The CRD's OpenAPI v3 schema as JSON Schema. Not checked against the metaschema: its patterns are Go
    regular expressions (`(?i)` inside a group), which the resources here never reach."""
    return jsonschema.Draft7Validator(crd_schema(kind))


@pytest.mark.parametrize(("path", "doc"), [(p, d) for p, d in manifests() if d["kind"] in OPERATOR_KINDS],
                         ids=lambda v: str(v.relative_to(K8S)) if isinstance(v, Path) else "")
def test_operator_resources_validate_against_their_crds(path: Path, doc: dict[str, Any]) -> None:
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    crd_validator(doc["kind"]).validate(doc)


def test_the_crd_check_refuses_a_bad_resource() -> None:
    monitor = by_kind("ServiceMonitor", "sut")
    broken = {**monitor, "spec": {**monitor["spec"], "endpoints": [{"port": 5240}]}}
    with pytest.raises(jsonschema.ValidationError):
        crd_validator("ServiceMonitor").validate(broken)


def test_every_operator_kind_is_present() -> None:
    assert {doc["kind"] for _, doc in manifests()} >= set(OPERATOR_KINDS)


# --- kustomizations ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("directory", [k.parent for k in KUSTOMIZATIONS], ids=lambda d: str(d.relative_to(K8S)))
def test_every_file_is_listed_in_its_kustomization_and_every_listed_path_exists(directory: Path) -> None:
    names = listed(kustomization(directory))
    for name in names:
        target = (directory / name).resolve()
        if target in GITIGNORED_INPUTS:
            assert target.with_name(target.name + ".example").is_file(), target
            continue
        assert target.exists(), f"{directory.relative_to(K8S)}: {name} does not exist"
        if target.is_dir():
            assert (target / "kustomization.yaml").is_file(), f"{name}: a folder without a kustomization"
    mentioned = {(directory / name).resolve() for name in names}
    for path in directory.iterdir():
        if path.suffix in (".yaml", ".yml") and path.name != "kustomization.yaml":
            assert path.resolve() in mentioned, f"{path.relative_to(K8S)} is not in its kustomization"
        if path.is_dir() and (path / "kustomization.yaml").is_file():
            assert path.resolve() in mentioned, f"{path.relative_to(K8S)} is not in its parent's kustomization"


def test_every_kustomization_is_reached_from_an_overlay() -> None:
    reached: set[Path] = set()

    def walk(directory: Path) -> None:
        reached.add(directory.resolve())
        for name in listed(kustomization(directory)):
            target = (directory / name).resolve()
            if target.is_dir():
                walk(target)

    for overlay in OVERLAYS:
        walk(K8S / "overlays" / overlay)
    unreached = {k.parent.resolve() for k in KUSTOMIZATIONS} - reached - {(K8S / "locust").resolve()}
    assert not unreached, unreached
    assert (K8S / "locust").resolve() in reached  # the dev overlay runs Locust too


def test_the_overlays_hold_what_their_environment_needs() -> None:
    dev, prod = kustomization(K8S / "overlays" / "dev"), kustomization(K8S / "overlays" / "prod")
    assert set(dev["resources"]) == {"../../base", "../../deps", "../../locust", "../../monitoring"}
    assert "../../deps" not in prod["resources"]  # production points at managed dependencies
    assert {g["name"] for g in dev["secretGenerator"]} == {"sut-secrets", "deps-secrets"}
    assert "secretGenerator" not in prod
    bluegreen = kustomization(K8S / "overlays" / "bluegreen")
    assert bluegreen["resources"] == ["../prod", "../../slots"]


# --- secrets -----------------------------------------------------------------------------------------------------


def test_no_secret_value_is_committed_and_the_dev_secrets_are_ignored() -> None:
    ignored = subprocess.run(["git", "check-ignore", *map(str, GITIGNORED_INPUTS)], cwd=ROOT, capture_output=True,
                             text=True, check=False)
    assert ignored.returncode == 0 and len(ignored.stdout.split()) == 2, ignored
    assert not [doc for _, doc in manifests() if doc["kind"] == "Secret"]
    for example in (K8S / "overlays" / "dev").glob("*.env.example"):
        for line in example.read_text().splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                assert not value or value.startswith("postgresql://postgres:<") or value.startswith("<") or \
                    value == "chatload", (example.name, key)


def test_make_secrets_writes_every_key_the_manifests_read(tmp_path: Path) -> None:
    work = tmp_path / "dev"
    shutil.copytree(K8S / "overlays" / "dev", work, ignore=shutil.ignore_patterns("secrets.env", "deps.env"))
    done = subprocess.run(["bash", str(work / "make-secrets.sh")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    written = {name: dict(line.split("=", 1) for line in (work / name).read_text().splitlines())
               for name in ("secrets.env", "deps.env")}
    assert (work / "secrets.env").stat().st_mode & 0o077 == 0
    for name, keys in written.items():
        example = (work / f"{name}.example").read_text()
        assert set(keys) == {line.split("=")[0] for line in example.splitlines() if line and line[0] != "#"}
    sut = written["secrets.env"]
    assert len(sut["JWT_SECRET"]) >= 32
    assert sut["DATABASE_URL"] == f"postgresql://postgres:{written['deps.env']['POSTGRES_PASSWORD']}@postgres:5432/" \
                                  "messaging"
    referenced = {ref["key"] for _, doc in manifests() for ref in _secret_refs(doc)}
    assert referenced <= set(sut) | set(written["deps.env"]), referenced
    rerun = subprocess.run(["bash", str(work / "make-secrets.sh")], capture_output=True, text=True, check=False)
    assert rerun.stdout == "" and dict(line.split("=", 1) for line in (work / "secrets.env").read_text()
                                        .splitlines()) == sut  # existing files are kept


def _secret_refs(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node["secretKeyRef"]] if "secretKeyRef" in node else []
        return found + [ref for value in node.values() for ref in _secret_refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _secret_refs(value)]
    return []


# --- agreement with compose, the service, the load generator and the rules ------------------------------------


def test_the_service_agrees_with_compose_and_its_settings() -> None:
    deployment, service = by_kind("Deployment", "sut"), by_kind("Service", "sut")
    sut = container(deployment, "sut")
    assert sut["image"] == SERVICES["sut"]["image"] == container(by_kind("Job", "sut-migrate"), "migrate")["image"]
    port = int(environment("sut")["PORT"])
    assert sut["ports"] == [{"name": "http", "containerPort": port}]
    assert service["spec"]["ports"][0]["port"] == port
    config = by_kind("ConfigMap", "sut-config")["data"]
    assert config["PORT"] == str(port) and config["HOST"] == "0.0.0.0"
    known = env_names(ROOT / "sut" / "settings.py")
    secret_keys = {line.split("=")[0] for line in (K8S / "overlays" / "dev" / "secrets.env.example").read_text()
                   .splitlines() if line and line[0] != "#"}
    assert set(config) | secret_keys <= known, (set(config) | secret_keys) - known
    assert set(environment("sut")) - {"HOST", "PORT"} - set(config) - secret_keys <= {
        "RATE_LIMIT_PER_SECOND", "RATE_LIMIT_BURST", "DB_POOL_MIN", "DB_POOL_MAX", "DB_ACQUIRE_TIMEOUT",
        "DB_STATEMENT_TIMEOUT_MS", "CACHE_TTL_SECONDS", "SOCKETIO_CHANNEL", "TYPING_RATE_PER_SECOND", "TYPING_BURST",
        "CONNECT_RATE_PER_SECOND", "CONNECT_BURST", "CONNECT_ADMISSION_PER_SECOND", "CONNECT_ADMISSION_BURST",
        "LISTEN_BACKLOG", "MAX_IN_FLIGHT", "MAX_CONNECTIONS",
        "EVENT_LOOP"}  # compose passes these through only when set; the ConfigMap takes them the same way
    assert by_kind("Job", "sut-migrate")["spec"]["template"]["spec"]["containers"][0]["command"] == \
        ["python", "-m", "sut", "migrate", "up"] == SERVICES["migrate"]["command"]


def test_probes_resources_security_and_graceful_termination() -> None:
    spec = by_kind("Deployment", "sut")["spec"]
    assert "replicas" not in spec  # the HPA owns the count: a re-apply must not reset it
    assert by_kind("HorizontalPodAutoscaler", "sut")["spec"]["minReplicas"] >= 2
    pod = spec["template"]["spec"]
    sut = container(by_kind("Deployment", "sut"), "sut")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert sut[probe]["httpGet"] == {"path": "/health", "port": "http"}
    assert "http://127.0.0.1:5240/health" in (ROOT / "compose" / "Dockerfile").read_text()  # compose's check
    assert sut["resources"]["requests"]["cpu"] and sut["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert sut["securityContext"]["allowPrivilegeEscalation"] is False
    drain = float(by_kind("ConfigMap", "sut-config")["data"]["SHUTDOWN_GRACE_SECONDS"]) + 10  # + HTTP requests
    pre_stop = float(sut["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] > drain + pre_stop
    assert by_kind("PodDisruptionBudget", "sut")["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
    assert by_kind("HorizontalPodAutoscaler", "sut")["spec"]["scaleTargetRef"]["name"] == "sut"


def test_the_ingress_pins_clients_and_keeps_websockets_open() -> None:
    annotations = by_kind("Ingress", "sut")["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600


def test_locust_master_and_workers_agree_with_compose_and_the_load_generator() -> None:
    master, workers = by_kind("Deployment", "locust-master"), by_kind("Deployment", "locust-worker")
    ports = {p["name"]: p["port"] for p in by_kind("Service", "locust-master")["spec"]["ports"]}
    assert ports == {"workers": 5557, "web": 8089, "metrics": 9646}
    config = by_kind("ConfigMap", "locust-config")["data"]
    known = env_names(ROOT / "loadtests" / "config.py") | locust_env_names()
    assert set(config) <= known, set(config) - known
    assert int(config["CHATLOAD_PAIR_STRIDE"]) == workers["spec"]["replicas"]
    assert config["CHATLOAD_METRICS_PORT"] == "9646"
    worker = container(workers, "worker")
    assert worker["command"] == SERVICES["locust-worker"]["command"]
    assert re.search(r"--master(\s|$)", container(master, "master")["command"][-1])
    assert master["spec"]["strategy"]["type"] == "Recreate"  # never two masters writing one run


def test_the_example_scenario_loads() -> None:
    assert load_scenario(K8S / "locust" / "scenarios" / "example.yaml", check_name=False).name == "example"


def test_the_monitors_give_the_jobs_the_rules_select_on() -> None:
    rules = (ROOT / "alerts" / "rules" / "slos.yml").read_text() + (ROOT / "alerts" / "rules" / "loadgen.yml"
                                                                     ).read_text()
    service_monitor = by_kind("ServiceMonitor", "sut")
    # a ServiceMonitor's job label is its Service's name
    assert by_kind("Service", "sut")["metadata"]["labels"].items() >= \
        service_monitor["spec"]["selector"]["matchLabels"].items()
    assert 'job="sut"' in rules
    pod_monitor = by_kind("PodMonitor", "locust-master")
    job_label = pod_monitor["spec"]["jobLabel"]
    master_labels = by_kind("Deployment", "locust-master")["spec"]["template"]["metadata"]["labels"]
    assert master_labels[job_label] == "locust" and 'job="locust"' in rules
    assert master_labels.items() >= pod_monitor["spec"]["selector"]["matchLabels"].items()
    assert service_monitor["spec"]["endpoints"][0]["interval"] == pod_monitor["spec"]["podMetricsEndpoints"][0][
        "interval"] == "5s"


def test_blue_and_green_are_the_one_deployment_with_a_slot() -> None:
    for slot in ("blue", "green"):
        k = kustomization(K8S / "slots" / slot)
        assert k["resources"] == ["../../base/deployment"] and k["nameSuffix"] == f"-{slot}"
        assert k["labels"] == [{"pairs": {"slot": slot}, "includeSelectors": True, "includeTemplates": True}]
    selector = yaml.safe_load((K8S / "overlays" / "bluegreen" / "service-slot.yaml").read_text())["spec"]["selector"]
    assert selector == {"app.kubernetes.io/name": "sut", "slot": "blue"}
    dropped = {(d["kind"], d["metadata"]["name"]) for name in ("drop-rolling.yaml", "drop-autoscaler.yaml")
               for d in yaml.safe_load_all((K8S / "overlays" / "bluegreen" / name).read_text())}
    assert dropped == {("Deployment", "sut"), ("HorizontalPodAutoscaler", "sut")}


# --- the overlays as kubectl builds them ----------------------------------------------------------------------


KUBECTL = shutil.which("kubectl")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Each overlay as `kubectl kustomize` renders it, from a copy of k8s/ with the dev secrets made."""
    assert KUBECTL is not None, "kubectl (with its kustomize) renders the overlays: install it (Debian package kubectl)"
    copy = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("secrets.env", "deps.env", "__pycache__"))
    subprocess.run(["bash", str(copy / "overlays" / "dev" / "make-secrets.sh")], check=True, capture_output=True)
    out = {}
    for overlay in OVERLAYS:
        done = subprocess.run([KUBECTL, "kustomize", str(copy / "overlays" / overlay)], capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 0, f"{overlay}: {done.stderr.strip()}"
        out[overlay] = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    return out


def names(docs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(doc["kind"], doc["metadata"]["name"]) for doc in docs}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_resource_validates(built: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    for doc in built[overlay]:
        assert doc["kind"] == "Namespace" or doc["metadata"]["namespace"] == "chatload"
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "chatload"
        if doc["kind"] in OPERATOR_KINDS:
            crd_validator(doc["kind"]).validate(doc)
        else:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_rendered_overlays_hold_their_resources(built: dict[str, list[dict[str, Any]]]) -> None:
    service = {("Deployment", "sut"), ("Service", "sut"), ("PodDisruptionBudget", "sut"),
               ("HorizontalPodAutoscaler", "sut"), ("Job", "sut-migrate"), ("Ingress", "sut"),
               ("ConfigMap", "sut-config"), ("ServiceMonitor", "sut"), ("PrometheusRule", "chatload-rules"),
               ("Namespace", "chatload")}
    locust = {("Deployment", "locust-master"), ("Service", "locust-master"), ("Deployment", "locust-worker"),
              ("ConfigMap", "locust-config"), ("ConfigMap", "locust-scenarios"), ("PodMonitor", "locust-master")}
    deps = {("StatefulSet", "postgres"), ("Service", "postgres"), ("Deployment", "redis"), ("Service", "redis"),
            ("StatefulSet", "minio"), ("Service", "minio"), ("Job", "minio-init"), ("Secret", "deps-secrets"),
            ("Secret", "sut-secrets")}
    dashboards = {("ConfigMap", f"chatload-dashboard-{p.stem}") for p in (ROOT / "dashboards" / "json").glob("*.json")}
    assert names(built["dev"]) == service | locust | deps | dashboards
    assert names(built["prod"]) == service | dashboards
    assert names(built["bluegreen"]) == (service - {("Deployment", "sut"), ("HorizontalPodAutoscaler", "sut")}
                                         ) | {("Deployment", "sut-blue"), ("Deployment", "sut-green")} | dashboards


def test_the_bluegreen_slots_and_the_service_agree(built: dict[str, list[dict[str, Any]]]) -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for d in built["bluegreen"]}
    assert docs[("Service", "sut")]["spec"]["selector"] == {"app.kubernetes.io/name": "sut", "slot": "blue"}
    for slot in ("blue", "green"):
        deployment = docs[("Deployment", f"sut-{slot}")]
        assert "replicas" not in deployment["spec"]  # make deploy-bluegreen scales them
        assert deployment["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "sut", "slot": slot}
        assert deployment["spec"]["template"]["metadata"]["labels"]["slot"] == slot
        assert container(deployment, "sut")["image"] == "registry.example.com/chatload-sut:0.1.0"
    pdb = docs[("PodDisruptionBudget", "sut")]["spec"]["selector"]["matchLabels"]
    assert pdb == {"app.kubernetes.io/name": "sut"}  # both slots


def test_the_rendered_images_and_secrets(built: dict[str, list[dict[str, Any]]]) -> None:
    dev = {(d["kind"], d["metadata"]["name"]): d for d in built["dev"]}
    assert container(dev[("Deployment", "sut")], "sut")["image"] == "chatload-sut:local"
    assert set(dev[("Secret", "sut-secrets")]["data"]) == {"JWT_SECRET", "DATABASE_URL", "AWS_ACCESS_KEY_ID",
                                                          "AWS_SECRET_ACCESS_KEY"}
    prod = {(d["kind"], d["metadata"]["name"]): d for d in built["prod"]}
    assert prod[("ConfigMap", "sut-config")]["data"]["REDIS_URL"].startswith("rediss://")
    assert prod[("Ingress", "sut")]["spec"]["tls"][0]["hosts"] == ["chat.example.com"]
