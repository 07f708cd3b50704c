"""The parts of Services, EndpointSlices and ReferenceGrants that routing and forwarding use."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wakeway.model import fields as f
from wakeway.model.meta import ObjectMeta, parse_meta

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


# Service port appProtocol values that mean HTTP/2 without TLS (h2c, gRPC): the interceptor
# forwards over HTTP/2 to such a port (case-insensitive; Kubernetes' standard name first).
H2C_APP_PROTOCOLS = frozenset({"kubernetes.io/h2c", "h2c", "grpc", "http2"})


@dataclass(frozen=True, slots=True)
class ServicePort:
    name: str
    port: int
    app_protocol: str | None = None  # spec.ports[].appProtocol

    @property
    def h2c(self) -> bool:
        """Whether backends behind this port are spoken to over HTTP/2 without TLS."""
        return (self.app_protocol or "").lower() in H2C_APP_PROTOCOLS


@dataclass(frozen=True, slots=True)
class Service:
    meta: ObjectMeta
    type: str  # ClusterIP, NodePort, LoadBalancer, ExternalName
    ports: tuple[ServicePort, ...]

    @property
    def key(self) -> str:
        return self.meta.key

    @property
    def name(self) -> str:
        return self.meta.name


@dataclass(frozen=True, slots=True)
class SlicePort:
    name: str
    port: int


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    meta: ObjectMeta
    service: str  # the owning Service's name (kubernetes.io/service-name)
    ports: tuple[SlicePort, ...]
    ready_addresses: tuple[str, ...]  # addresses of endpoints whose ready condition holds
    # Addresses of endpoints still serving: the ready ones, and terminating ones that still
    # answer (``serving``; absent: as ``ready``). A draining interceptor is one of these.
    serving_addresses: tuple[str, ...] = ()
    # Addresses of endpoints not ready yet and not terminating: pods still starting.
    starting_addresses: tuple[str, ...] = ()

    @property
    def service_key(self) -> str:
        return f"{self.meta.namespace}/{self.service}"


@dataclass(frozen=True, slots=True)
class GrantFrom:
    group: str
    kind: str
    namespace: str


@dataclass(frozen=True, slots=True)
class GrantTo:
    group: str
    kind: str
    name: str | None


@dataclass(frozen=True, slots=True)
class ReferenceGrant:
    meta: ObjectMeta
    sources: tuple[GrantFrom, ...]
    targets: tuple[GrantTo, ...]

    @property
    def key(self) -> str:
        return self.meta.key

    def allows(
        self, group: str, kind: str, namespace: str, to_group: str, to_kind: str, name: str
    ) -> bool:
        """Whether an object of (group, kind) in ``namespace`` may refer to (to_group, to_kind,
        name) in this grant's namespace."""
        return any(
            s.group == group and s.kind == kind and s.namespace == namespace for s in self.sources
        ) and any(
            t.group == to_group and t.kind == to_kind and t.name in (None, name)
            for t in self.targets
        )


def parse_service(doc: Mapping[str, Any]) -> Service:
    meta = parse_meta(doc, "default")
    spec = f.opt_mapping(doc, "spec", "") or {}
    ports = []
    for i, raw in enumerate(f.opt_list(spec, "ports", "spec")):
        item = f.mapping(raw, f"spec.ports[{i}]")
        port = f.opt_int(item, "port", f"spec.ports[{i}]", minimum=1, maximum=65535)
        if port is not None:
            where = f"spec.ports[{i}]"
            ports.append(
                ServicePort(
                    f.opt_str(item, "name", where, ""),
                    port,
                    f.opt_str(item, "appProtocol", where, "") or None,
                )
            )
    return Service(meta, f.opt_str(spec, "type", "spec", "ClusterIP"), tuple(ports))


def parse_endpoint_slice(doc: Mapping[str, Any]) -> EndpointSlice:
    meta = parse_meta(doc, "default")
    ports = []
    for i, raw in enumerate(f.opt_list(doc, "ports", "")):
        item = f.mapping(raw, f"ports[{i}]")
        port = f.opt_int(item, "port", f"ports[{i}]")
        if port is not None:
            ports.append(SlicePort(f.opt_str(item, "name", f"ports[{i}]", ""), port))
    ready: list[str] = []
    serving: list[str] = []
    starting: list[str] = []
    for i, raw in enumerate(f.opt_list(doc, "endpoints", "")):
        item = f.mapping(raw, f"endpoints[{i}]")
        conditions = f.opt_mapping(item, "conditions", f"endpoints[{i}]") or {}
        addresses = [
            f.as_str(a, f"endpoints[{i}].addresses") for a in f.opt_list(item, "addresses", "")
        ]
        # Absent "ready" means ready (the API's documented default for consumers); absent
        # "serving" means the same as "ready".
        is_ready = conditions.get("ready") is not False
        if is_ready:
            ready.extend(addresses)
        if conditions.get("serving", is_ready) is not False:
            serving.extend(addresses)
        if not is_ready and conditions.get("terminating") is not True:
            starting.extend(addresses)
    return EndpointSlice(
        meta,
        meta.labels.get(SERVICE_NAME_LABEL, ""),
        tuple(ports),
        tuple(dict.fromkeys(ready)),
        tuple(dict.fromkeys(serving)),
        tuple(dict.fromkeys(starting)),
    )


def parse_reference_grant(doc: Mapping[str, Any], *, strict: bool = False) -> ReferenceGrant:
    """A ReferenceGrant; one :class:`ModelError` lists every problem. ``strict`` (files): an
    unknown field is one of them. Objects read from the API server are not held to it: the
    Gateway API's CRD is the cluster's, and a newer version may have fields we do not know."""
    known = ("apiVersion", "kind", "status")
    return f.parse_document(doc, _reference_grant, known=known, strict=strict)


def _reference_grant(doc: Mapping[str, Any]) -> ReferenceGrant:
    meta = parse_meta(doc, "default")
    spec = f.req_mapping(doc, "spec", "")
    sources = tuple(f.each(spec, "from", "spec", _grant_from))
    targets = tuple(f.each(spec, "to", "spec", _grant_to))
    return ReferenceGrant(meta, sources, targets)


def _grant_from(raw: Any, p: str) -> GrantFrom:
    m = f.mapping(raw, p)
    return GrantFrom(
        f.opt_str(m, "group", p, ""), f.req_str(m, "kind", p), f.req_str(m, "namespace", p)
    )


def _grant_to(raw: Any, p: str) -> GrantTo:
    m = f.mapping(raw, p)
    return GrantTo(f.opt_str(m, "group", p, ""), f.req_str(m, "kind", p), f.opt_str(m, "name", p))
