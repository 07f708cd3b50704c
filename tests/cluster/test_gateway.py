"""A real Gateway in front of wakeway: client -> Traefik (GatewayClass, Gateway, HTTPRoute with the
route identity filter, ReferenceGrant) -> interceptor -> pod, on the harness cluster.

Traefik (tests/cluster/traefik.py) and wakeway in standalone mode run as processes in the
cluster's network namespace; Traefik finds the interceptor through its Service and EndpointSlice.
Tenants act under their own ServiceAccounts (tests/cluster/tenants.py) and do what a user does:
write a route to the interceptor, bind it with an HTTPScaledObject, and copy the identity the
object's status publishes into the route's RequestHeaderModifier. The installer (the admin
here) writes the ReferenceGrant in ``wakeway`` that lets each tenant's routes name the
interceptor Service.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.harness.cluster import SPARE_IPS, Cluster
from tests.cluster.helpers import Answer, eventually
from tests.cluster.standalone import Standalone, replicas, running_standalone
from tests.cluster.tenants import BOUND, Tenant, httpso, status_where, tenant, workload
from tests.cluster.traefik import (
    CONTROLLER,
    GATEWAY_GROUP,
    INTERCEPTOR,
    INTERCEPTOR_NS,
    INTERCEPTOR_PORT,
    NAME,
    NAMESPACE,
    Gateway,
    conditions_of,
    route_status,
    routes_to_interceptor,
    traefik_binary,
    traefik_gateway,
)
from tests.cluster.wakeway_setup import apply, resource_of
from wakeway.kube import Kube, NotFound
from wakeway.kube.resources import HTTPROUTES, HTTPSCALEDOBJECTS
from wakeway.routing.identity import IDENTITY_HEADER

pytestmark = pytest.mark.cluster

PROXY, GATEWAY_PORT = 18781, 18782
ADMIN, SCALER, PING = 19781, 19782, 19783
INTERCEPTOR_IP = SPARE_IPS[1]  # where the interceptor listens; its EndpointSlice says so
NO_ROUTE = "no route for host"  # the interceptor's 404 (Traefik's own says "page not found")
README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def stack(cluster: Cluster) -> Iterator[Standalone]:
    traefik_binary()  # skips the module before anything starts when Traefik is not built
    with running_standalone(
        cluster, "gw", PROXY, ADMIN, SCALER, proxy_host=INTERCEPTOR_IP
    ) as started:
        yield started


@pytest.fixture(scope="module")
def gateway(cluster: Cluster, stack: Standalone) -> Iterator[Gateway]:
    with traefik_gateway(cluster, GATEWAY_PORT, PING, (INTERCEPTOR_IP, PROXY)) as gw:
        yield gw


# --- what a tenant writes -----------------------------------------------------------------------


def rule(path: str, identity: str | None = None) -> dict[str, Any]:
    """A rule for requests under ``path`` to the interceptor, stamping ``identity`` if given."""
    out: dict[str, Any] = {
        "matches": [{"path": {"type": "PathPrefix", "value": path}}],
        "backendRefs": [
            {"name": INTERCEPTOR, "namespace": INTERCEPTOR_NS, "port": INTERCEPTOR_PORT}
        ],
    }
    if identity is not None:
        stamp = {"name": IDENTITY_HEADER, "value": identity}
        out["filters"] = [
            {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [stamp]}}
        ]
    return out


def route(name: str, hostname: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": NAME, "namespace": NAMESPACE}],
            "hostnames": [hostname],
            "rules": rules,
        },
    }


async def behind_gateway(
    admin: Kube, t: Tenant, name: str, hostname: str, rules: list[dict[str, Any]]
) -> str:
    """The tenant's route ``name`` (``rules``; the first one, unstamped, is ``/``'s) bound by its
    HTTPScaledObject ``name``; then the identity the status publishes, copied into the first
    rule's filter, as the user does. Returns the identity once the binding holds."""
    await apply(admin, [routes_to_interceptor(t.ns)])  # the installer's grant for this tenant
    await t.kube.create(HTTPROUTES, t.ns, route(name, hostname, rules))
    await t.kube.create(HTTPSCALEDOBJECTS, t.ns, httpso(name, routes=[{"name": name}]))
    unstamped = ("False", "IdentityNotStamped")
    st = await status_where(t.kube, t.ns, name, "Bound", unstamped)
    identity = str(st["routes"][0]["identity"])
    stamped = [rule(rules[0]["matches"][0]["path"]["value"], identity), *rules[1:]]
    await t.kube.merge_patch(HTTPROUTES, t.ns, name, {"spec": {"rules": stamped}})
    if len(rules) == 1:  # every rule stamps it: the binding holds
        await status_where(t.kube, t.ns, name, "Bound", BOUND)
    return identity


