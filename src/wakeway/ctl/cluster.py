"""The commands against a cluster, through :mod:`wakeway.kube`: status from each
HTTPScaledObject's status, its workload's /scale and the scaler's live counts, wake and sleep
through /scale, explain from the routing table built of the cluster's objects."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from wakeway.ctl.errors import CommandError, Unreachable, UsageError
from wakeway.gateway.request import Request
from wakeway.kube import Kube, KubeError, NotFound, Scale, Unavailable
from wakeway.kube.resources import (
    HTTPROUTES,
    HTTPSCALEDOBJECTS,
    INTERCEPTORROUTES,
    REFERENCEGRANTS,
    Resource,
    workload_resource,
)
from wakeway.model.errors import ModelError
from wakeway.model.httproute import HTTPRoute, parse_httproute
from wakeway.model.httpso import HTTPScaledObject, parse_httpscaledobject
from wakeway.model.interceptorroute import parse_interceptorroute
from wakeway.model.objectstatus import ObjectStatus, state_of
from wakeway.model.service import ReferenceGrant, parse_reference_grant
from wakeway.model.settings import INTERCEPTOR_SERVICE
from wakeway.routing import InterceptorRef, RouteGrants, merge_targets
from wakeway.routing.explain import Explanation, explain


@dataclass(frozen=True, slots=True)
class Target:
    """Where a command goes: a kubeconfig, its context and the namespace to look in."""

    kubeconfig: str
    context: str | None
    namespace: str | None  # None: all namespaces (-A)


def resolve_target(
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    all_namespaces: bool,
    env: Mapping[str, str],
) -> Target:
    """``--kubeconfig``, else ``$KUBECONFIG`` (its first file), else ``~/.kube/config``; the
    namespace from ``-n``, else the context's, else ``default``."""
    path = kubeconfig or (env.get("KUBECONFIG") or "").split(os.pathsep)[0]
    path = path or str(Path(env.get("HOME", "~")).expanduser() / ".kube" / "config")
    if all_namespaces:
        return Target(path, context, None)
    if namespace:
        return Target(path, context, namespace)
    return Target(path, context, context_namespace(path, context) or "default")


def context_namespace(path: str, context: str | None) -> str | None:
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise UsageError(f"kubeconfig {path}: cannot be read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"kubeconfig {path}: not YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"kubeconfig {path}: not a kubeconfig")
    name = context or doc.get("current-context")
    for item in doc.get("contexts") or []:
        if isinstance(item, dict) and item.get("name") == name:
            ns = (item.get("context") or {}).get("namespace")
            return str(ns) if ns else None
    if context is not None:
        raise UsageError(f"kubeconfig {path}: no context named {context!r}")
    return None


async def connect(target: Target) -> Kube:
    try:
        return await Kube.connect(target.kubeconfig, request_timeout=15.0, context=target.context)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def api_error(exc: KubeError, what: str) -> CommandError:
    if isinstance(exc, Unavailable):
        return Unreachable(f"the API server does not answer ({what}): {exc}")
    return CommandError(f"{what}: {exc}")


# --- status ---


