"""Declarative load scenarios: the YAML files in this folder, their schema (`scenarios.model`) and the command
line (`python -m scenarios list | validate | run`). See docs/loadtests.md."""
