"""A real Gateway in front of the interceptor: Traefik, a Gateway API implementation written in
Go, built from the Go module proxy by scripts/interop-binaries (a wrapper module carrying the
release's replace directives, tests/interop/traefik).

It runs as a process in the cluster's network namespace with its Kubernetes Gateway provider,
under its own ServiceAccount bound to the ClusterRole its documentation gives, and listens on the
namespace's loopback. What it needs to reach the interceptor is what a cluster has: the Service
``wakeway/wakeway-interceptor`` and an EndpointSlice naming where the interceptor listens (an
address of the pod range: an EndpointSlice may not name loopback). Routes of other namespaces
reach that Service only with a ReferenceGrant in ``wakeway``, as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.processes import Proc, stop
from tests.cluster.helpers import Answer, eventually, http_request
from tests.cluster.wakeway_setup import apply
from tests.interop import binaries
from wakeway.kube import Kube, NotFound
from wakeway.kube.resources import (
    ENDPOINTSLICES,
    HTTPROUTES,
    SERVICES,
    Resource,
)

CONTROLLER = "traefik.io/gateway-controller"
CLASS = "traefik"
NAMESPACE = "gateway-system"  # where the Gateway lives; wakeway_setup.stamped_route's parentRef
NAME = "gateway"
ACCOUNT = {"name": "traefik", "namespace": NAMESPACE}  # Traefik's ServiceAccount
INTERCEPTOR_NS = "wakeway"
INTERCEPTOR = "wakeway-interceptor"  # the Service every route's backendRef names
INTERCEPTOR_PORT = 8080
GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAYCLASSES = Resource(GATEWAY_GROUP, "v1", "gatewayclasses", "GatewayClass", namespaced=False)
GATEWAYS = Resource(GATEWAY_GROUP, "v1", "gateways", "Gateway")
LO = "127.0.0.1"  # inside the cluster's network namespace


@dataclass
class Gateway:
    cluster: Cluster
    proc: Proc
    port: int

    def get(
        self,
        host: str,
        path: str = "/",
        headers: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> asyncio.Task[Answer]:
        """A GET sent to the Gateway's listener, as a client outside would."""
        return http_request(
            self.cluster, host, self.port, path=path, headers=headers, timeout=timeout
        )


def traefik_binary() -> binaries.Traefik:
    """Traefik from the cache; skips the module (fails it with CI=true) if it is not built."""
    return binaries.required(binaries.traefik, "gateway tests")


def _rbac(found: binaries.Traefik) -> list[dict[str, Any]]:
    """Traefik's documented ClusterRole, bound to the ServiceAccount ``traefik`` here."""
    docs = [d for d in yaml.safe_load_all(found.rbac.read_text()) if d]
    for doc in docs:
        doc["metadata"]["name"] = f"wakeway-test-traefik-{doc['metadata']['name']}"
        if doc["kind"] == "ClusterRoleBinding":
            doc["roleRef"]["name"] = f"wakeway-test-traefik-{doc['roleRef']['name']}"
            doc["subjects"] = [{"kind": "ServiceAccount", **ACCOUNT}]
    return docs


def _gateway(port: int) -> list[dict[str, Any]]:
    version = f"{GATEWAY_GROUP}/v1"
    return [
        {
            "apiVersion": version,
            "kind": "GatewayClass",
            "metadata": {"name": CLASS},
            "spec": {"controllerName": CONTROLLER},
        },
        {
            "apiVersion": version,
            "kind": "Gateway",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "spec": {
                "gatewayClassName": CLASS,
                # Traefik serves a listener on the entry point with the same port.
                "listeners": [
                    {
                        "name": "web",
                        "protocol": "HTTP",
                        "port": port,
                        "allowedRoutes": {"namespaces": {"from": "All"}},
                    }
                ],
            },
        },
    ]


def _interceptor_backend(ip: str, port: int) -> list[dict[str, Any]]:
    """The interceptor Service (no selector: the interceptor is a process, not a pod) and the
    EndpointSlice that says where it listens."""
    meta = {"name": INTERCEPTOR, "namespace": INTERCEPTOR_NS}
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {"ports": [{"name": "http", "port": INTERCEPTOR_PORT, "targetPort": port}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {**meta, "labels": {"kubernetes.io/service-name": INTERCEPTOR}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        },
    ]


def routes_to_interceptor(from_ns: str) -> dict[str, Any]:
    """The installer's grant (in ``wakeway``): HTTPRoutes of ``from_ns`` may name the
    interceptor Service, as examples/kubernetes/referencegrant.yaml."""
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": {"name": f"{from_ns}-routes-to-interceptor", "namespace": INTERCEPTOR_NS},
        "spec": {
            "from": [{"group": GATEWAY_GROUP, "kind": "HTTPRoute", "namespace": from_ns}],
            "to": [{"group": "", "kind": "Service", "name": INTERCEPTOR}],
        },
    }