async def served_through(gateway: Gateway, host: str, pod_prefix: str, path: str = "/") -> Answer:
    """The first answer from a pod named ``pod_prefix``-... through the Gateway (Traefik and the
    interceptor each catch up with the API server within moments; until then, 404s)."""

    async def answered() -> Answer | None:
        a = await gateway.get(host, path, timeout=10)
        return a if a.status == 200 and a.body.startswith(pod_prefix) else None

    return await eventually(answered, f"{host}{path} to be answered by {pod_prefix}", within=60)


# --- (a) a cold start through the Gateway ------------------------------------------------------


async def test_a_cold_workload_is_woken_through_the_gateway(
    cluster: Cluster, stack: Standalone, gateway: Gateway, kube: Kube
) -> None:
    async with tenant(cluster, kube, "gw-cold") as t:
        await workload(t, "cold", replicas=0)
        host = f"cold.{t.ns}.test"
        await behind_gateway(kube, t, "cold", host, [rule("/")])
        assert await replicas(kube, t.ns, "cold") == 0

        async def answered() -> Answer | None:
            # A 404 (Traefik's or the interceptor's, not caught up yet) wakes nothing.
            a = await gateway.get(host, timeout=60)
            return a if a.status != 404 else None

        answer = await eventually(answered, f"{host} to be routed through the gateway", within=60)
        assert answer.status == 200, answer
        assert answer.body.startswith("cold-"), answer
        assert await replicas(kube, t.ns, "cold") >= 1
        hops = stack.wake_hops(f"{t.ns}/cold")  # the interceptor held it and woke the workload
        assert hops["cold"] <= hops["woken"]


# --- (b) the forged-Host attack through the Gateway --------------------------------------------


async def test_a_tenants_route_through_the_gateway_never_reaches_another_tenant(
    cluster: Cluster, stack: Standalone, gateway: Gateway, kube: Kube
) -> None:
    async with (
        tenant(cluster, kube, "gw-bank") as bank,
        tenant(cluster, kube, "gw-thief") as thief,
    ):
        bank_host = f"bank.{bank.ns}.test"
        await workload(bank, "bank", replicas=1)
        await behind_gateway(kube, bank, "bank", bank_host, [rule("/")])
        await served_through(gateway, bank_host, "bank-")

        # The thief's own route, in its own namespace, through the same Gateway, claims the
        # bank's host (the listener admits routes of every namespace): under /own it stamps its
        # own identity, under /forged a made-up one for the bank's route, under /bare none.
        await workload(thief, "thief", replicas=1)
        forged = f"{bank.ns}/bank;" + "0" * 32
        rules = [rule("/own"), rule("/forged", forged), rule("/bare")]
        thief_id = await behind_gateway(kube, thief, "thief", bank_host, rules)

        # Its /own rule is live through the Gateway, and reaches only its own workload.
        await served_through(gateway, bank_host, "thief-", "/own")
        # A forged identity, stamped by its rule or sent by the client past a rule that stamps
        # none, is refused by the interceptor.
        for path, headers in (("/forged", {}), ("/bare", {IDENTITY_HEADER: forged})):
            answer = await gateway.get(bank_host, path, headers=headers, timeout=10)
            assert answer.status == 404, (path, headers, answer)
            assert NO_ROUTE in answer.body, (path, headers, answer)
        # Without one, only `hosts` entries match (404, or another test's catch-all
        # HTTPScaledObject): never the bank's pod, whose object has none.
        answer = await gateway.get(bank_host, "/bare", timeout=10)
        assert not answer.body.startswith("bank-"), answer
        # The bank's rule sets its identity over whatever the client sent, the thief's included.
        answer = await gateway.get(bank_host, "/", headers={IDENTITY_HEADER: thief_id})
        assert (answer.status, answer.body[:5]) == (200, "bank-"), answer


