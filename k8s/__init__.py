"""The service on Kubernetes: the tools next to the kustomize manifests.

The YAML under k8s/base, k8s/locust, k8s/deps, k8s/components and k8s/overlays is written by hand. Two things
here are code instead:

- `python -m k8s [--check]` (k8s/generate.py) turns the committed alert rules and dashboards into the Prometheus
  Operator and Grafana-sidecar resources under k8s/monitoring/, so the cluster gets exactly what promtool and the
  dashboard tests checked, never a hand-copied variant.
- `python -m k8s.bluegreen deploy|rollback|status` (k8s/bluegreen.py) drives the blue-green rollout with kubectl:
  migrate, bring up the idle slot, switch the Service, keep the old slot for a rollback.
"""
