"""config/ and examples/kubernetes/ on a real API server: `kustomize build` of the base and of
each overlay is applied (server-side apply) and every object accepted, the Deployments' pods are
admitted under the `restricted` Pod Security level, and each component's ServiceAccount can do
what its role grants and is denied what it must not do. Every kustomization under config/
renders alike with kustomize and with kubectl's built-in kustomize, and every rendering (those
two, and the chart's for each mode) passes a server-side dry run.

kustomize, kubectl and helm are built from the Go module proxy at pinned versions by
scripts/cluster-binaries (cached beside the control plane binaries). Everything applied is
removed afterwards, except the CRD, which other cluster tests share."""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.harness.binaries import Binaries
from tests.cluster.harness.cluster import Cluster
from tests.cluster.helpers import deployment, eventually, service
from tests.cluster.render import (
    CONFIG_FOLDERS,
    MODE_FOLDERS,
    documents,
    dry_run,
    helm_template,
    kubectl_kustomize,
    kustomize_build,
)
from tests.cluster.test_crd import install_crd
from wakeway.model.httproute import parse_httproute
from wakeway.model.httpso import parse_httpscaledobject
from wakeway.operator.routefilter import opted_in

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
KUSTOMIZE_SCRIPT = REPO / "scripts" / "cluster-kustomize"
NAMESPACE = "wakeway"
FIELD_MANAGER = "wakeway-tests"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
COMPONENTS = ("interceptor", "scaler", "operator")
_HPA_MIN = {"spec": {"replicas": 2}}
ALLOWED = 0  # an expected status meaning "authorized": 200, or 404 for an absent object


@functools.cache
def kustomize() -> str:
    done = subprocess.run(
        ["bash", str(KUSTOMIZE_SCRIPT)],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
        timeout=1800,
    )
    found = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return found["kustomize"]


def build(folder: str) -> list[Any]:
    out = subprocess.run(
        [kustomize(), "build", str(REPO / folder)],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


class Rest:
    """Raw REST calls for any kind (found through discovery); answers are (status, JSON)."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self._kinds: dict[str, dict[str, tuple[str, bool]]] = {}

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        response = await self.api.call_api(
            path,
            method,
            query_params=list((query or {}).items()),
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
        )
        raw = await response.read()
        return response.status, json.loads(raw) if raw else None

    async def path(self, api_version: str, kind: str, namespace: str | None, name: str) -> str:
        base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        if api_version not in self._kinds:
            status, found = await self.call("GET", base)
            assert status == 200, f"discovery of {api_version}: {status} {found}"
            self._kinds[api_version] = {
                r["kind"]: (r["name"], r["namespaced"])
                for r in found["resources"]
                if "/" not in r["name"]
            }
        plural, namespaced = self._kinds[api_version][kind]
        where = f"/namespaces/{namespace}" if namespaced else ""
        return f"{base}{where}/{plural}/{name}"

    async def doc_path(self, doc: Any) -> str:
        meta = doc["metadata"]
        return await self.path(doc["apiVersion"], doc["kind"], meta.get("namespace"), meta["name"])

    async def apply(self, doc: Any) -> Any:
        path = await self.doc_path(doc)
        query = {"fieldManager": FIELD_MANAGER, "force": "true"}
        status, answer = await self.call("PATCH", path, doc, APPLY, query)
        assert status in (200, 201), f"{doc['kind']}/{doc['metadata']['name']}: {answer}"
        return answer

    async def delete(self, doc: Any) -> None:
        status, answer = await self.call("DELETE", await self.doc_path(doc))
        assert status in (200, 202, 404), f"{doc['kind']}/{doc['metadata']['name']}: {answer}"

    async def gone(self, doc: Any) -> bool:
        status, _ = await self.call("GET", await self.doc_path(doc))
        return status == 404


async def _wait_namespace_gone(rest: Rest, name: str) -> None:
    async def gone() -> bool:
        return await rest.gone(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        )

    await eventually(gone, f"namespace {name} to be deleted", within=90)


async def _remove(rest: Rest, docs: list[Any]) -> None:
    """Deletes what was applied, except CRDs; namespaces last, and waits until they are gone."""
    kept = ("CustomResourceDefinition", "Namespace")
    for doc in reversed(docs):
        if doc["kind"] not in kept:
            await rest.delete(doc)
    for doc in docs:
        if doc["kind"] == "Namespace":
            await rest.delete(doc)
            await _wait_namespace_gone(rest, doc["metadata"]["name"])


@contextlib.asynccontextmanager
async def installed(cluster: Cluster, folder: str) -> AsyncIterator[tuple[Rest, list[Any]]]:
    """`kustomize build folder` applied, with the route identity Secret; removed afterwards."""
    docs = build(folder)
    async with cluster.api() as api:
        rest = Rest(api)
        # A namespace left terminating by an earlier test would refuse new objects.
        await _wait_namespace_gone_or_live(rest, NAMESPACE)
        try:
            for doc in docs:
                await rest.apply(doc)
                if doc["kind"] == "CustomResourceDefinition":
                    await install_crd(api)  # waits until it is established
            await rest.apply(_identity_secret())
            yield rest, docs
        finally:
            await _remove(rest, docs)


async def _wait_namespace_gone_or_live(rest: Rest, name: str) -> None:
    status, ns = await rest.call("GET", f"/api/v1/namespaces/{name}")
    if status == 200 and ns["metadata"].get("deletionTimestamp"):
        await _wait_namespace_gone(rest, name)


def _identity_secret() -> Any:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "wakeway-route-identity", "namespace": NAMESPACE},
        "data": {"key": base64.b64encode(uuid.uuid4().hex.encode()).decode()},
    }


def _by_kind(docs: list[Any], kind: str) -> dict[str, Any]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


async def _sar(rest: Rest, user: str, verb: str, group: str, resource: str, **more: str) -> bool:
    """Would the API server allow `user` this request? (SubjectAccessReview, asked as admin)."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}"],
            "resourceAttributes": {"verb": verb, "group": group, "resource": resource, **more},
        },
    }
    status, answer = await rest.call(
        "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review
    )
    assert status == 201, answer
    return bool(answer["status"].get("allowed"))


