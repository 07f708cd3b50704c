"""wakeway and KEDA together in the harness cluster's network namespace, for the interop tests.

``keda_stack`` starts, inside the namespace: ``wakeway interceptor`` (under its ServiceAccount),
``wakeway scaler`` fed by that interceptor's count stream (under its ServiceAccount: it reads
InterceptorRoutes), a counting gRPC tap in front of the scaler (grpctap.py), ``wakeway operator
--mode keda`` (under its ServiceAccount, watching a fresh namespace, with the tap as its scaler
address), the KEDA operator, and KEDA's metrics API server
registered as ``v1beta1.external.metrics.k8s.io`` so the HPA controller (run by the harness) reads
KEDA's external metrics, which KEDA gets from wakeway's GetMetrics. It tears all of it down
again, the APIService first and KEDA's CRDs last: other tests expect a cluster without KEDA.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness import aggregation
from tests.cluster.harness.cluster import SPARE_IPS, Cluster
from tests.cluster.harness.processes import Proc, stop
from tests.cluster.helpers import deployment, service
from tests.cluster.wakeway_setup import (
    REPO,
    apply,
    documents,
    install_crd,
    install_interceptor_rbac,
    install_rbac,
    start_interceptor,
)
from tests.interop import binaries
from tests.interop.keda import (
    crd_documents,
    healthy,
    install_crds,
    metrics_api,
    remove_crds,
    start_adapter,
    start_operator,
)
from wakeway.kube import Kube
from wakeway.kube.resources import DEPLOYMENTS, NAMESPACES, SERVICES

ADAPTER_IP = SPARE_IPS[0]


@dataclass(frozen=True)
class Ports:
    """Ports on the namespace's loopback (the adapter's secure port is on ADAPTER_IP, and its
    Prometheus port on every address): distinct per test module."""

    proxy: int
    admin: int
    scaler: int
    tap: int
    keda_probe: int
    keda_metrics: int
    adapter: int
    adapter_prometheus: int

    @classmethod
    def block(cls, first: int) -> Ports:
        """Eight consecutive ports from ``first``."""
        return cls(*range(first, first + 8))


@dataclass(frozen=True)
class KedaStack:
    cluster: Cluster
    namespace: str
    ports: Ports
    tap_log: Path

    def tap_events(self) -> list[dict[str, Any]]:
        """Every RPC event the tap logged so far (grpctap.py)."""
        try:
            lines = self.tap_log.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]


@contextlib.contextmanager
def keda_stack(cluster: Cluster, ports: Ports, name: str) -> Iterator[KedaStack]:
    """The whole stack; ``name`` prefixes the namespace and the tap's log file."""
    keda = binaries.required(binaries.keda, "interop tier")
    ns = f"{name}-{uuid.uuid4().hex[:6]}"
    crds = crd_documents(keda.crds)
    api = metrics_api(ADAPTER_IP, ports.adapter)

    async def prepare() -> tuple[Path, Path, Path, list[str]]:
        kube = await Kube.connect(str(cluster.kubeconfig))
        try:
            await install_crd(kube)
            await install_interceptor_rbac(kube)
            await install_rbac(kube, "scaler")
            await apply(kube, documents(REPO / "config" / "base" / "operator-rbac.yaml"))
            created = await install_crds(kube, crds)
            await kube.create(NAMESPACES, None, {"metadata": {"name": ns}})
        finally:
            await kube.close()
        interceptor = await cluster.service_account_kubeconfig(
            "wakeway", "wakeway-interceptor", in_netns=True
        )
        operator = await cluster.service_account_kubeconfig(
            "wakeway", "wakeway-operator", in_netns=True
        )
        # The scaler reads InterceptorRoutes (a trigger naming one names only the route).
        scaler = await cluster.service_account_kubeconfig(
            "wakeway", "wakeway-scaler", in_netns=True
        )
        return interceptor, operator, scaler, created

    async def clean_up(created: list[str]) -> None:
        kube = await Kube.connect(str(cluster.kubeconfig))
        try:
            await kube.delete(NAMESPACES, None, ns)
            await remove_crds(kube, created)
        finally:
            await kube.close()

    interceptor_kubeconfig, operator_kubeconfig, scaler_kubeconfig, created = asyncio.run(prepare())
    tap_log = cluster.dir / f"grpctap-{name}.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{REPO / 'src'}"
    operator_env = {
        **env,
        "WAKEWAY_KUBECONFIG": str(operator_kubeconfig),
        "WAKEWAY_OPERATOR_MODE": "keda",
        "WAKEWAY_OPERATOR_NAMESPACE": ns,
        "WAKEWAY_OPERATOR_SCALER_ADDRESS": f"127.0.0.1:{ports.tap}",
        "WAKEWAY_OPERATOR_HEALTH_PORT": "0",
    }
    python = [sys.executable, "-m"]
    procs: list[Proc] = []
    registered = False
    try:
        procs += [
            start_interceptor(cluster, interceptor_kubeconfig, ports.proxy, ports.admin),
            cluster.popen_in_netns(
                "scaler",
                [
                    *python,
                    *("wakeway.cli", "scaler", "--listen", f"127.0.0.1:{ports.scaler}"),
                    *("--interceptors", f"127.0.0.1:{ports.admin}"),
                ],
                env={
                    **env,
                    "WAKEWAY_SCALER_METRICS_PORT": "0",
                    "WAKEWAY_SCALER_KUBECONFIG": str(scaler_kubeconfig),
                },
            ),
            cluster.popen_in_netns(
                "grpctap",
                [
                    *python,
                    *("tests.interop.grpctap", "--listen", f"127.0.0.1:{ports.tap}"),
                    *("--upstream", f"127.0.0.1:{ports.scaler}", "--log", str(tap_log)),
                ],
                env=env,
            ),
            cluster.popen_in_netns(
                "wakeway-operator", [*python, "wakeway.cli", "operator"], env=operator_env
            ),
            start_operator(
                cluster,
                keda.operator,
                watch_namespace=ns,
                probe_port=ports.keda_probe,
                metrics_service_port=ports.keda_metrics,
            ),
            start_adapter(
                cluster,
                keda.adapter,
                api,
                watch_namespace=ns,
                metrics_service_port=ports.keda_metrics,
                prometheus_port=ports.adapter_prometheus,
            ),
        ]
        asyncio.run(aggregation.register(cluster, api))
        registered = True
        _wait_ready(cluster, api, ports, procs)
        yield KedaStack(cluster, ns, ports, tap_log)
    finally:
        if registered:  # before the adapter stops: discovery must not go partial
            asyncio.run(aggregation.unregister(cluster, api))
        for proc in reversed(procs):
            stop(proc, 5.0)
        asyncio.run(clean_up(created))


