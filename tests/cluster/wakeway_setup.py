"""Installing wakeway's own pieces into the harness cluster for component tests.

Everything comes from the repository's manifests (crds/, config/base) so the tests exercise
what users install; applying is idempotent because the session's cluster is shared.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.processes import Proc
from wakeway.kube import AlreadyExists, Kube
from wakeway.kube.resources import Resource

REPO = Path(__file__).resolve().parents[2]
IDENTITY_KEY = b"cluster-tier-route-identity-key!"


def resource_of(doc: dict[str, Any]) -> Resource:
    group, _, version = str(doc["apiVersion"]).rpartition("/")
    kind = str(doc["kind"])
    cluster_scoped = kind in {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
    }
    plural = kind.lower() + ("es" if kind.endswith("s") else "s")
    if kind == "CustomResourceDefinition":
        plural = "customresourcedefinitions"
    return Resource(group, version, plural, kind, namespaced=not cluster_scoped)


def documents(*paths: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in paths:
        out.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return out


async def apply(kube: Kube, docs: Iterable[dict[str, Any]]) -> None:
    """Create each object, or replace it when it exists (keeping its resourceVersion)."""
    for doc in docs:
        res = resource_of(doc)
        ns = doc["metadata"].get("namespace") if res.namespaced else None
        try:
            await kube.create(res, ns, doc)
        except AlreadyExists:
            current = await kube.get(res, ns, doc["metadata"]["name"])
            doc = {
                **doc,
                "metadata": {
                    **doc["metadata"],
                    "resourceVersion": current["metadata"]["resourceVersion"],
                },
            }
            await kube.replace(res, ns, doc)


async def install_crd(kube: Kube) -> None:
    await apply(kube, documents(REPO / "crds" / "http.keda.sh_httpscaledobjects.yaml"))
    deadline = time.monotonic() + 30
    while not await kube.has_resource("http.keda.sh", "v1alpha1", "httpscaledobjects"):
        if time.monotonic() > deadline:
            raise AssertionError("the HTTPScaledObject CRD was not served in time")
        await asyncio.sleep(0.2)


async def install_interceptor_rbac(kube: Kube) -> None:
    base = REPO / "config" / "base"
    await apply(kube, documents(base / "namespace.yaml", base / "interceptor-rbac.yaml"))


def start_interceptor(
    cluster: Cluster, kubeconfig: Path, port: int, admin: int, **env: str
) -> Proc:
    """``wakeway interceptor`` as a process inside the cluster's network namespace, under the
    given (ServiceAccount) kubeconfig."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    environ.update(
        PYTHONPATH=str(REPO / "src"),
        WAKEWAY_KUBECONFIG=str(kubeconfig),
        WAKEWAY_INTERCEPTOR_SERVICE="wakeway/wakeway-interceptor:8080",
        WAKEWAY_ROUTE_IDENTITY_KEY=base64.b64encode(IDENTITY_KEY).decode(),
        **env,
    )
    argv = [
        sys.executable,
        "-m",
        "wakeway.cli",
        "interceptor",
        "--listen",
        f"127.0.0.1:{port}",
        "--admin",
        f"127.0.0.1:{admin}",
    ]
    return cluster.popen_in_netns(f"interceptor-{port}", argv, env=environ)