def _sa(component: str) -> str:
    return f"system:serviceaccount:{NAMESPACE}:wakeway-{component}"


@pytest.mark.parametrize(
    "folder", ["config/base", "config/overlays/keda", "config/overlays/standalone"]
)
async def test_kustomize_build_is_accepted_and_runs_under_restricted_pod_security(
    cluster: Cluster, folder: str
) -> None:
    async with installed(cluster, folder) as (rest, docs):
        kinds = {d["kind"] for d in docs}
        assert {
            "Namespace",
            "CustomResourceDefinition",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
            "Service",
            "HorizontalPodAutoscaler",
        } <= kinds
        for doc in docs:  # every object is there as built (server-side apply answered 2xx)
            assert not await rest.gone(doc), f"{doc['kind']}/{doc['metadata']['name']}"

        # The namespace enforces the restricted Pod Security level, so a pod exists only if
        # the Deployment's securityContext passes it; the pod runner then makes it Ready.
        deployments = _by_kind(docs, "Deployment")
        assert set(deployments) == {f"wakeway-{c}" for c in COMPONENTS}

        async def all_ready() -> bool:
            for name, doc in deployments.items():
                status, dep = await rest.call(
                    "GET", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}"
                )
                assert status == 200
                if dep["status"].get("readyReplicas", 0) != _replicas(doc):
                    return False
            return True

        await eventually(all_ready, "every wakeway Deployment to be ready", within=60)

        # The headless admin Service lists every interceptor replica for the scaler: scale to
        # the HPA's minimum (its controller does not run here) and find both in the slices.
        interceptor = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/wakeway-interceptor"
        scaled, answer = await rest.call("PATCH", f"{interceptor}/scale", _HPA_MIN, MERGE)
        assert scaled == 200, answer

        async def admin_endpoints() -> set[str] | None:
            _, found = await rest.call(
                "GET",
                f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices",
                query={"labelSelector": "kubernetes.io/service-name=wakeway-interceptor-admin"},
            )
            ips = {
                a
                for s in found["items"]
                for e in s.get("endpoints") or []
                if e["conditions"].get("ready")
                for a in e["addresses"]
            }
            return ips if len(ips) == _HPA_MIN["spec"]["replicas"] else None

        await eventually(admin_endpoints, "an admin endpoint per interceptor replica")

        mode = _operator_env(deployments["wakeway-operator"])["WAKEWAY_OPERATOR_MODE"]
        expected_mode = {"config/base": "auto"}.get(folder, folder.rsplit("/", 1)[-1])
        assert mode == expected_mode
        may_create_scaledobjects = await _sar(
            rest, _sa("operator"), "create", "keda.sh", "scaledobjects", namespace="default"
        )
        assert may_create_scaledobjects == (mode != "standalone")