def _wait_ready(
    cluster: Cluster, api: aggregation.AggregatedApi, ports: Ports, procs: list[Proc]
) -> None:
    """KEDA's operator healthy and the metrics API available through the API server."""
    deadline = time.monotonic() + 60

    def check_alive(what: str) -> None:
        dead = [p for p in procs if not p.alive()]
        if dead:
            pytest.fail(f"{dead[0].name} exited:\n{dead[0].tail()}", pytrace=False)
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.tail(10)}" for p in procs[-2:])
            pytest.fail(f"{what} not ready in time:\n{tails}", pytrace=False)

    while not healthy(cluster, ports.keda_probe):
        check_alive("KEDA's operator")
        time.sleep(0.2)
    # KEDA dials the tap, the tap the scaler: both listening before any ScaledObject exists.
    for port in (ports.scaler, ports.tap):
        while not cluster.netns.call(functools.partial(_listening, port)):
            check_alive(f"the listener on 127.0.0.1:{port}")
            time.sleep(0.1)
    while (why := asyncio.run(aggregation.available(cluster, api))) is not None:
        check_alive(f"the external metrics APIService ({why})")
        time.sleep(0.2)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


async def deployment_at_zero(
    kube: Kube, ns: str, name: str, annotations: dict[str, str] | None = None
) -> None:
    """A Deployment at zero replicas (its pods serve on 8080) and its Service on port 80."""
    await kube.create(
        DEPLOYMENTS, ns, deployment(name, replicas=0, port=8080, annotations=annotations)
    )
    svc = service(name, port=80)
    svc["spec"]["ports"][0]["targetPort"] = 8080
    await kube.create(SERVICES, ns, svc)
