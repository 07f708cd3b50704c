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
from wakeway.routing.identity import IDENTITY_HEADER, RouteIdentity

REPO = Path(__file__).resolve().parents[2]
IDENTITY_KEY = b"cluster-tier-route-identity-key!"
IDENTITY = RouteIdentity(IDENTITY_KEY)


def resource_of(doc: dict[str, Any]) -> Resource:
    group, _, version = str(doc["apiVersion"]).rpartition("/")
    kind = str(doc["kind"])
    cluster_scoped = kind in {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "GatewayClass",
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
    """The CRDs of crds/ (HTTPScaledObject, InterceptorRoute), once they are served."""
    await apply(kube, documents(*sorted((REPO / "crds").glob("http.keda.sh_*.yaml"))))
    deadline = time.monotonic() + 30
    for version, plural in (("v1alpha1", "httpscaledobjects"), ("v1beta1", "interceptorroutes")):
        while not await kube.has_resource("http.keda.sh", version, plural):
            if time.monotonic() > deadline:
                raise AssertionError(f"the {plural} CRD was not served in time")
            await asyncio.sleep(0.2)


async def install_rbac(kube: Kube, *components: str) -> None:
    """The namespace and the ServiceAccounts and roles of config/base for these components."""
    base = REPO / "config" / "base"
    files = [base / "namespace.yaml", *(base / f"{c}-rbac.yaml" for c in components)]
    await apply(kube, documents(*files))


async def component_kubeconfigs(cluster: Cluster, *components: str) -> dict[str, Path]:
    """The CRD, the RBAC of config/base for ``components``, and a kubeconfig (for inside the
    network namespace) for each one's ServiceAccount."""
    kube = await Kube.connect(str(cluster.kubeconfig))
    try:
        await install_crd(kube)
        await install_rbac(kube, *components)
    finally:
        await kube.close()
    return {
        c: await cluster.service_account_kubeconfig("wakeway", f"wakeway-{c}", in_netns=True)
        for c in components
    }


def stamped_route(ns: str, name: str, hostname: str) -> dict[str, Any]:
    """An HTTPRoute whose one rule goes to the interceptor Service and stamps the route's
    identity, as a Gateway would send it."""
    stamp = {"name": IDENTITY_HEADER, "value": IDENTITY.stamp(f"{ns}/{name}")}
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": "gateway", "namespace": "gateway-system"}],
            "hostnames": [hostname],
            "rules": [
                {
                    "filters": [
                        {
                            "type": "RequestHeaderModifier",
                            "requestHeaderModifier": {"set": [stamp]},
                        }
                    ],
                    "backendRefs": [
                        {"name": "wakeway-interceptor", "namespace": "wakeway", "port": 8080}
                    ],
                }
            ],
        },
    }


async def install_interceptor_rbac(kube: Kube) -> None:
    await install_rbac(kube, "interceptor")


def start_component(
    cluster: Cluster, name: str, args: list[str], kubeconfig: Path | None, **env: str
) -> Proc:
    """``wakeway <args>`` as a process inside the cluster's network namespace, under the given
    (ServiceAccount) kubeconfig, with the shared route identity key."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "WAKEWAY_"))}
    environ.update(
        PYTHONPATH=str(REPO / "src"),
        WAKEWAY_INTERCEPTOR_SERVICE="wakeway/wakeway-interceptor:8080",
        WAKEWAY_ROUTE_IDENTITY_KEY=base64.b64encode(IDENTITY_KEY).decode(),
        **env,
    )
    if kubeconfig is not None:
        environ["WAKEWAY_KUBECONFIG"] = str(kubeconfig)
    return cluster.popen_in_netns(name, [sys.executable, "-m", "wakeway.cli", *args], env=environ)


def start_interceptor(
    cluster: Cluster, kubeconfig: Path, port: int, admin: int, **env: str
) -> Proc:
    """``wakeway interceptor`` listening on 127.0.0.1 inside the cluster's network namespace."""
    args = ["interceptor", "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}"]
    return start_component(cluster, f"interceptor-{port}", args, kubeconfig, **env)
