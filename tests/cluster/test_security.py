"""Tenant isolation and prompt answers, on a real API server, as a hostile tenant would try.

wakeway runs as in production, standalone mode: an interceptor, the scaler and the operator,
each a process inside the cluster's network namespace under its own ServiceAccount (the RBAC of
config/base), with a route identity key. Every tenant acts under its own ServiceAccount, with a
Role that lets it manage HTTPScaledObjects, HTTPRoutes, ReferenceGrants, Deployments and
Services in its own namespace and nothing anywhere else (tests/cluster/tenants.py).
docs/security.md names these tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.helpers import Answer, eventually, http_request
from tests.cluster.standalone import Standalone, start_standalone
from tests.cluster.tenants import (
    BOUND,
    Tenant,
    condition,
    httpso,
    status,
    status_where,
    tenant,
    workload,
)
from tests.cluster.wakeway_setup import IDENTITY, stamped_route
from tests.metrics_text import value
from wakeway.kube import Forbidden, Kube, NotFound
from wakeway.kube.resources import (
    DEPLOYMENTS,
    HTTPROUTES,
    HTTPSCALEDOBJECTS,
    REFERENCEGRANTS,
    SERVICES,
)
from wakeway.routing.identity import IDENTITY_HEADER

pytestmark = pytest.mark.cluster

PROXY, ADMIN, SCALER = 18481, 19481, 19483
CONDITION_WAIT = 20.0  # the interceptor's default readiness deadline, written out
REFUSED = ("False", "RefNotPermitted")


# --- the stack ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(cluster: Cluster) -> Iterator[Standalone]:
    started = asyncio.run(
        start_standalone(
            cluster,
            "sec",
            PROXY,
            ADMIN,
            SCALER,
            interceptor_env={"WAKEWAY_INTERCEPTOR_CONDITION_WAIT": str(CONDITION_WAIT)},
        )
    )
    try:
        yield started
    finally:
        started.stop()


# --- what tenants write -------------------------------------------------------------------------


def route_grant(in_ns: str, from_ns: str, route: str | None = None) -> dict[str, Any]:
    """The route owner's consent: HTTPScaledObjects of ``from_ns`` may bind HTTPRoutes here."""
    to: dict[str, Any] = {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}
    if route is not None:
        to["name"] = route
    return {
        "apiVersion": "gateway.networking.k8s.io/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": {"name": f"from-{from_ns}", "namespace": in_ns},
        "spec": {
            "from": [{"group": "http.keda.sh", "kind": "HTTPScaledObject", "namespace": from_ns}],
            "to": [to],
        },
    }


def old_direction_grant(in_ns: str, route_ns: str) -> dict[str, Any]:
    """What wakeway used to look for: a grant in the claimant's namespace, from HTTPRoutes of
    the route's namespace to HTTPScaledObjects. Its writer is the claimant: it proves nothing."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": {"name": f"self-grant-{route_ns}", "namespace": in_ns},
        "spec": {
            "from": [
                {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": route_ns}
            ],
            "to": [{"group": "http.keda.sh", "kind": "HTTPScaledObject"}],
        },
    }


async def route_owner(t: Tenant, name: str) -> str:
    """A tenant's workload ``name`` and its HTTPRoute ``name`` (host ``name``.test) stamping
    the route's identity, which is returned."""
    await workload(t, name, replicas=1)
    await t.kube.create(HTTPROUTES, t.ns, stamped_route(t.ns, name, f"{name}.test"))
    return IDENTITY.stamp(f"{t.ns}/{name}")


