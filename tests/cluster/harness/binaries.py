"""Finding (and, once, building) the cluster's binaries through the project's own script."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "cluster-binaries"


class Unavailable(Exception):
    """The cluster tier cannot run on this machine; the message says why."""


@dataclass(frozen=True)
class Binaries:
    bin_dir: Path
    gateway_crds: Path
    kustomize: Path
    helm: Path

    def path(self, name: str) -> str:
        return str(self.bin_dir / name)


def prerequisites() -> None:
    """Raises Unavailable unless this machine can run the tier at all."""
    if os.geteuid() != 0:
        raise Unavailable("needs root, to create a network namespace")
    for tool in ("go", "ip"):
        if shutil.which(tool) is None:
            raise Unavailable(f"needs `{tool}` on PATH")


def ensure(timeout: float = 3600) -> Binaries:
    """Runs scripts/cluster-binaries (a no-op once built) and returns what it printed."""
    prerequisites()
    try:
        done = subprocess.run(
            ["bash", str(SCRIPT)],
            stdout=subprocess.PIPE,
            stderr=None,  # the build's progress goes straight to the terminal
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise Unavailable(f"{SCRIPT.name} did not finish in {timeout:.0f} s") from e
    if done.returncode != 0:
        raise Unavailable(f"{SCRIPT.name} failed with exit status {done.returncode}")
    found = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    try:
        return Binaries(
            Path(found["bin_dir"]),
            Path(found["gateway_crds"]),
            Path(found["kustomize"]),
            Path(found["helm"]),
        )
    except KeyError as e:
        raise Unavailable(f"{SCRIPT.name} did not print {e}") from e