def _keyed(docs: list[Any]) -> dict[tuple[str, str], Any]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


@pytest.mark.parametrize("folder", CONFIG_FOLDERS)
def test_kubectl_builtin_kustomize_renders_each_kustomization_as_kustomize_does(
    binaries: Binaries, folder: str
) -> None:
    # `kubectl apply -k` is how docs/install.md installs: kubectl's own (older) kustomize must
    # render every kustomization, and render it the same.
    assert _keyed(documents(kubectl_kustomize(binaries, folder))) == _keyed(
        documents(kustomize_build(binaries, folder))
    )


async def test_every_rendering_passes_a_server_side_dry_run(
    cluster: Cluster, binaries: Binaries
) -> None:
    renderings = {f"kustomize build {f}": kustomize_build(binaries, f) for f in CONFIG_FOLDERS}
    renderings |= {f"kubectl kustomize {f}": kubectl_kustomize(binaries, f) for f in CONFIG_FOLDERS}
    renderings |= {
        f"helm template mode={m}": helm_template(binaries, f"mode={m}") for m in MODE_FOLDERS
    }
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    async with cluster.api() as api:
        rest = Rest(api)
        await _wait_namespace_gone_or_live(rest, NAMESPACE)
        await install_crd(api)
        await rest.apply(namespace)  # a dry run of a Namespace does not create it
        try:
            for what, text in renderings.items():
                answer = dry_run(binaries, cluster.kubeconfig, text)
                checked = answer.count("(server dry run)")
                assert checked == len(documents(text)), f"{what}: {answer}"
        finally:
            await _remove(rest, [namespace])


def _replicas(deployment: Any) -> int:
    """The Deployment's replicas as applied: 1 when absent (the interceptor's HPA, which owns
    its count, does not run in the harness)."""
    return int(deployment["spec"].get("replicas", 1))


def _operator_env(doc: Any) -> dict[str, str]:
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


async def test_each_component_can_do_what_its_role_grants_and_no_more(cluster: Cluster) -> None:
    app = f"rbac-{uuid.uuid4().hex[:8]}"
    async with installed(cluster, "config/base") as (admin, _):
        await admin.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": app}})
        try:
            await _check_component_rights(cluster, admin, app)
        finally:
            await admin.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": app}})
            await _wait_namespace_gone(admin, app)