async def self_granted_claim(
    thief: Tenant, victim: Tenant, more_routes: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """The thief claims the victim's route (named like the victim's namespace prefix) with a
    grant it wrote in its own namespace; returns its status once the claim is refused."""
    await workload(thief, "thief", replicas=1)
    await thief.kube.create(REFERENCEGRANTS, thief.ns, old_direction_grant(thief.ns, victim.ns))
    route = victim.ns.rsplit("-", 1)[0]
    claim = [{"name": route, "namespace": victim.ns}, *(more_routes or [])]
    await thief.kube.create(HTTPSCALEDOBJECTS, thief.ns, httpso("thief", routes=claim))
    return await status_where(thief.kube, thief.ns, "thief", "Bound", REFUSED)


# --- what tenants see ---------------------------------------------------------------------------


def request(
    cluster: Cluster, host: str, identity: str | None = None, timeout: float = 60.0
) -> asyncio.Task[Answer]:
    headers = {} if identity is None else {IDENTITY_HEADER: identity}
    return http_request(cluster, host, PROXY, headers=headers, timeout=timeout)


async def served_by(
    cluster: Cluster, host: str, identity: str | None, pod_prefix: str, within: float = 60
) -> Answer:
    """The first answer from a pod named ``pod_prefix``-... (the routing table catches up with
    the API server within moments; until then other answers are possible)."""

    async def answered() -> Answer | None:
        a = await request(cluster, host, identity, timeout=10)
        return a if a.status == 200 and a.body.startswith(pod_prefix) else None

    return await eventually(answered, f"{host} to be answered by {pod_prefix}", within=within)


async def held(cluster: Cluster, target: str) -> bool:
    answer = await http_request(cluster, "admin", ADMIN, path="/metrics", timeout=5)
    namespace, _, name = target.partition("/")
    return (value(answer.body, "wakeway_held_requests", namespace=namespace, name=name) or 0) > 0


# --- 1. the route identity goes only where the route's owner let it go ---------------------------


async def test_identity_is_never_published_for_a_refused_binding(
    cluster: Cluster, stack: Standalone, kube: Kube
) -> None:
    async with (
        tenant(cluster, kube, "bank") as bank,
        tenant(cluster, kube, "thief") as thief,
    ):
        bank_id = await route_owner(bank, "bank")
        await bank.kube.create(
            HTTPSCALEDOBJECTS, bank.ns, httpso("bank", routes=[{"name": "bank"}])
        )
        bank_status = await status_where(bank.kube, bank.ns, "bank", "Bound", BOUND)
        assert bank_status["routes"][0]["identity"] == bank_id  # the owner gets it

        # The thief names the bank's route (and grants itself, in its own namespace, the old
        # way), and a route that does not exist.
        st = await self_granted_claim(thief, bank, [{"name": "no-such-route"}])
        by_name = {r["name"]: r for r in st["routes"]}
        assert by_name["bank"]["bound"] is False
        assert by_name["bank"]["reason"] == "RefNotPermitted"
        assert f"ReferenceGrant in {bank.ns}" in by_name["bank"]["message"]
        assert by_name["no-such-route"]["reason"] == "RouteNotFound"
        assert [r for r in st["routes"] if "identity" in r] == []
        assert bank_id not in str(st)
        # The thief cannot read the bank's objects either, where the identity is written.
        with pytest.raises(Forbidden):
            await thief.kube.get(HTTPSCALEDOBJECTS, bank.ns, "bank")
        with pytest.raises(Forbidden):
            await thief.kube.get(HTTPROUTES, bank.ns, "bank")
        # Without the identity, the bank's route-only workload is out of reach (404, or another
        # test's catch-all HTTPScaledObject: never the bank's pod).
        forged = f"{bank.ns}/bank;" + "0" * 32
        for identity in (None, forged):
            answer = await request(cluster, "bank.test", identity)
            assert not answer.body.startswith("bank-"), answer


# --- 2. no route takeover ----------------------------------------------------------------------


async def test_a_tenant_cannot_take_over_another_tenants_route(
    cluster: Cluster, stack: Standalone, kube: Kube
) -> None:
    async with (
        tenant(cluster, kube, "shop") as shop,
        tenant(cluster, kube, "thief") as thief,
    ):
        shop_id = await route_owner(shop, "shop")
        # The thief comes first, with a grant it wrote itself, in its own namespace.
        await self_granted_claim(thief, shop)
        # It cannot write a grant where it would count, in the route's namespace.
        with pytest.raises(Forbidden):
            await thief.kube.create(REFERENCEGRANTS, shop.ns, route_grant(shop.ns, thief.ns))

        # The shop binds its own route, later: its traffic is its own.
        await shop.kube.create(
            HTTPSCALEDOBJECTS, shop.ns, httpso("shop", routes=[{"name": "shop"}])
        )
        await status_where(shop.kube, shop.ns, "shop", "Bound", BOUND)
        assert (await served_by(cluster, "shop.test", shop_id, "shop-")).body.startswith("shop-")

        # Even when the shop grants the (older) thief its route, its own object keeps it.
        await shop.kube.create(REFERENCEGRANTS, shop.ns, route_grant(shop.ns, thief.ns, "shop"))
        st = await status_where(thief.kube, thief.ns, "thief", "Bound", ("False", "RuleConflict"))
        assert [r for r in st["routes"] if "identity" in r] == []
        shop_st = await status(shop.kube, shop.ns, "shop")
        assert condition(shop_st, "Bound") == BOUND
        for _ in range(10):
            answer = await request(cluster, "shop.test", shop_id)
            assert (answer.status, answer.body[:5]) == (200, "shop-"), answer

        # Once the shop's object is gone, the granted thief binds and gets the identity.
        await shop.kube.delete(HTTPSCALEDOBJECTS, shop.ns, "shop")
        st = await status_where(thief.kube, thief.ns, "thief", "Bound", BOUND)
        assert st["routes"][0]["identity"] == shop_id
        await served_by(cluster, "shop.test", shop_id, "thief-")


# --- 3. caches are fresh soon after the API server comes back -----------------------------------


async def test_caches_catch_up_promptly_after_an_api_server_restart(
    cluster: Cluster, stack: Standalone, kube: Kube
) -> None:
    async with tenant(cluster, kube, "restart") as t:
        await workload(t, "web", replicas=1)
        await t.kube.create(HTTPSCALEDOBJECTS, t.ns, httpso("before", "web", hosts=["before.test"]))
        await served_by(cluster, "before.test", None, "web-")

        outage = 20.0  # long enough for an unbounded backoff to grow well past the limit below
        cluster.kill_apiserver()
        try:
            await _outage(cluster, outage)
        finally:
            await asyncio.to_thread(cluster.start_apiserver)
            try:
                # Back when it answers a tenant again (it authorizes service accounts only once
                # its RBAC caches are in, a few seconds after it answers the admin).
                await eventually(
                    lambda: _answers(t.kube, t.ns), "the API server to answer again", within=60
                )
                began = time.monotonic()
                spec = {"hosts": ["after.test"]}
                await t.kube.create(HTTPSCALEDOBJECTS, t.ns, httpso("after", "web", **spec))
                await served_by(cluster, "after.test", None, "web-")
                routed = time.monotonic() - began
                await status_where(t.kube, t.ns, "after", "Ready", ("True", "Ready"))
                reconciled = time.monotonic() - began
            finally:
                await _controllers_caught_up(cluster, t)
        print(
            f"\nafter a {outage:.0f} s API server outage: a new object routed in {routed:.2f} s, "
            f"its status written in {reconciled:.2f} s"
        )
        assert routed < 4.0
        assert reconciled < 4.0


async def _outage(cluster: Cluster, seconds: float) -> None:
    """The API server stays away ``seconds`` (the stimulus, not something to wait for), while
    the interceptor serves from its caches."""
    down_until = time.monotonic() + seconds
    failures: list[Answer] = []

    async def over() -> bool:
        answer = await http_request(cluster, "before.test", PROXY, timeout=5)
        if answer.status != 200:
            failures.append(answer)
        return time.monotonic() >= down_until

    await eventually(over, "the end of the outage", within=seconds + 10, interval=0.5)
    assert failures == []


async def _controllers_caught_up(cluster: Cluster, t: Tenant) -> None:
    """The cluster's own controllers (client-go, with their own backoff) take a while longer
    after a restart: wait until a workload is woken and served through wakeway again, so the
    tests after this one find the cluster as it was."""
    began = time.monotonic()
    await workload(t, "probe", replicas=0)
    await t.kube.create(HTTPSCALEDOBJECTS, t.ns, httpso("probe", hosts=["probe.test"]))
    await served_by(cluster, "probe.test", None, "probe-", within=180)
    print(f"\na cold workload was served {time.monotonic() - began:.1f} s after the restart")


async def _answers(kube: Kube, ns: str) -> bool:
    try:
        await kube.get(HTTPSCALEDOBJECTS, ns, "before")
    except Exception:
        return False
    return True


# --- 4. an object deleted while requests wait for it -------------------------------------------


async def test_requests_held_for_a_deleted_object_are_answered_at_once(
    cluster: Cluster, stack: Standalone, kube: Kube
) -> None:
    async with tenant(cluster, kube, "gone") as t:
        # Its pod takes a while to listen, so the requests are still held at the deletion.
        await workload(t, "slow", replicas=0, annotations={"wakeway.test/startup-delay": "8"})
        spec: dict[str, Any] = {
            "hosts": ["slow.test"],
            "timeouts": {"conditionWait": f"{CONDITION_WAIT:g}s"},
        }
        await t.kube.create(HTTPSCALEDOBJECTS, t.ns, httpso("slow", **spec))
        await status_where(t.kube, t.ns, "slow", "Ready", ("True", "Ready"))

        pending: list[asyncio.Task[Answer]] = []

        async def holding() -> bool:
            # Until the interceptor routes the new object, a request is answered 404 at once.
            if await held(cluster, f"{t.ns}/slow"):
                return True
            pending.append(request(cluster, "slow.test"))
            return False

        await eventually(holding, "a request held for slow", within=60, interval=0.3)
        await eventually(lambda: _woken(t, "slow"), "the workload woken", within=30, interval=0.05)
        deleted = time.monotonic()
        await t.kube.delete(HTTPSCALEDOBJECTS, t.ns, "slow")
        answers = await asyncio.gather(*pending)
        waited = time.monotonic() - deleted
        held_answers = [a for a in answers if a.status != 404]
        assert held_answers, answers
        for a in held_answers:
            assert a.status == 503, a
            assert f"HTTPScaledObject {t.ns}/slow was deleted" in a.body
        assert waited < 3.0, f"answered {waited:.1f} s after the deletion"


async def _woken(t: Tenant, name: str) -> bool:
    return (await t.kube.get_scale(DEPLOYMENTS, t.ns, name)).replicas >= 1


# --- 5. a workload that is gone ------------------------------------------------------------------


async def test_a_missing_workload_is_named_at_once(
    cluster: Cluster, stack: Standalone, kube: Kube
) -> None:
    async with tenant(cluster, kube, "noload") as t:
        await workload(t, "ghost", replicas=0)
        spec: dict[str, Any] = {
            "hosts": ["ghost.test"],
            "timeouts": {"conditionWait": f"{CONDITION_WAIT:g}s"},
        }
        await t.kube.create(HTTPSCALEDOBJECTS, t.ns, httpso("ghost", **spec))
        await status_where(t.kube, t.ns, "ghost", "Ready", ("True", "Ready"))

        await t.kube.delete(DEPLOYMENTS, t.ns, "ghost")
        # Touch the object (no new generation) so the operator looks at it now, not at resync.
        await t.kube.merge_patch(
            HTTPSCALEDOBJECTS, t.ns, "ghost", {"metadata": {"annotations": {"poke": "1"}}}
        )
        await status_where(t.kube, t.ns, "ghost", "Ready", ("False", "WorkloadNotFound"))

        async def answered() -> Answer | None:
            a = await request(cluster, "ghost.test", timeout=CONDITION_WAIT + 10)
            return a if a.status != 404 else None  # 404: the interceptor has not seen it yet

        answer = await eventually(answered, "an answer for ghost", within=60)
        assert answer.status == 503, answer
        assert f"Deployment {t.ns}/ghost" in answer.body
        assert "WorkloadNotFound" in answer.body
        assert answer.seconds < 2.0, answer

        # And when the workload is back, requests are held and served again.
        await workload_again(t, "ghost")
        await status_where(t.kube, t.ns, "ghost", "Ready", ("True", "Ready"), within=30)
        await served_by(cluster, "ghost.test", None, "ghost-")


async def workload_again(t: Tenant, name: str) -> None:
    with contextlib.suppress(NotFound):
        await t.kube.delete(SERVICES, t.ns, name)
    await workload(t, name, replicas=0)