def object_status(obj: Mapping[str, Any], scale: Scale | None, ready: int | None) -> ObjectStatus:
    """One row of ``wakeway status`` from an HTTPScaledObject as the API serves it, its
    workload's /scale (None: the workload does not exist) and its ready replicas (pure)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    conditions = {
        c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, Mapping)
    }
    active = conditions.get("Active") or {}
    since = active.get("lastTransitionTime") or None
    replicas = None if scale is None else scale.replicas
    return ObjectStatus(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        state=state_of(replicas, ready),
        replicas=replicas,
        ready=ready,
        in_flight=None,  # the interceptors' counters, filled in from the scaler
        held=None,
        routes_bound=sum(1 for r in status.get("routes") or [] if r.get("bound")),
        routes=len(spec.get("routes") or []),
        last_wake=since if active.get("status") == "True" else None,
        last_sleep=since if active.get("status") == "False" else None,
        mode=str(status.get("mode") or "unknown"),
        workload=f"{ref.get('kind') or 'Deployment'}/{ref.get('name', '')}",
    )


def workload_of(obj: Mapping[str, Any]) -> tuple[Resource, str, str]:
    meta = obj.get("metadata") or {}
    ref = (obj.get("spec") or {}).get("scaleTargetRef") or {}
    resource = workload_resource(
        str(ref.get("apiVersion") or "apps/v1"), str(ref.get("kind") or "Deployment")
    )
    return resource, str(meta.get("namespace", "")), str(ref.get("name", ""))


async def _ready(kube: Kube, obj: Mapping[str, Any]) -> tuple[Scale | None, int | None]:
    resource, ns, name = workload_of(obj)
    try:
        scale = await kube.get_scale(resource, ns, name)
        workload = await kube.get(resource, ns, name)
    except NotFound:
        return None, None
    return scale, ready_replicas(resource, workload, scale)


def ready_replicas(resource: Resource, workload: Mapping[str, Any], scale: Scale) -> int:
    """``status.readyReplicas``; the API server leaves it out at zero, which for the apps/v1
    kinds (Deployment, StatefulSet, ReplicaSet) means none is ready. Another kind without the
    field: what its /scale reports (pure)."""
    ready = (workload.get("status") or {}).get("readyReplicas")
    if isinstance(ready, int):
        return ready
    return 0 if resource.group == "apps" else scale.ready


async def get_object(kube: Kube, namespace: str | None, name: str) -> dict[str, Any]:
    if namespace is None:
        raise UsageError("name an object in one namespace (-n NAMESPACE), not with -A")
    try:
        return await kube.get(HTTPSCALEDOBJECTS, namespace, name)
    except NotFound:
        raise CommandError(f"HTTPScaledObject {namespace}/{name} not found") from None
    except KubeError as exc:
        raise api_error(exc, f"reading HTTPScaledObject {namespace}/{name}") from None


async def statuses(
    kube: Kube, namespace: str | None, name: str | None, scaler: str, notes: list[str]
) -> list[ObjectStatus]:
    """A row per object; in flight and held from the scaler when the caller may ask it, else
    ``None`` with a note saying why."""
    try:
        if name is not None:
            objects = [await get_object(kube, namespace, name)]
        else:
            objects = (await kube.list(HTTPSCALEDOBJECTS, namespace)).items
        out = []
        for obj in sorted(objects, key=_key):
            out.append(object_status(obj, *await _ready(kube, obj)))
    except KubeError as exc:
        raise api_error(exc, "reading HTTPScaledObjects") from None
    if not out:
        return out
    counts = await live_counts(kube, namespace, scaler, notes)
    return out if counts is None else with_counts(out, counts)


# The scaler's Service and its metrics port (a name or a number), which serves /targets.
SCALER_SERVICE = "wakeway/wakeway-scaler:metrics"


def parse_scaler_service(text: str) -> tuple[str, str, str]:
    """``namespace/name:port``, the port a name or a number; UsageError naming the flag."""
    ref, _, port = text.partition(":")
    ns, _, name = ref.partition("/")
    if not ns or not name or not port or "/" in name:
        raise UsageError(f"--scaler-service {text!r}: expected NAMESPACE/NAME:PORT")
    return ns, name, port


async def live_counts(
    kube: Kube, namespace: str | None, scaler: str, notes: list[str]
) -> dict[str, tuple[int, int]] | None:
    """Requests in flight and held per ``namespace/name``, summed over the interceptor
    replicas, from the scaler's ``/targets`` through the API server's service proxy (which
    needs ``get`` on ``services/proxy`` of the scaler's Service). None, and a note, when it
    cannot be had."""
    ns, service, port = parse_scaler_service(scaler)
    path = f"/api/v1/namespaces/{ns}/services/http:{service}:{port}/proxy/targets"
    try:
        doc = await kube.request(
            "GET", path, query={"namespace": namespace} if namespace else None, request_timeout=5
        )
    except KubeError as exc:
        notes.append(
            f"note: requests in flight and held are not shown: the scaler's /targets through "
            f"Service {ns}/{service} port {port} ({exc}); it takes get on services/proxy there"
        )
        return None
    try:
        return parse_targets(doc)
    except ValueError as exc:
        notes.append(f"note: requests in flight and held are not shown: {exc}")
        return None


def parse_targets(doc: Any) -> dict[str, tuple[int, int]]:
    """The scaler's ``/targets`` answer as ``{key: (in_flight, held)}``; ValueError naming
    what does not fit (pure)."""
    targets = doc.get("targets") if isinstance(doc, dict) else None
    if not isinstance(targets, dict):
        raise ValueError("the scaler's /targets answer has no 'targets' object")
    out: dict[str, tuple[int, int]] = {}
    for key, counts in targets.items():
        in_flight = counts.get("inFlight") if isinstance(counts, dict) else None
        held = counts.get("held") if isinstance(counts, dict) else None
        if not isinstance(in_flight, int) or not isinstance(held, int):
            raise ValueError(f"the scaler's /targets answer: {key!r} is not {{inFlight, held}}")
        out[str(key)] = (in_flight, held)
    return out


def with_counts(
    rows: Sequence[ObjectStatus], counts: Mapping[str, tuple[int, int]]
) -> list[ObjectStatus]:
    """The rows with in flight and held filled in; a target the scaler does not list has
    none (pure)."""
    out = []
    for row in rows:
        in_flight, held = counts.get(row.key, (0, 0))
        out.append(dataclasses.replace(row, in_flight=in_flight, held=held))
    return out


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


# --- wake and sleep ---


async def scale(kube: Kube, namespace: str | None, name: str, wake: bool) -> list[str]:
    """Scale the object's workload to max(1, replicas.min) or to 0; the lines to print."""
    obj = await get_object(kube, namespace, name)
    resource, ns, workload = workload_of(obj)
    spec = obj.get("spec") or {}
    minimum = int((spec.get("replicas") or {}).get("min") or 0)
    want = max(1, minimum) if wake else 0
    try:
        await kube.set_scale(resource, ns, workload, want)
    except NotFound:
        raise CommandError(
            f"{ns}/{name}: its workload {resource.kind} {ns}/{workload} not found "
            "(or it has no /scale subresource)"
        ) from None
    except KubeError as exc:
        raise api_error(exc, f"scaling {resource.kind} {ns}/{workload}") from None
    lines = [f"{ns}/{name}: scaled {resource.kind} {ns}/{workload} to {want}"]
    lines += what_happens_next(obj, wake)
    return lines


def what_happens_next(obj: Mapping[str, Any], wake: bool) -> list[str]:
    """What the owner of the replicas does after a manual wake or sleep (pure)."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    mode = status.get("mode")
    minimum = int((spec.get("replicas") or {}).get("min") or 0)
    period = spec.get("scaledownPeriod", 300)
    if mode == "keda":
        owner = f"KEDA owns its replicas (ScaledObject {status.get('scaledObject') or '?'}): "
        if wake:
            return [
                "note: " + owner + "it scales them back to what the scaler reports (0 with no "
                "requests) after the ScaledObject's cooldownPeriod"
            ]
        return ["note: " + owner + "the next request wakes it again, as usual"]
    if not wake and minimum > 0:
        return [f"note: replicas.min is {minimum}: the operator scales it back to {minimum}"]
    if wake:
        return [f"it sleeps again after {period}s without requests (scaledownPeriod)"]
    return ["the next request wakes it again"]


# --- explain ---


async def explanation(kube: Kube, req: Request, notes: list[str]) -> Explanation:
    """Explain ``req`` against every HTTPScaledObject, InterceptorRoute, HTTPRoute and
    ReferenceGrant the caller may list; objects that do not parse are left out and noted."""
    targets: list[HTTPScaledObject] = []
    interceptor_routes: list[HTTPScaledObject] = []
    routes: list[HTTPRoute] = []
    grants: list[ReferenceGrant] = []
    try:
        for doc in await _list_all(kube, HTTPSCALEDOBJECTS):
            _parse(doc, parse_httpscaledobject, targets, notes)
        for doc in await _list_all(kube, INTERCEPTORROUTES):
            _parse(doc, parse_interceptorroute, interceptor_routes, notes)
        for doc in await _list_all(kube, HTTPROUTES):
            _parse(doc, parse_httproute, routes, notes)
        for doc in await _list_all(kube, REFERENCEGRANTS):
            _parse(doc, parse_reference_grant, grants, notes)
    except KubeError as exc:
        raise api_error(
            exc, "listing HTTPScaledObjects, InterceptorRoutes, HTTPRoutes and ReferenceGrants"
        ) from None
    interceptor = InterceptorRef(*INTERCEPTOR_SERVICE)
    everything = merge_targets(targets, interceptor_routes)
    return explain(everything, routes, req, interceptor, RouteGrants.of(grants))


async def _list_all(kube: Kube, resource: Resource) -> Sequence[dict[str, Any]]:
    try:
        return (await kube.list(resource)).items
    except NotFound:  # the CRD is not installed
        return []


def _parse(doc: Mapping[str, Any], parser: Any, into: list[Any], notes: list[str]) -> None:
    try:
        into.append(parser(doc))
    except ModelError as exc:
        ns, name = _key(doc)
        notes.append(f"note: {doc.get('kind')} {ns}/{name} left out: {exc}")
