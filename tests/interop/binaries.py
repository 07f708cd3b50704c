"""The interop tier's, the gateway tests' and the peer benchmark's Go programs, found through
scripts/interop-binaries.

Tests only look in the cache (``--cached``): a cold KEDA build takes far longer than a test
may, so scripts/test (or a developer, once) builds it before pytest starts.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from tests.cluster.harness.binaries import Unavailable, prerequisites

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "interop-binaries"


@dataclass(frozen=True)
class Keda:
    operator: Path
    adapter: Path  # keda-adapter, KEDA's external metrics API server
    crds: Path


@dataclass(frozen=True)
class Addon:
    interceptor: Path
    scaler: Path  # its KEDA external scaler, which polls the interceptors' /queue
    crds: Path


@dataclass(frozen=True)
class Traefik:
    binary: Path
    rbac: Path  # the ClusterRole its documentation gives the Kubernetes Gateway provider


def required(find: Callable[[], T], who: str) -> T:
    """What ``find`` finds in the cache; skips the calling test module (fails it with CI=true)
    when it is missing, saying why."""
    try:
        return find()
    except Unavailable as e:
        reason = f"{who} cannot run: {e}"
        if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
            pytest.fail(f"{reason} (CI=true, so this is a failure)", pytrace=False)
        pytest.skip(reason)


def _run(what: str, *, build: bool, timeout: float) -> dict[str, str]:
    prerequisites()
    argv = ["bash", str(SCRIPT), *([] if build else ["--cached"]), what]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise Unavailable(f"{SCRIPT.name} {what} did not finish in {timeout:.0f} s") from e
    if done.returncode == 4:
        raise Unavailable(
            f"the {what} binary is not built: run scripts/{SCRIPT.name} {what} (once, cached)"
        )
    if done.returncode != 0:
        raise Unavailable(
            f"{SCRIPT.name} {what} failed with exit status {done.returncode}: "
            f"{done.stderr.strip()[-500:]}"
        )
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def keda(*, build: bool = False, timeout: float = 120) -> Keda:
    found = _run("keda", build=build, timeout=timeout)
    return Keda(Path(found["keda_operator"]), Path(found["keda_adapter"]), Path(found["keda_crds"]))


def addon(*, build: bool = False, timeout: float = 120) -> Addon:
    found = _run("addon", build=build, timeout=timeout)
    return Addon(
        Path(found["addon_interceptor"]), Path(found["addon_scaler"]), Path(found["addon_crds"])
    )


def traefik(*, build: bool = False, timeout: float = 120) -> Traefik:
    found = _run("traefik", build=build, timeout=timeout)
    return Traefik(Path(found["traefik"]), Path(found["traefik_rbac"]))


def h2bench(*, build: bool = False, timeout: float = 300) -> Path:
    """The peer benchmark's HTTP/2 and gRPC load generator and gRPC backend (loadtest/h2bench)."""
    return Path(_run("h2bench", build=build, timeout=timeout)["h2bench"])


def otelcol(*, build: bool = False, timeout: float = 120) -> Path:
    """An OpenTelemetry Collector with the OTLP receiver and the debug exporter
    (tests/interop/otelcol)."""
    return Path(_run("otelcol", build=build, timeout=timeout)["otelcol"])
