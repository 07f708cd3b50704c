"""The ready-endpoint view: which pod addresses and ports serve each backend, from Services and
EndpointSlices. Keys are ``PortRef.key(namespace)``, as the interceptor looks them up.

Forwarding goes straight to pod IPs: a pod is used the moment its slice says it is ready,
without waiting for kube-proxy. ExternalName Services are never followed: they would let an
object send traffic to any DNS name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

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
    slices_by_service: Mapping[str, Iterable[EndpointSlice]],
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


class _SliceLists(Mapping[str, Iterable[EndpointSlice]]):
    """Each Service's slices, read straight from the index (no copy per refresh)."""

    __slots__ = ("_slices",)

    def __init__(self, slices: dict[str, dict[str, EndpointSlice]]) -> None:
        self._slices = slices

    def __getitem__(self, key: str) -> Iterable[EndpointSlice]:
        return self._slices[key].values()

    def __iter__(self) -> Iterator[str]:
        return iter(self._slices)

    def __len__(self) -> int:
        return len(self._slices)


@dataclass(slots=True)
class EndpointIndex:
    """The endpoint view, kept up to date change by change: a Service or EndpointSlice event
    recomputes only the backends of that Service (an EndpointSlice controller catching up on
    thousands of Services, or one pod turning ready, costs what changed, not every backend);
    new targets recompute every backend. The result is always :func:`endpoint_view` of the
    current inputs (``starting``: also its ``starting=True`` view)."""

    track_starting: bool = False
    view: dict[str, tuple[Address, ...]] = field(default_factory=dict)
    starting: dict[str, tuple[Address, ...]] = field(default_factory=dict)
    h2c: frozenset[str] = frozenset()
    _services: dict[str, Service] = field(default_factory=dict)
    _slices: dict[str, dict[str, EndpointSlice]] = field(default_factory=dict)  # by Service
    _slice_service: dict[str, str] = field(default_factory=dict)  # slice key -> Service key
    _backends: list[tuple[str, PortRef]] = field(default_factory=list)
    _by_service: dict[str, list[tuple[str, PortRef]]] = field(default_factory=dict)
    _dirty: set[str] = field(default_factory=set)  # Service keys changed since refresh()
    _all: bool = True  # every backend is due

    def set_backends(self, backends: Iterable[tuple[str, PortRef]]) -> None:
        """The targets' backends (:func:`backends_of`): all are recomputed."""
        self._backends = list(backends)
        by_service: dict[str, list[tuple[str, PortRef]]] = {}
        for namespace, ref in self._backends:
            by_service.setdefault(f"{namespace}/{ref.service}", []).append((namespace, ref))
        self._by_service = by_service
        self._all = True

    def service(self, key: str, service: Service | None) -> None:
        """Service ``key`` (namespace/name) is now ``service`` (None: gone)."""
        if service is None:
            self._services.pop(key, None)
        else:
            self._services[key] = service
        self._dirty.add(key)

    def slice(self, key: str, slice_: EndpointSlice | None) -> None:
        """EndpointSlice ``key`` is now ``slice_`` (None: gone, or not readable)."""
        old = self._slice_service.pop(key, None)
        if old is not None:
            bucket = self._slices.get(old)
            if bucket is not None:
                bucket.pop(key, None)
                if not bucket:
                    del self._slices[old]
            self._dirty.add(old)
        if slice_ is not None and slice_.service:
            owner = slice_.service_key
            self._slices.setdefault(owner, {})[key] = slice_
            self._slice_service[key] = owner
            self._dirty.add(owner)

    @property
    def stale(self) -> bool:
        return self._all or bool(self._dirty)

    def refresh(self) -> bool:
        """Bring the view up to date; false when no backend could have changed."""
        if self._all:
            backends = self._backends
        else:
            backends = [b for key in self._dirty for b in self._by_service.get(key, ())]
        everything, self._all = self._all, False
        self._dirty.clear()
        if not backends and not everything:
            return False
        slices = _SliceLists(self._slices)
        view, _ = endpoint_view(backends, self._services, slices)
        h2c = h2c_backends(backends, self._services)
        if everything:
            self.view, self.h2c = view, h2c
        else:
            self.view = {**self.view, **view}
            self.h2c = (self.h2c - view.keys()) | h2c
        if self.track_starting:
            starting, _ = endpoint_view(backends, self._services, slices, starting=True)
            self.starting = starting if everything else {**self.starting, **starting}
        return True
