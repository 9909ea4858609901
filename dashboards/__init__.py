"""Grafana dashboards as code (grafanalib): one `*.dashboard.py` per dashboard, the house style in style.py."""
