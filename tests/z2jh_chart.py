"""The real Zero-to-JupyterHub chart, prepared and rendered by the real ``helm``.

A released chart ships its values schema as ``values.schema.json`` (the
source tree's ``values.schema.yaml`` as JSON, ``description`` keys removed:
the chart's README says so); :func:`prepared_chart` writes it into a
temporary copy of the chart so that ``helm lint``/``helm template`` validate
values as they do for a release. The chart itself comes from
tests/upstream_data.py and is never copied into the repository.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

#: helm template assumes Kubernetes 1.20 unless told; the chart needs >= 1.32
#: (its Chart.yaml kubeVersion). The test bed runs this version.
KUBE_VERSION = "1.35.4"


def _without_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [_without_descriptions(v) for v in node]
    return node


def prepared_chart(chart: Path, into: Path) -> Path:
    """A copy of ``chart`` with the ``values.schema.json`` a release ships."""
    copy = into / chart.name
    shutil.copytree(chart, copy)
    schema = yaml.safe_load((chart / "values.schema.yaml").read_text())
    (copy / "values.schema.json").write_text(json.dumps(_without_descriptions(schema), indent=2))
    return copy


def helm(binary: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(binary), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={"HOME": str(Path.home()), "PATH": "/usr/bin:/bin", "HELM_CACHE_HOME": "/tmp/helm-cache"},
    )


def render(binary: Path, chart: Path, values: list[Path], release: str = "jhub", namespace: str = "jhub") -> list[dict]:
    """``helm template`` -> the rendered manifests (raises with helm's message on failure)."""
    args = ["template", release, str(chart), "--namespace", namespace, "--kube-version", KUBE_VERSION]
    for path in values:
        args += ["--values", str(path)]
    r = helm(binary, *args)
    if r.returncode != 0:
        raise AssertionError(f"helm template failed:\n{r.stderr}")
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def find(manifests: list[dict], kind: str, name: str) -> dict:
    for doc in manifests:
        if doc.get("kind") == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind} {name} among {[(d['kind'], d['metadata']['name']) for d in manifests]}")


def secret_text(secret: dict, key: str) -> str:
    """A rendered Secret's value (``data`` is base64, ``stringData`` plain)."""
    if key in (secret.get("stringData") or {}):
        return secret["stringData"][key]
    return base64.b64decode(secret["data"][key]).decode()