def conditions_of(obj: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in obj.get("conditions", [])}


async def _programmed(kube: Kube) -> dict[str, tuple[str, str]] | None:
    gateway = await kube.get(GATEWAYS, NAMESPACE, NAME)
    found = conditions_of(gateway.get("status") or {})
    return found if found.get("Programmed", ("",))[0] == "True" else None


def _pinged(cluster: Cluster, port: int) -> bool:
    try:
        return cluster.http_get(LO, port, "/ping").status == 200
    except OSError:
        return False


@contextlib.contextmanager
def traefik_gateway(
    cluster: Cluster, port: int, ping: int, interceptor: tuple[str, int]
) -> Iterator[Gateway]:
    """Traefik serving the Gateway ``gateway-system/gateway`` on LO:``port`` (its /ping on
    ``ping``), sending routes that name the interceptor Service to ``interceptor`` (ip, port).
    For a module's fixture: each step runs its own event loop."""
    found = traefik_binary()
    config = asyncio.run(_install(cluster, found, port, interceptor))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    env["KUBECONFIG"] = str(config)  # the provider's out-of-cluster client reads it
    argv = [
        str(found.binary),
        "--global.checknewversion=false",
        "--global.sendanonymoususage=false",
        "--log.level=INFO",
        "--accesslog=true",
        f"--entrypoints.web.address={LO}:{port}",
        # Named explicitly: by default /ping would listen on every address, port 8080, which
        # the pods of the namespace use.
        f"--entrypoints.traefik.address={LO}:{ping}",
        "--ping=true",
        "--providers.kubernetesgateway=true",
    ]
    proc = cluster.popen_in_netns("traefik", argv, env=env)
    try:
        asyncio.run(_serving(cluster, proc, ping))
        yield Gateway(cluster, proc, port)
    finally:
        stop(proc, 5.0)
        asyncio.run(_uninstall(cluster))


async def _install(
    cluster: Cluster, found: binaries.Traefik, port: int, interceptor: tuple[str, int]
) -> Path:
    """Traefik's namespace, account and role, the GatewayClass and Gateway, the interceptor's
    Service and EndpointSlice; returns a kubeconfig (inside the namespace) for the account."""
    async with _admin(cluster) as kube:
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": ACCOUNT}
        await apply(kube, [namespace, account])
        await apply(kube, [*_rbac(found), *_gateway(port), *_interceptor_backend(*interceptor)])
    return await cluster.service_account_kubeconfig(NAMESPACE, "traefik", in_netns=True)


async def _serving(cluster: Cluster, proc: Proc, ping: int) -> None:
    async def up() -> bool:
        if not proc.alive():
            raise RuntimeError(f"traefik exited:\n{proc.tail()}")
        return _pinged(cluster, ping)

    await eventually(up, "traefik to answer /ping", within=60)
    async with _admin(cluster) as kube:
        await eventually(lambda: _programmed(kube), "the Gateway to be Programmed", within=60)


async def _uninstall(cluster: Cluster) -> None:
    async with _admin(cluster) as kube:
        for res, ns, name in (
            (GATEWAYS, NAMESPACE, NAME),
            (GATEWAYCLASSES, None, CLASS),
            (ENDPOINTSLICES, INTERCEPTOR_NS, INTERCEPTOR),
            (SERVICES, INTERCEPTOR_NS, INTERCEPTOR),
        ):
            with contextlib.suppress(NotFound):
                await kube.delete(res, ns, name)


@contextlib.asynccontextmanager
async def _admin(cluster: Cluster) -> AsyncIterator[Kube]:
    kube = await Kube.connect(str(cluster.kubeconfig))
    try:
        yield kube
    finally:
        await kube.close()


async def route_status(kube: Kube, ns: str, name: str) -> list[dict[str, Any]]:
    """The HTTPRoute's ``status.parents`` entries Traefik wrote."""
    route = await kube.get(HTTPROUTES, ns, name)
    parents = (route.get("status") or {}).get("parents", [])
    return [p for p in parents if p.get("controllerName") == CONTROLLER]