async def _check_component_rights(cluster: Cluster, admin: Rest, app: str) -> None:
    web = deployment("web", replicas=0, port=8080)
    web["metadata"]["namespace"] = app
    svc = service("web", port=8080)
    svc["metadata"]["namespace"] = app
    db = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": app},
        "spec": {
            "replicas": 0,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": web["spec"]["template"] | {"metadata": {"labels": {"app": "db"}}},
        },
    }
    so = {
        "apiVersion": "http.keda.sh/v1alpha1",
        "kind": "HTTPScaledObject",
        "metadata": {"name": "web", "namespace": app},
        "spec": {"scaleTargetRef": {"name": "web", "service": "web", "port": 8080}},
    }
    for doc in (web, svc, db, so):
        await admin.apply(doc)

    apps_ns = f"/apis/apps/v1/namespaces/{app}"
    httpso_all = "/apis/http.keda.sh/v1alpha1/httpscaledobjects"
    httpso_web = f"/apis/http.keda.sh/v1alpha1/namespaces/{app}/httpscaledobjects/web"
    ir_all = "/apis/http.keda.sh/v1beta1/interceptorroutes"
    ir_web = f"/apis/http.keda.sh/v1beta1/namespaces/{app}/interceptorroutes/web"
    gateway = "/apis/gateway.networking.k8s.io"
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": "web-", "namespace": app},
        "involvedObject": {"kind": "HTTPScaledObject", "name": "web", "namespace": app},
        "reason": "Scaled",
        "message": "scaled web from 0 to 1",
        "type": "Normal",
    }
    scale_to = {"spec": {"replicas": 1}}

    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    slices = "/apis/discovery.k8s.io/v1"
    create_httpso = f"/apis/http.keda.sh/v1alpha1/namespaces/{app}/httpscaledobjects"
    status_patch = {"status": {"targetWorkload": "apps/v1/Deployment/web"}}
    expected: dict[str, list[tuple[int, str, str, Any]]] = {
        "interceptor": [
            (200, "GET", httpso_all, None),
            (200, "GET", ir_all, None),
            (200, "GET", f"{gateway}/v1/httproutes", None),
            (200, "GET", f"{gateway}/v1beta1/referencegrants", None),
            (200, "GET", "/api/v1/services", None),
            (200, "GET", f"{slices}/endpointslices", None),
            (403, "PATCH", f"{ir_web}/status", status_patch),
            (403, "PATCH", f"{apps_ns}/deployments/web/scale", scale_to),
            (403, "POST", create_httpso, so),
            (403, "PATCH", f"{httpso_web}/status", status_patch),
            (403, "GET", f"/api/v1/namespaces/{app}/secrets", None),
        ],
        "scaler": [
            (200, "GET", f"{slices}/namespaces/{NAMESPACE}/endpointslices", None),
            (
                200,
                "GET",
                f"/api/v1/namespaces/{NAMESPACE}/services/wakeway-interceptor-admin",
                None,
            ),
            (403, "GET", httpso_all, None),
            # A trigger naming an InterceptorRoute names only the route: its metrics are read.
            (200, "GET", ir_all, None),
            (403, "PATCH", ir_web, {"spec": {"rules": []}}),
            (403, "GET", f"{slices}/namespaces/{app}/endpointslices", None),
            (403, "GET", f"{slices}/endpointslices", None),
        ],
        "operator": [
            (200, "GET", httpso_all, None),
            (200, "PATCH", f"{httpso_web}/status", status_patch),
            (200, "GET", ir_all, None),
            (404, "PATCH", f"{ir_web}/status", status_patch),  # allowed; there is none
            (403, "PATCH", ir_web, {"spec": {"rules": []}}),
            (200, "PATCH", f"{apps_ns}/deployments/web/scale", scale_to),
            (200, "GET", f"{apps_ns}/statefulsets/db/scale", None),
            (201, "POST", f"/api/v1/namespaces/{app}/events", event),
            (200, "GET", f"{gateway}/v1/httproutes", None),
            (200, "GET", f"{gateway}/v1beta1/referencegrants", None),
            (200, "GET", "/api/v1/services", None),
            # May look for KEDA's CRD (200 or 404: other tests may install KEDA), at no other.
            (ALLOWED, "GET", f"{crds}/scaledobjects.keda.sh", None),
            (403, "GET", f"{crds}/httpscaledobjects.http.keda.sh", None),
            # Scales through /scale only; the workload itself, an HTTPScaledObject's spec,
            # secrets and everything else are out of reach.
            (403, "PATCH", f"{apps_ns}/deployments/web", scale_to),
            (403, "PATCH", httpso_web, {"spec": {"hosts": ["x"]}}),
            (403, "GET", f"/api/v1/namespaces/{app}/secrets", None),
            (403, "GET", f"{apps_ns}/replicasets", None),
        ],
    }
    for component, cases in expected.items():
        async with _as(cluster, component) as rest:
            for want, method, path, body in cases:
                content_type = MERGE if method == "PATCH" else "application/json"
                got, answer = await rest.call(method, path, body, content_type)
                ok = got in (200, 404) if want == ALLOWED else got == want
                assert ok, f"{component}: {method} {path}: {got}, not {want}: {answer}"
    # The operator's KEDA rights (KEDA's CRDs are not installed here: ask the authorizer).
    for verb in ("create", "update", "delete", "watch"):
        assert await _sar(admin, _sa("operator"), verb, "keda.sh", "scaledobjects", namespace=app)
    assert not await _sar(admin, _sa("interceptor"), "create", "keda.sh", "scaledobjects")
    # HTTPRoutes: the operator may patch them (the identity filter of opted-in routes), no more.
    gw = "gateway.networking.k8s.io"
    assert await _sar(admin, _sa("operator"), "patch", gw, "httproutes", namespace=app)
    for verb in ("create", "update", "delete"):
        assert not await _sar(admin, _sa("operator"), verb, gw, "httproutes", namespace=app)
    assert not await _sar(admin, _sa("operator"), "patch", gw, "referencegrants", namespace=app)
    assert not await _sar(admin, _sa("interceptor"), "patch", gw, "httproutes", namespace=app)

    # Another scalable kind is added the documented way: a ClusterRole with the aggregation label.
    extra = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": f"wakeway-test-scale-replicasets-{app}",
            "labels": {"wakeway.dev/aggregate-to-operator-scale": "true"},
        },
        "rules": [
            {
                "apiGroups": ["apps"],
                "resources": ["replicasets/scale"],
                "verbs": ["get", "update", "patch"],
            }
        ],
    }
    assert not await _sar(
        admin, _sa("operator"), "patch", "apps", "replicasets", subresource="scale", namespace=app
    )
    await admin.apply(extra)
    try:

        async def aggregated() -> bool:
            return await _sar(
                admin,
                _sa("operator"),
                "patch",
                "apps",
                "replicasets",
                subresource="scale",
                namespace=app,
            )

        await eventually(aggregated, "the aggregated scale role to include replicasets/scale")
    finally:
        await admin.delete(extra)


