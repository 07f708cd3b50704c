"""The KEDA HTTP add-on's programs in the harness cluster's network namespace, for the benchmarks
that measure against it (bench_peer, bench_chain).

- Its interceptor (``KEDA_HTTP_PROXY_PORT``, ``KEDA_HTTP_ADMIN_PORT``; both listen on every
  address of the namespace).
- Its scaler: it finds its interceptors' admin endpoints through the EndpointSlices of a
  Service (``KEDA_HTTP_SCALER_TARGET_ADMIN_NAMESPACE`` / ``..._SERVICE``, port
  ``..._TARGET_ADMIN_PORT``), polls each one's ``/queue`` every ``KEDA_HTTP_QUEUE_TICK_DURATION``
  (500 ms by default) and serves KEDA's external-scaler gRPC on ``0.0.0.0:KEDA_HTTP_SCALER_PORT``,
  answering StreamIsActive every ``KEDA_HTTP_SCALER_STREAM_INTERVAL_MS`` (200 ms by default).
  The add-on's own install runs both at these defaults; so do we.
- The ScaledObject the add-on's operator writes for an HTTPScaledObject (its
  ``pkg/k8s.NewScaledObject``): one ``external-push`` trigger naming the scaler and the object,
  a polling interval of 15 s.
- A minimal kube-proxy: this add-on release dials a backend by its Service name
  (``svc.ns:port``), which in a cluster means DNS and kube-proxy. A hosts file for the namespace
  maps the name to the Service's ClusterIP and an iptables DNAT rule in the namespace
  (kube-proxy's own mechanism) sends it to the endpoint; the rule follows the EndpointSlice and is
  written as soon as a pod has an address, before it is ready, so the add-on never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cluster.harness.cluster import SERVICE_CIDR, Cluster
from tests.cluster.harness.processes import Proc

from wakeway.kube import Kube
from wakeway.kube.resources import ENDPOINTSLICES

# The names the add-on's install gives its interceptor's admin Service and Deployment.
ADMIN_SERVICE = "keda-add-ons-http-interceptor-admin"
ADMIN_DEPLOYMENT = "keda-add-ons-http-interceptor"
SO_POLLING_INTERVAL = 15  # pkg/k8s.NewScaledObject


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _env(cluster: Cluster, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "KUBECONFIG": str(cluster.netns_kubeconfig),
        "OTEL_PROM_EXPORTER_ENABLED": "false",
        **extra,
    }


def start_interceptor(cluster: Cluster, binary: Path, port: int, admin: int) -> Proc:
    env = _env(cluster, KEDA_HTTP_PROXY_PORT=str(port), KEDA_HTTP_ADMIN_PORT=str(admin))
    return cluster.popen_in_netns("addon-interceptor", [str(binary), "--zap-log-level=info"], env)


def start_scaler(
    cluster: Cluster, binary: Path, port: int, admin_namespace: str, admin_port: int
) -> Proc:
    """The scaler, finding its interceptors through :func:`admin_endpoints` in
    ``admin_namespace`` (their admin port: ``admin_port``)."""
    env = _env(
        cluster,
        KEDA_HTTP_SCALER_PORT=str(port),
        KEDA_HTTP_SCALER_TARGET_ADMIN_NAMESPACE=admin_namespace,
        KEDA_HTTP_SCALER_TARGET_ADMIN_SERVICE=ADMIN_SERVICE,
        KEDA_HTTP_SCALER_TARGET_ADMIN_DEPLOYMENT=ADMIN_DEPLOYMENT,
        KEDA_HTTP_SCALER_TARGET_ADMIN_PORT=str(admin_port),
    )
    argv = [str(binary), "--zap-log-level=info", "--zap-encoder=console"]
    return cluster.popen_in_netns("addon-scaler", argv, env)


def admin_endpoints(namespace: str, address: str, admin_port: int) -> list[dict[str, Any]]:
    """The interceptor's admin Service (selector-less) in ``namespace`` and an EndpointSlice
    naming ``address`` (an address of the network namespace: the interceptor listens on all of
    them) as its one pod."""
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": ADMIN_SERVICE, "namespace": namespace},
        "spec": {"ports": [{"name": "admin", "port": admin_port, "targetPort": admin_port}]},
    }
    endpoints = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{ADMIN_SERVICE}-static",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": ADMIN_SERVICE},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": "admin", "port": admin_port, "protocol": "TCP"}],
    }
    return [service, endpoints]


def scaled_object(
    namespace: str,
    name: str,
    scaler_address: str,
    *,
    cooldown: int | None = None,
    min_replicas: int | None = None,
    max_replicas: int | None = None,
) -> dict[str, Any]:
    """The ScaledObject the add-on's operator writes for the HTTPScaledObject ``name`` whose
    workload is the Deployment ``name`` (pkg/k8s.NewScaledObject, v0.15)."""
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "pollingInterval": SO_POLLING_INTERVAL,
        "advanced": {"restoreToOriginalReplicaCount": True},
        "triggers": [
            {
                "type": "external-push",
                "metadata": {"scalerAddress": scaler_address, "httpScaledObject": name},
            }
        ],
    }
    for key, value in (
        ("cooldownPeriod", cooldown),
        ("minReplicaCount", min_replicas),
        ("maxReplicaCount", max_replicas),
    ):
        if value is not None:
            spec[key] = value
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


# -- a minimal kube-proxy: hosts file + DNAT in the namespace ------------------------------------


@dataclass(frozen=True)
class ServicePort:
    cluster_ip: str
    target_port: int  # the port on the endpoint's address


class KubeProxy:
    """Services of one namespace, reachable by name and ClusterIP (port 80) inside the network
    namespace; each is sent to its first endpoint address, ready or not yet."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.services: dict[str, ServicePort] = {}
        self.etc = Path("/etc/netns") / cluster.netns.name
        self.current: dict[str, str] = {}
        self.ready_at: dict[str, float] = {}  # perf_counter when a ready endpoint was first seen

    def _iptables(self, *args: str) -> None:
        subprocess.run(
            self.cluster.netns.command(["iptables", "-w", "-t", "nat", *args]),
            check=True,
            capture_output=True,
            timeout=30,
        )

    def install(self, services: dict[str, ServicePort], static: dict[str, str]) -> None:
        """Names and rules for ``services``; those in ``static`` point at that address for good."""
        self.services = dict(services)
        self.etc.mkdir(parents=True, exist_ok=True)
        ns = self.namespace
        lines = ["127.0.0.1 localhost"]
        for name, svc in self.services.items():
            lines.append(
                f"{svc.cluster_ip} {name}.{ns} {name}.{ns}.svc {name}.{ns}.svc.cluster.local"
            )
        (self.etc / "hosts").write_text("\n".join(lines) + "\n")
        subprocess.run(
            ["ip", "-n", self.cluster.netns.name, "route", "add", SERVICE_CIDR, "dev", "lo"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        for name, svc in self.services.items():
            chain = f"KP-{name.upper()}"
            self._iptables("-N", chain)
            self._iptables(
                "-A", "OUTPUT", "-d", svc.cluster_ip, "-p", "tcp", "--dport", "80", "-j", chain
            )
        for name, endpoint in static.items():
            self.point(name, endpoint)

    def point(self, name: str, endpoint: str) -> None:
        if self.current.get(name) == endpoint:
            return
        chain = f"KP-{name.upper()}"
        self._iptables("-F", chain)
        target = f"{endpoint}:{self.services[name].target_port}"
        self._iptables("-A", chain, "-p", "tcp", "-j", "DNAT", "--to-destination", target)
        self.current[name] = endpoint

    async def follow(self, kube: Kube, name: str) -> None:
        """Points the Service's rule at its first endpoint address, ready or not yet."""
        while True:
            listed = await kube.list(ENDPOINTSLICES, self.namespace)
            for item in listed.items:
                self._apply(name, item)
            try:
                async for event in kube.watch(
                    ENDPOINTSLICES, self.namespace, listed.resource_version
                ):
                    if event.type in ("ADDED", "MODIFIED"):
                        self._apply(name, event.object)
            except Exception as e:  # a dropped watch: list again
                log(f"kube-proxy: watch ended ({e!r}), relisting")
                await asyncio.sleep(0.2)

    def _apply(self, name: str, slice_: dict[str, Any]) -> None:
        labels = slice_.get("metadata", {}).get("labels") or {}
        if labels.get("kubernetes.io/service-name") != name:
            return
        endpoints = [
            e
            for e in slice_.get("endpoints") or []
            if not e.get("conditions", {}).get("terminating") and e.get("addresses")
        ]
        if any(e.get("conditions", {}).get("ready") for e in endpoints):
            self.ready_at.setdefault(name, time.perf_counter())
        else:
            self.ready_at.pop(name, None)
        if endpoints:
            self.point(name, endpoints[0]["addresses"][0])

    def remove(self) -> None:
        shutil.rmtree(self.etc, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.etc.parent.rmdir()  # /etc/netns itself, if nothing else lives there
