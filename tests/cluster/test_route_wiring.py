"""No copy step: the operator writes the route identity into HTTPRoutes annotated
``wakeway.dev/stamp-identity: "true"`` (wakeway.operator.routefilter), through a real Gateway.

Tenants act under their own ServiceAccounts and write their routes by server-side apply under
their own field manager, as a GitOps tool would; the operator's JSON Patch must change the
identity filter only, and take it out again when the annotation or the binding goes. A route
of another tenant's namespace that is claimed without its owner's ReferenceGrant is never
written to.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.harness.cluster import SPARE_IPS, Cluster
from tests.cluster.helpers import eventually
from tests.cluster.standalone import Standalone, running_standalone
from tests.cluster.tenants import BOUND, Tenant, httpso, status_where, tenant, workload
from tests.cluster.test_cli_cluster import cli
from tests.cluster.test_gateway import route, rule, served_through
from tests.cluster.traefik import (
    GATEWAY_GROUP,
    NAME,
    NAMESPACE,
    Gateway,
    routes_to_interceptor,
    traefik_binary,
    traefik_gateway,
)
from tests.cluster.wakeway_setup import IDENTITY, apply, documents
from wakeway.kube import Conflict, Kube, NotFound
from wakeway.kube.patch import field_managers
from wakeway.kube.resources import HTTPROUTES, HTTPSCALEDOBJECTS, NAMESPACES, REFERENCEGRANTS
from wakeway.operator.routefilter import ANNOTATION, FIELD_MANAGER, identity_filter

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]

PROXY, GATEWAY_PORT = 18981, 18982
ADMIN, SCALER, PING = 19981, 19982, 19983
INTERCEPTOR_IP = SPARE_IPS[1]
USER = "tenant-gitops"  # the field manager the tenant's own applies carry
UNSTAMPED = ("False", "IdentityNotStamped")


@pytest.fixture(scope="module")
def stack(cluster: Cluster) -> Iterator[Standalone]:
    traefik_binary()
    with running_standalone(
        cluster, "rw", PROXY, ADMIN, SCALER, proxy_host=INTERCEPTOR_IP
    ) as started:
        yield started


@pytest.fixture(scope="module")
def gateway(cluster: Cluster, stack: Standalone) -> Iterator[Gateway]:
    with traefik_gateway(cluster, GATEWAY_PORT, PING, (INTERCEPTOR_IP, PROXY)) as gw:
        yield gw


def annotated(name: str, hostname: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    doc = route(name, hostname, rules)
    doc["metadata"]["annotations"] = {ANNOTATION: "true"}
    return doc


async def server_side_apply(t: Tenant, doc: dict[str, Any], *, force: bool = False) -> None:
    name = doc["metadata"]["name"]
    query = {"fieldManager": USER} | ({"force": "true"} if force else {})
    await t.kube.request(
        "PATCH",
        HTTPROUTES.path(t.ns, name),
        query=query,
        body=doc,
        content_type="application/apply-patch+yaml",
    )


async def rules_of(kube: Kube, ns: str, name: str) -> list[dict[str, Any]]:
    return list((await kube.get(HTTPROUTES, ns, name))["spec"]["rules"])


async def rules_become(
    kube: Kube, ns: str, name: str, want: list[dict[str, Any]], what: str
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        doc = await kube.get(HTTPROUTES, ns, name)
        return doc if doc["spec"]["rules"] == want else None

    return await eventually(check, f"{ns}/{name}: {what}", within=30)


def stamped(rules: list[dict[str, Any]], identity: str, *indices: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(json.dumps(rules))
    for i in indices:
        out[i]["filters"] = [identity_filter(identity)]
    return out


def managed(doc: dict[str, Any]) -> dict[str, Any]:
    """Each manager's fields, by manager (the object itself, not its status)."""
    return {
        e["manager"]: e["fieldsV1"]
        for e in doc["metadata"]["managedFields"]
        if not e.get("subresource")
    }


