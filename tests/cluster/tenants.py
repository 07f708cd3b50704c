"""Tenants of a shared wakeway, as a hostile tenant would be: each a namespace and a client
acting as that namespace's own ServiceAccount, under a Role that lets it manage
HTTPScaledObjects, HTTPRoutes, ReferenceGrants, Deployments and Services there and nothing
anywhere else; what a tenant writes, and the operator's status it reads back.

Shared by the security and the gateway tests.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from tests.cluster.harness.cluster import Cluster
from tests.cluster.helpers import deployment, eventually, service
from tests.cluster.wakeway_setup import apply
from wakeway.kube import Kube
from wakeway.kube.resources import DEPLOYMENTS, HTTPSCALEDOBJECTS, NAMESPACES, SERVICES

BOUND = ("True", "RoutesBound")


@dataclass
class Tenant:
    """A namespace and a client acting as that namespace's own ServiceAccount."""

    ns: str
    kube: Kube


TENANT_RULES = [
    {
        "apiGroups": ["http.keda.sh"],
        "resources": ["httpscaledobjects"],
        "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
    },
    {
        "apiGroups": ["gateway.networking.k8s.io"],
        "resources": ["httproutes", "referencegrants"],
        "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
    },
    {
        "apiGroups": ["apps"],
        "resources": ["deployments", "deployments/scale"],
        "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
    },
    {
        "apiGroups": [""],
        "resources": ["services"],
        "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
    },
]


@contextlib.asynccontextmanager
async def tenant(cluster: Cluster, admin: Kube, prefix: str) -> AsyncIterator[Tenant]:
    """A fresh namespace whose ServiceAccount ``tenant`` may manage what a tenant manages there,
    and a client logged in as that account."""
    ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
    await admin.create(NAMESPACES, None, {"metadata": {"name": ns}})
    meta = {"name": "tenant", "namespace": ns}
    await apply(
        admin,
        [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": meta,
                "rules": TENANT_RULES,
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": meta,
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "tenant",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "tenant", "namespace": ns}],
            },
        ],
    )
    config = await cluster.service_account_kubeconfig(ns, "tenant")
    kube = await Kube.connect(str(config))
    try:
        yield Tenant(ns, kube)
    finally:
        await kube.close()


def httpso(name: str, workload: str | None = None, **spec: Any) -> dict[str, Any]:
    """An HTTPScaledObject for the Deployment and Service ``workload`` (default: ``name``)."""
    target = workload or name
    return {
        "apiVersion": "http.keda.sh/v1alpha1",
        "kind": "HTTPScaledObject",
        "metadata": {"name": name},
        "spec": {"scaleTargetRef": {"name": target, "service": target, "port": 80}, **spec},
    }


async def workload(
    t: Tenant, name: str, replicas: int, annotations: dict[str, str] | None = None
) -> None:
    """A Deployment (its pods answer with their name) and its Service, port 80."""
    await t.kube.create(
        DEPLOYMENTS, t.ns, deployment(name, replicas=replicas, port=8080, annotations=annotations)
    )
    svc = service(name, port=80)
    svc["spec"]["ports"][0]["targetPort"] = 8080
    await t.kube.create(SERVICES, t.ns, svc)


async def status(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    """The HTTPScaledObject's status once the operator has written it for the current spec."""

    async def current() -> dict[str, Any] | None:
        obj = await kube.get(HTTPSCALEDOBJECTS, ns, name)
        st: dict[str, Any] = obj.get("status") or {}
        if st.get("observedGeneration") != obj["metadata"].get("generation"):
            return None
        return st if st.get("conditions") else None

    return await eventually(current, f"the operator's status of {ns}/{name}", within=60)


def condition(st: dict[str, Any], type_: str) -> tuple[str, str]:
    for c in st.get("conditions", []):
        if c["type"] == type_:
            return c["status"], c["reason"]
    return "", ""


async def status_where(
    kube: Kube, ns: str, name: str, type_: str, want: tuple[str, str], within: float = 60
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        st = await status(kube, ns, name)
        return st if condition(st, type_) == want else None

    return await eventually(check, f"{ns}/{name} {type_}={want}", within=within)
