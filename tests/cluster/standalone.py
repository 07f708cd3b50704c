"""wakeway without KEDA on the harness cluster: one interceptor, the scaler and the operator in
standalone mode, each a process in the cluster's network namespace under its own ServiceAccount,
logging JSON so their wake events can be read; and apps (a Deployment at zero, its Service and
its HTTPScaledObject) to point them at.

Shared by the cluster tests and ``loadtest/bench_wake.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.processes import Proc, stop
from tests.cluster.helpers import Answer, deployment, eventually, http_request, service
from tests.cluster.wakeway_setup import component_kubeconfigs, start_component
from wakeway.kube import Kube
from wakeway.kube.resources import (
    DEPLOYMENTS,
    EVENTS,
    HTTPSCALEDOBJECTS,
    NAMESPACES,
    SERVICES,
)

JSON_LOGS = ["--log-format", "json"]
LO = "127.0.0.1"  # inside the cluster's network namespace


@dataclass
class Standalone:
    cluster: Cluster
    procs: dict[str, Proc]
    proxy: int
    admin: int

    def get(self, host: str, timeout: float = 60.0) -> asyncio.Task[Answer]:
        return http_request(self.cluster, host, self.proxy, timeout=timeout)

    def wake_hops(self, target: str) -> dict[str, float]:
        """When each hop of ``target``'s one wake happened (``cold``, ``wake-seen``, ``active``,
        ``sent``, ``woken``; monotonic seconds), from one read of the logs."""
        at: dict[str, float] = {}
        for doc in self.events():
            if doc.get("target") != target:
                continue
            name = str(doc["event"])
            if name in at:
                raise AssertionError(f"{target}: more than one {name!r} event")
            at[name] = float(doc["mono"])
            if name == "woken":
                at["sent"] = float(doc["sent"])
        missing = {"cold", "wake-seen", "active", "woken"} - at.keys()
        if missing:
            raise AssertionError(f"{target}: no {', '.join(sorted(missing))} event")
        return at

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The structured events every component logged so far (``name``: only those)."""
        found: list[dict[str, Any]] = []
        for proc in self.procs.values():
            try:
                text = proc.log.read_text(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                if not line.startswith("{"):
                    continue
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue
                if "event" in doc and (name is None or doc["event"] == name):
                    found.append(doc)
        return sorted(found, key=lambda d: float(d["mono"]))

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            stop(proc, 5.0)


@contextlib.contextmanager
def running_standalone(
    cluster: Cluster,
    prefix: str,
    proxy: int,
    admin: int,
    scaler: int,
    proxy_host: str = LO,
    scaler_env: Mapping[str, str] | None = None,
    interceptor_env: Mapping[str, str] | None = None,
) -> Iterator[Standalone]:
    """A module's stack (:func:`start_standalone`), stopped when the block ends."""
    stack = asyncio.run(
        start_standalone(
            cluster,
            prefix,
            proxy,
            admin,
            scaler,
            proxy_host=proxy_host,
            scaler_env=scaler_env,
            interceptor_env=interceptor_env,
        )
    )
    try:
        yield stack
    finally:
        stack.stop()


async def start_standalone(
    cluster: Cluster,
    prefix: str,
    proxy: int,
    admin: int,
    scaler: int,
    interceptor_env: Mapping[str, str] | None = None,
    proxy_host: str = LO,
    scaler_env: Mapping[str, str] | None = None,
    **operator_env: str,
) -> Standalone:
    """The stack, its proxy port on ``proxy_host`` (a Gateway reaches it at an address of the
    pod range, which an EndpointSlice may name; loopback it may not)."""
    configs = await component_kubeconfigs(cluster, "interceptor", "scaler", "operator")
    procs: dict[str, Proc] = {}
    procs["interceptor"] = start_component(
        cluster,
        f"{prefix}-interceptor",
        [
            *JSON_LOGS,
            "interceptor",
            "--listen",
            f"{proxy_host}:{proxy}",
            "--admin",
            f"{LO}:{admin}",
        ],
        configs["interceptor"],
        **(interceptor_env or {}),
    )
    procs["scaler"] = start_component(
        cluster,
        f"{prefix}-scaler",
        [*JSON_LOGS, "scaler", "--listen", f"{LO}:{scaler}", "--interceptors", f"{LO}:{admin}"],
        None,
        **{"WAKEWAY_SCALER_METRICS_PORT": "0", **(scaler_env or {})},  # 0: stacks run side by side
    )
    env = {
        "WAKEWAY_OPERATOR_MODE": "standalone",
        "WAKEWAY_OPERATOR_SCALER_ADDRESS": f"{LO}:{scaler}",
        "WAKEWAY_OPERATOR_HEALTH_PORT": "0",
        "WAKEWAY_OPERATOR_METRICS_INTERVAL": "0.5",
        **operator_env,
    }
    procs["operator"] = start_component(
        cluster, f"{prefix}-operator", [*JSON_LOGS, "operator"], configs["operator"], **env
    )

    async def serving() -> bool:  # /readyz: synced, with its first routing table
        return interceptor_ready(cluster, admin)

    await eventually(serving, "the interceptor to be ready", within=60)
    return Standalone(cluster, procs, proxy, admin)


def interceptor_ready(cluster: Cluster, admin: int) -> bool:
    """Whether the interceptor whose admin port is ``admin`` answers /readyz with 200."""

    def fetch() -> int:
        conn = http.client.HTTPConnection(LO, admin, timeout=5)
        try:
            conn.request("GET", "/readyz")
            return conn.getresponse().status
        except OSError:
            return 0
        finally:
            conn.close()

    return cluster.netns.call(fetch) == 200


async def make_app(kube: Kube, name: str, **spec: Any) -> str:
    """A new namespace with a Deployment at zero, its Service, and its HTTPScaledObject (host
    ``<name>.<namespace>.test``); returns the namespace."""
    ns = f"sa-{uuid.uuid4().hex[:6]}"
    await kube.create(NAMESPACES, None, {"metadata": {"name": ns}})
    annotations = spec.pop("annotations", None)
    await kube.create(
        DEPLOYMENTS, ns, deployment(name, replicas=0, port=8080, annotations=annotations)
    )
    svc = service(name, port=80)
    svc["spec"]["ports"][0]["targetPort"] = 8080
    await kube.create(SERVICES, ns, svc)
    body = {
        "hosts": [f"{name}.{ns}.test"],
        "scaleTargetRef": {"name": name, "service": name, "port": 80},
        **spec,
    }
    await kube.create(
        HTTPSCALEDOBJECTS,
        ns,
        {
            "apiVersion": "http.keda.sh/v1alpha1",
            "kind": "HTTPScaledObject",
            "metadata": {"name": name},
            "spec": body,
        },
    )
    return ns


async def first_routed(stack: Standalone, host: str, within: float = 60.0) -> Answer:
    """The first answer for ``host`` that is not the interceptor's 404 (no route yet: its
    informer has not seen the object). A 404 wakes nothing, so this waits on the condition
    without waking anything early; the request that is routed is the wake."""
    async with asyncio.timeout(within):
        while True:
            answer = await stack.get(host, timeout=within)
            if answer.status != 404:
                return answer
            await asyncio.sleep(0.05)


async def replicas(kube: Kube, ns: str, name: str) -> int:
    return (await kube.get_scale(DEPLOYMENTS, ns, name)).replicas


async def conditions(kube: Kube, ns: str, name: str) -> dict[str, str]:
    obj = await kube.get(HTTPSCALEDOBJECTS, ns, name)
    return {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions", [])}


async def ready(kube: Kube, ns: str, name: str) -> None:
    """Until the operator has made the object Ready (it has seen it, and it is valid)."""

    async def check() -> bool:
        return (await conditions(kube, ns, name)).get("Ready") == "True"

    await eventually(check, f"{ns}/{name} to be Ready", within=60)


async def event_reasons(kube: Kube, ns: str, name: str) -> list[str]:
    """The reasons of the operator's Events on the HTTPScaledObject, oldest first."""
    listed = await kube.list(EVENTS, ns)
    mine = [
        e
        for e in listed.items
        if (e.get("involvedObject") or {}).get("name") == name
        and e["involvedObject"].get("kind") == "HTTPScaledObject"
    ]
    mine.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))  # the order they were stored
    return [str(e.get("reason")) for e in mine]
