"""The YAML style of every generated file (alerts/rules/slos.yml, k8s/monitoring/): no anchors or aliases, and
multi-line strings as literal blocks, so a diff of a generated file reads like the source."""

from __future__ import annotations

from typing import Any

import yaml


class Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


Dumper.add_representer(str, _str)
