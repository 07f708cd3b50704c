"""The install manifests rendered by the tier's Go-built tools: kustomize, kubectl's built-in
kustomize and helm (built by scripts/cluster-binaries), and applied by kubectl."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.harness.binaries import Binaries

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "wakeway"
# Every kustomization under config/, so a new overlay is rendered and dry-run without being named.
CONFIG_FOLDERS = sorted(
    str(k.parent.relative_to(REPO)) for k in (REPO / "config").rglob("kustomization.yaml")
)
# The chart's `mode` and the kustomization that makes the same choice.
MODE_FOLDERS = {
    "auto": "config/base",
    "keda": "config/overlays/keda",
    "standalone": "config/overlays/standalone",
}


class ToolFailed(AssertionError):
    """A tool exited non-zero; the message holds its command line and standard error."""


def run(argv: list[str], stdin: str | None = None, timeout: float = 120) -> str:
    done = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        shown = " ".join(Path(a).name if a.startswith("/") else a for a in argv)
        raise ToolFailed(f"`{shown}` exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def documents(text: str) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def kustomize_build(binaries: Binaries, folder: str) -> str:
    return run([str(binaries.kustomize), "build", str(REPO / folder)])


def kubectl_kustomize(binaries: Binaries, folder: str) -> str:
    return run([binaries.path("kubectl"), "kustomize", str(REPO / folder)])


def helm(binaries: Binaries, *args: str, kubeconfig: Path | None = None) -> str:
    where = ["--kubeconfig", str(kubeconfig)] if kubeconfig else []
    return run([str(binaries.helm), *args, *where], timeout=300)


def helm_template(binaries: Binaries, *values: str, namespace: str = "wakeway") -> str:
    """`helm template` of the chart with its CRD, values given as `name=value`."""
    sets = [a for v in values for a in ("--set", v)]
    return helm(
        binaries, "template", "wakeway", str(CHART), "-n", namespace, "--include-crds", *sets
    )


def dry_run(binaries: Binaries, kubeconfig: Path, text: str) -> str:
    """Server-side apply of `text` with dryRun=All: the API server admits, defaults and
    validates every object (schema, CRD rules, RBAC escalation checks) and stores nothing."""
    return run(
        [
            binaries.path("kubectl"),
            "--kubeconfig",
            str(kubeconfig),
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=wakeway-tests",
            "--dry-run=server",
            "-f",
            "-",
        ],
        stdin=text,
    )
