"""API aggregation: an aggregated API server run by a test inside the cluster's namespace.

The API server is started with the front-proxy flags (see ``Cluster._start_apiserver``) and
``--enable-aggregator-routing``, so for an APIService it dials the address in its Service's
EndpointSlice itself, as it would a pod's: the Service has no selector and the slice is
written here with the server's address (one of ``SPARE_IPS``). The server's serving cert
comes from the cluster CA (``serving_cert``), which is the APIService's caBundle, for the name
the API server checks, ``<service>.<namespace>.svc``. The server authenticates the API
server's proxy client cert with the front-proxy CA it reads from kube-system's
``extension-apiserver-authentication`` ConfigMap (delegated authentication).

An APIService that stays registered while its server is gone makes discovery partial for
every client (the namespace controller then cannot finish deleting namespaces): ``unregister``
before stopping the server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from .cluster import Cluster, found
from .pki import KeyPair

_PORT_NAME = "https"
_MANAGED_BY = "wakeway-test-harness"


@dataclass(frozen=True)
class AggregatedApi:
    group: str
    version: str
    namespace: str  # of the Service
    service: str
    ip: str  # where the server listens inside the cluster's namespace (one of SPARE_IPS)
    port: int

    @property
    def name(self) -> str:
        """The APIService's name."""
        return f"{self.version}.{self.group}"

    @property
    def server_name(self) -> str:
        """The name the API server expects in the server's cert."""
        return f"{self.service}.{self.namespace}.svc"


def serving_cert(cluster: Cluster, api: AggregatedApi) -> KeyPair:
    return cluster.serving_cert(
        f"{api.service}.{api.namespace}", server_names=(api.server_name,), server_ips=(api.ip,)
    )


def _service(api: AggregatedApi) -> Any:
    port = {"name": _PORT_NAME, "port": 443, "targetPort": api.port}
    return {"metadata": {"name": api.service}, "spec": {"ports": [port]}}  # no selector


def _endpoint_slice(api: AggregatedApi) -> Any:
    return {
        "metadata": {
            "name": api.service,
            "labels": {
                "kubernetes.io/service-name": api.service,
                "endpointslice.kubernetes.io/managed-by": _MANAGED_BY,
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [api.ip], "conditions": {"ready": True}}],
        "ports": [{"name": _PORT_NAME, "port": api.port, "protocol": "TCP"}],
    }


def _api_service(cluster: Cluster, api: AggregatedApi) -> Any:
    return {
        "metadata": {"name": api.name},
        "spec": {
            "group": api.group,
            "version": api.version,
            "service": {"namespace": api.namespace, "name": api.service, "port": 443},
            "caBundle": base64.b64encode(cluster.ca_cert.read_bytes()).decode(),
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
        },
    }


async def register(cluster: Cluster, api: AggregatedApi) -> None:
    """Creates the Service, its EndpointSlice and the APIService (the namespace if missing)."""
    namespace: Any = {"metadata": {"name": api.namespace}}
    async with cluster.api() as c:
        core = client.CoreV1Api(c)
        with contextlib.suppress(_Conflict):
            await _create(core.create_namespace(namespace))
        await _create(core.create_namespaced_service(api.namespace, _service(api)))
        discovery = client.DiscoveryV1Api(c)
        await _create(
            discovery.create_namespaced_endpoint_slice(api.namespace, _endpoint_slice(api))
        )
        await _create(client.ApiregistrationV1Api(c).create_api_service(_api_service(cluster, api)))


async def available(cluster: Cluster, api: AggregatedApi) -> str | None:
    """None once the APIService is Available, else the reason the API server gives."""
    async with cluster.api() as c:
        found = await client.ApiregistrationV1Api(c).read_api_service(api.name)
    conditions = (found.status.conditions if found.status else None) or []
    for condition in conditions:
        if condition.type == "Available":
            if condition.status == "True":
                return None
            return f"{condition.reason}: {condition.message}"
    return "no Available condition yet"


async def unregister(cluster: Cluster, api: AggregatedApi, within: float = 30.0) -> None:
    """Deletes the APIService, the Service and its slice; waits until the APIService is gone."""
    async with cluster.api() as c:
        registration = client.ApiregistrationV1Api(c)
        await found(registration.delete_api_service(api.name))
        await found(
            client.DiscoveryV1Api(c).delete_namespaced_endpoint_slice(api.service, api.namespace)
        )
        await found(client.CoreV1Api(c).delete_namespaced_service(api.service, api.namespace))
        deadline = time.monotonic() + within
        while await found(registration.read_api_service(api.name)):
            if time.monotonic() > deadline:
                raise AssertionError(f"APIService {api.name} still there after {within:.0f} s")
            await asyncio.sleep(0.2)


class _Conflict(Exception):
    pass


async def _create(call: Any) -> None:
    try:
        await call
    except ApiException as e:
        if e.status == 409:
            raise _Conflict(str(e.reason)) from None
        raise