async def test_an_annotated_route_is_stamped_and_routed_with_nothing_to_copy(
    cluster: Cluster, stack: Standalone, gateway: Gateway, kube: Kube
) -> None:
    async with tenant(cluster, kube, "rw-shop") as t:
        await apply(kube, [routes_to_interceptor(t.ns)])
        await workload(t, "shop", replicas=1)
        host = f"shop.{t.ns}.test"
        api = rule("/api") | {"name": "api", "timeouts": {"request": "10s"}}
        web = rule("/") | {"name": "web"}
        await server_side_apply(t, annotated("shop", host, [api, web]))
        await t.kube.create(
            HTTPSCALEDOBJECTS, t.ns, httpso("shop", routes=[{"name": "shop", "ruleName": "web"}])
        )
        identity = IDENTITY.stamp(f"{t.ns}/shop")
        user_rules = await rules_of(kube, t.ns, "shop")  # as stored, defaults filled in

        # The operator writes the filter into the bound rule only; the binding then holds and
        # a request through the Gateway is routed: nothing copied.
        doc = await rules_become(
            kube, t.ns, "shop", stamped(user_rules, identity, 1), "the filter written"
        )
        await status_where(t.kube, t.ns, "shop", "Bound", BOUND)
        answer = await served_through(gateway, host, "shop-")
        assert answer.status == 200

        # It changed no other field: the tenant's manager keeps everything outside spec.rules;
        # the operator's manager holds spec.rules alone (an atomic list: one field to the API
        # server, so whoever last changed any part of it holds it; docs/security.md).
        fields = managed(doc)
        assert fields[FIELD_MANAGER] == {"f:spec": {"f:rules": {}}}, fields
        mine = fields[USER]
        assert mine["f:metadata"]["f:annotations"] == {f"f:{ANNOTATION}": {}}, mine
        assert {"f:hostnames", "f:parentRefs"} <= mine["f:spec"].keys(), mine
        assert field_managers(doc, "spec", "hostnames") == {USER}
        assert "f:rules" not in mine["f:spec"], mine

        # So the tenant's next apply of its manifest conflicts on spec.rules; forced, its rules
        # win (the filter goes with them) and the operator writes the filter again.
        manifest = annotated("shop", host, [api, web])
        with pytest.raises(Conflict, match=FIELD_MANAGER):
            await server_side_apply(t, manifest)
        await server_side_apply(t, manifest, force=True)
        doc = await rules_become(
            kube, t.ns, "shop", stamped(user_rules, identity, 1), "the filter written again"
        )
        assert field_managers(doc, "spec", "rules") == {FIELD_MANAGER}

        # The annotation removed: the operator takes its filter out, and the rules are the
        # tenant's again, value for value.
        await t.kube.merge_patch(
            HTTPROUTES, t.ns, "shop", {"metadata": {"annotations": {ANNOTATION: None}}}
        )
        await rules_become(kube, t.ns, "shop", user_rules, "the filter removed")
        await status_where(t.kube, t.ns, "shop", "Bound", UNSTAMPED)

        # Annotated again, then the binding goes with its HTTPScaledObject: removed again.
        await t.kube.merge_patch(
            HTTPROUTES, t.ns, "shop", {"metadata": {"annotations": {ANNOTATION: "true"}}}
        )
        await rules_become(kube, t.ns, "shop", stamped(user_rules, identity, 1), "re-written")
        await t.kube.delete(HTTPSCALEDOBJECTS, t.ns, "shop")
        await rules_become(kube, t.ns, "shop", user_rules, "removed with the binding")


