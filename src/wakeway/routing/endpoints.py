"""The ready-endpoint view: which pod addresses and ports serve each backend, from Services and
EndpointSlices. Keys are ``PortRef.key(namespace)``, as the interceptor looks them up.

Forwarding goes straight to pod IPs: a pod is used the moment its slice says it is ready,
without waiting for kube-proxy. ExternalName Services are never followed: they would let an
object send traffic to any DNS name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from wakeway.model.httpso import HTTPScaledObject, PortRef
from wakeway.model.service import EndpointSlice, Service, ServicePort
from wakeway.model.settings import Address


@dataclass(frozen=True, slots=True)
class BackendProblem:
    """Why a backend can have no endpoints (for status); ``reason`` is a CamelCase word."""

    key: str
    reason: str
    message: str


def backends_of(targets: Iterable[HTTPScaledObject]) -> list[tuple[str, PortRef]]:
    """Every (namespace, backend) the targets forward to: their Service and failover."""
    out: list[tuple[str, PortRef]] = []
    for t in targets:
        out.append((t.namespace, t.backend))
        if t.failover is not None:
            out.append((t.namespace, t.failover.backend))
    return out


def index_slices(slices: Iterable[EndpointSlice]) -> dict[str, list[EndpointSlice]]:
    by_service: dict[str, list[EndpointSlice]] = {}
    for s in slices:
        if s.service:
            by_service.setdefault(s.service_key, []).append(s)
    return by_service


def service_port(service: Service, ref: PortRef) -> ServicePort | None:
    """The port of ``service`` that ``ref`` names, by number or by name."""
    for p in service.ports:
        if (ref.port is not None and p.port == ref.port) or (
            ref.port_name is not None and p.name == ref.port_name
        ):
            return p
    return None


def h2c_backends(
    backends: Iterable[tuple[str, PortRef]], services: Mapping[str, Service]
) -> frozenset[str]:
    """The keys of the backends whose Service port's appProtocol means HTTP/2 without TLS
    (``kubernetes.io/h2c``, ``h2c``, ``grpc``, ``http2``): the interceptor forwards to them
    over HTTP/2, to every other backend over HTTP/1.1."""
    keys: set[str] = set()
    for namespace, ref in backends:
        service = services.get(f"{namespace}/{ref.service}")
        port = None if service is None else service_port(service, ref)
        if port is not None and port.h2c:
            keys.add(ref.key(namespace))
    return frozenset(keys)


def endpoint_view(
    backends: Iterable[tuple[str, PortRef]],
    services: Mapping[str, Service],
    slices_by_service: Mapping[str, list[EndpointSlice]],
    *,
    starting: bool = False,
) -> tuple[dict[str, tuple[Address, ...]], list[BackendProblem]]:
    """Each backend's ready endpoints (``starting``: its endpoints not ready yet and not
    terminating, the ones an early probe may try), and why a backend can have none."""
    view: dict[str, tuple[Address, ...]] = {}
    problems: list[BackendProblem] = []
    for namespace, ref in backends:
        key = ref.key(namespace)
        if key in view:
            continue
        service = services.get(f"{namespace}/{ref.service}")
        if service is None:
            problems.append(
                BackendProblem(
                    key, "ServiceNotFound", f"Service {namespace}/{ref.service} does not exist"
                )
            )
            view[key] = ()
            continue
        if service.type == "ExternalName":
            problems.append(
                BackendProblem(
                    key,
                    "ExternalNameService",
                    f"Service {service.key} is of type ExternalName, which is never followed",
                )
            )
            view[key] = ()
            continue
        port = service_port(service, ref)
        if port is None:
            want = ref.port if ref.port is not None else repr(ref.port_name)
            problems.append(
                BackendProblem(key, "PortNotFound", f"Service {service.key} has no port {want}")
            )
            view[key] = ()
            continue
        addresses: list[Address] = []
        for s in slices_by_service.get(service.key, ()):
            target = next((sp.port for sp in s.ports if sp.name == port.name), None)
            if target is None:
                continue
            ips = s.starting_addresses if starting else s.ready_addresses
            addresses.extend((ip, target) for ip in ips)
        view[key] = tuple(dict.fromkeys(addresses))
    return view, problems
