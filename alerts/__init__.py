"""Prometheus recording and alerting rules, their promtool tests, and the Alertmanager configuration."""