async def test_a_route_claimed_without_its_owners_grant_is_never_written(
    cluster: Cluster, stack: Standalone, kube: Kube
) -> None:
    async with (
        tenant(cluster, kube, "rw-owner") as owner,
        tenant(cluster, kube, "rw-claim") as claimant,
    ):
        for t in (owner, claimant):
            await apply(kube, [routes_to_interceptor(t.ns)])
        await workload(claimant, "app", replicas=0)
        await server_side_apply(owner, annotated("prize", "prize.test", [rule("/")]))
        before = await kube.get(HTTPROUTES, owner.ns, "prize")
        claim = httpso("app", routes=[{"name": "prize", "namespace": owner.ns}])
        await claimant.kube.create(HTTPSCALEDOBJECTS, claimant.ns, claim)
        await status_where(claimant.kube, claimant.ns, "app", "Bound", ("False", "RefNotPermitted"))
        # Nothing to paste for it either: the CLI says why.
        refused = await cli(cluster, "route-filter", "app", "-n", claimant.ns)
        assert refused.returncode == 1, refused
        assert f"HTTPRoute {owner.ns}/prize: no identity published" in refused.stderr, refused

        # A later route the claimant may bind (its own) is written: the operator has looked
        # at the refused one since, and left it alone.
        await server_side_apply(claimant, annotated("own", "own.test", [rule("/")]))
        claim["spec"]["routes"].append({"name": "own"})
        routes = {"spec": {"routes": claim["spec"]["routes"]}}
        await claimant.kube.merge_patch(HTTPSCALEDOBJECTS, claimant.ns, "app", routes)
        own_rules = await rules_of(kube, claimant.ns, "own")
        own_id = IDENTITY.stamp(f"{claimant.ns}/own")
        await rules_become(kube, claimant.ns, "own", stamped(own_rules, own_id, 0), "stamped")
        after = await kube.get(HTTPROUTES, owner.ns, "prize")
        # Untouched by the operator. (Its resourceVersion may still move: the Gateway writes
        # the route's status.parents.)
        assert after["spec"] == before["spec"]
        assert after["metadata"].get("annotations") == before["metadata"].get("annotations")
        writers = {e["manager"] for e in after["metadata"]["managedFields"]}
        assert FIELD_MANAGER not in writers, writers

        # The owner grants it: now bound, so written; the grant withdrawn: taken out again.
        grant = {
            "apiVersion": f"{GATEWAY_GROUP}/v1beta1",
            "kind": "ReferenceGrant",
            "metadata": {"name": "claimant-may-bind", "namespace": owner.ns},
            "spec": {
                "from": [
                    {"group": "http.keda.sh", "kind": "HTTPScaledObject", "namespace": claimant.ns}
                ],
                "to": [{"group": GATEWAY_GROUP, "kind": "HTTPRoute", "name": "prize"}],
            },
        }
        await owner.kube.create(REFERENCEGRANTS, owner.ns, grant)
        prize_id = IDENTITY.stamp(f"{owner.ns}/prize")
        rules = before["spec"]["rules"]
        await rules_become(kube, owner.ns, "prize", stamped(rules, prize_id, 0), "granted")
        # What the operator wrote is what `wakeway route-filter` gives GitOps users to paste.
        printed = await cli(
            cluster, "route-filter", "app", "-n", claimant.ns, "--route", f"{owner.ns}/prize"
        )
        assert printed.returncode == 0, printed
        assert yaml.safe_load(printed.stdout) == [identity_filter(prize_id)], printed.stdout
        await owner.kube.delete(REFERENCEGRANTS, owner.ns, "claimant-may-bind")
        await rules_become(kube, owner.ns, "prize", rules, "the grant withdrawn")


async def test_the_kubernetes_example_is_routed_by_applying_it(
    cluster: Cluster, stack: Standalone, gateway: Gateway, kube: Kube
) -> None:
    """examples/kubernetes as it is, but for its Gateway (this one is Traefik's): applied,
    and nothing else done, a request for its host is answered by its workload."""
    folder = REPO / "examples" / "kubernetes"
    listed = yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]
    docs = [d for d in documents(*(folder / f for f in listed)) if d["kind"] != "Gateway"]
    (hello,) = [d for d in docs if d["kind"] == "HTTPRoute"]
    hello["spec"]["parentRefs"] = [{"name": NAME, "namespace": NAMESPACE}]
    ns = hello["metadata"]["namespace"]
    try:
        await apply(kube, docs)
        identity = IDENTITY.stamp(f"{ns}/hello")
        rules = hello["spec"]["rules"]
        stored = await rules_of(kube, ns, "hello")
        await rules_become(kube, ns, "hello", stamped(stored, identity, 0), "stamped")
        assert [r["name"] for r in stored] == [r["name"] for r in rules]
        answer = await served_through(gateway, "hello.example.com", "hello-")
        assert answer.status == 200
    finally:
        await kube.delete(NAMESPACES, None, ns)

        async def gone() -> bool:
            try:
                await kube.get(NAMESPACES, None, ns)
            except NotFound:
                return True
            return False

        await eventually(gone, f"namespace {ns} to be deleted", within=60)