@contextlib.asynccontextmanager
async def _as(cluster: Cluster, component: str) -> AsyncIterator[Rest]:
    kubeconfig = await cluster.service_account_kubeconfig(NAMESPACE, f"wakeway-{component}")
    async with cluster.api(kubeconfig) as api:
        yield Rest(api)


async def test_kubernetes_example_is_accepted(cluster: Cluster) -> None:
    docs = build("examples/kubernetes")
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        [
            "Namespace",
            "Deployment",
            "Service",
            "Gateway",
            "HTTPRoute",
            "ReferenceGrant",
            "HTTPScaledObject",
        ]
    )
    async with installed(cluster, "config/base") as (rest, _):
        try:
            stored = {d["kind"]: await rest.apply(d) for d in docs}
        finally:
            await _remove(rest, docs)
    assert stored["Deployment"]["spec"]["replicas"] == 0

    so = parse_httpscaledobject(stored["HTTPScaledObject"])
    route = parse_httproute(stored["HTTPRoute"])
    (binding,) = so.routes
    assert binding.route_key == route.key
    (rule,) = [r for r in route.rules if r.name == binding.rule_name]
    (backend,) = rule.backend_refs
    assert (backend.namespace, backend.name, backend.port) == (
        NAMESPACE,
        "wakeway-interceptor",
        8080,
    )
    # The route asks the operator to stamp its identity (nothing to copy; the operator doing
    # it, and the example routed through a Gateway: tests/cluster/test_route_wiring.py).
    assert opted_in(route)
    assert not rule.filters

    grant = stored["ReferenceGrant"]
    assert grant["metadata"]["namespace"] == NAMESPACE
    assert grant["spec"]["from"] == [
        {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": route.namespace}
    ]
    assert grant["spec"]["to"] == [{"group": "", "kind": "Service", "name": "wakeway-interceptor"}]