# --- (c) the HTTPRoute's status as the Gateway reports it --------------------------------------


async def test_the_gateway_reports_the_routes_status(
    cluster: Cluster, stack: Standalone, gateway: Gateway, kube: Kube
) -> None:
    async with tenant(cluster, kube, "gw-status") as t:
        # Before the installer's grant, the Gateway may not send the route to the interceptor.
        await t.kube.create(HTTPROUTES, t.ns, route("web", f"web.{t.ns}.test", [rule("/")]))
        refused = await _parent_status(kube, t.ns, "web", ("False", "RefNotPermitted"))
        assert conditions_of(refused)["Accepted"] == ("True", "Accepted")

        await apply(kube, [routes_to_interceptor(t.ns)])
        resolved = await _parent_status(kube, t.ns, "web", ("True", "ResolvedRefs"))
        assert conditions_of(resolved)["Accepted"] == ("True", "Accepted")
        assert resolved["controllerName"] == CONTROLLER
        assert resolved["parentRef"]["name"] == NAME
        assert resolved["parentRef"]["namespace"] == NAMESPACE
        generation = (await kube.get(HTTPROUTES, t.ns, "web"))["metadata"]["generation"]
        for c in resolved["conditions"]:
            assert c["observedGeneration"] == generation, c


async def _parent_status(
    kube: Kube, ns: str, name: str, resolved_refs: tuple[str, str]
) -> dict[str, Any]:
    """The route's one ``status.parents`` entry from Traefik, once ResolvedRefs is as given."""

    async def check() -> dict[str, Any] | None:
        parents = await route_status(kube, ns, name)
        if len(parents) != 1:
            return None
        return (
            parents[0] if conditions_of(parents[0]).get("ResolvedRefs") == resolved_refs else None
        )

    return await eventually(check, f"{ns}/{name} ResolvedRefs={resolved_refs}", within=60)


# --- (d) the README's Kubernetes quick start, step by step --------------------------------------


async def test_the_readmes_quick_start_is_true(
    cluster: Cluster, stack: Standalone, gateway: Gateway, kube: Kube
) -> None:
    """The README's manifests and steps, on this tier: its Gateway is this tier's Traefik (the
    route's parentRef follows), the rest is applied as written; the operator stamps the annotated
    route, and the first request through the Gateway wakes the Deployment at zero."""
    readme = README.read_text()
    (manifests,) = re.findall(r"^```yaml\n(.*?)^```", readme, re.M | re.S)
    (host,) = re.findall(r"curl -i -H 'Host: ([^']+)' http://\$GATEWAY/", readme)
    docs = [d for d in yaml.safe_load_all(manifests) if d and d["kind"] != "Gateway"]
    (route_doc,) = [d for d in docs if d["kind"] == "HTTPRoute"]
    route_doc["spec"]["parentRefs"] = [{"name": NAME, "namespace": NAMESPACE}]
    (so,) = [d for d in docs if d["kind"] == "HTTPScaledObject"]
    ns, name = so["metadata"]["namespace"], so["metadata"]["name"]
    target = so["spec"]["scaleTargetRef"]["name"]
    try:
        await apply(kube, docs)
        st = await status_where(kube, ns, name, "Bound", BOUND)
        stamp = {"name": IDENTITY_HEADER, "value": st["routes"][0]["identity"]}
        stored = await kube.get(HTTPROUTES, ns, route_doc["metadata"]["name"])
        (written,) = stored["spec"]["rules"][0]["filters"]
        assert written["requestHeaderModifier"]["set"] == [stamp]
        assert await replicas(kube, ns, target) == 0

        async def answered() -> Answer | None:
            a = await gateway.get(host, timeout=60)  # a 404 (not caught up yet) wakes nothing
            return a if a.status != 404 else None

        answer = await eventually(answered, f"{host} to be routed through the gateway", within=60)
        assert answer.status == 200, answer
        assert answer.body.startswith(f"{target}-"), answer
        assert await replicas(kube, ns, target) >= 1
    finally:
        for d in reversed(docs):
            with contextlib.suppress(NotFound):
                res = resource_of(d)
                await kube.delete(res, d["metadata"].get("namespace"), d["metadata"]["name"])
