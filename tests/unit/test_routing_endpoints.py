"""The ready-endpoint view from Services and EndpointSlices."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.routing_fixtures import so
from wakeway.model.service import parse_endpoint_slice, parse_service
from wakeway.routing.endpoints import (
    BackendProblem,
    EndpointIndex,
    backends_of,
    endpoint_view,
    h2c_backends,
    index_slices,
)

pytestmark = pytest.mark.unit


def service(name: str, ports: list[dict[str, Any]], type: str = "ClusterIP") -> Any:
    return parse_service(
        {"metadata": {"name": name, "namespace": "default"}, "spec": {"type": type, "ports": ports}}
    )


def slice_(
    service: str, ports: list[dict[str, Any]], endpoints: list[dict[str, Any]], name: str = ""
) -> Any:
    return parse_endpoint_slice(
        {
            "metadata": {
                "name": name or f"{service}-abc",
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": service},
            },
            "ports": ports,
            "endpoints": endpoints,
        }
    )


def test_ready_pod_addresses_with_the_target_port() -> None:
    web = so("web", scaleTargetRef={"name": "web", "service": "web", "port": 80})
    named = so("named", scaleTargetRef={"name": "web", "service": "web", "portName": "admin"})
    services = {
        "default/web": service(
            "web", [{"name": "http", "port": 80}, {"name": "admin", "port": 9000}]
        )
    }
    slices = index_slices(
        [
            slice_(
                "web",
                [{"name": "http", "port": 8080}, {"name": "admin", "port": 9090}],
                [
                    {"addresses": ["10.244.0.5"], "conditions": {"ready": True}},
                    {"addresses": ["10.244.0.6"], "conditions": {"ready": False}},
                    {"addresses": ["10.244.0.7"]},  # no condition: ready
                ],
            ),
            slice_(
                "web", [{"name": "http", "port": 8080}], [{"addresses": ["10.244.0.8"]}], "web-def"
            ),
        ]
    )
    view, problems = endpoint_view(backends_of([web, named]), services, slices)
    assert problems == []
    assert view["default/web:80"] == (
        ("10.244.0.5", 8080),
        ("10.244.0.7", 8080),
        ("10.244.0.8", 8080),
    )
    assert view["default/web:admin"] == (("10.244.0.5", 9090), ("10.244.0.7", 9090))
    starting, _ = endpoint_view(backends_of([web, named]), services, slices, starting=True)
    assert starting == {
        "default/web:80": (("10.244.0.6", 8080),),
        "default/web:admin": (("10.244.0.6", 9090),),
    }


def test_problems_are_reported_and_external_names_never_followed() -> None:
    targets = [
        so("a", scaleTargetRef={"name": "a", "service": "missing", "port": 80}),
        so("b", scaleTargetRef={"name": "b", "service": "ext", "port": 80}),
        so("c", scaleTargetRef={"name": "c", "service": "web", "port": 81}),
    ]
    services = {
        "default/ext": service("ext", [{"port": 80}], type="ExternalName"),
        "default/web": service("web", [{"port": 80}]),
    }
    targets.append(so("d", scaleTargetRef={"name": "d", "service": "web", "portName": "admin"}))
    targets.append(so("e", scaleTargetRef={"name": "e", "service": "web", "port": 80}))
    slices = index_slices([slice_("web", [{"port": 8080}], [{"addresses": ["10.244.0.5"]}])])
    view, problems = endpoint_view(backends_of(targets), services, slices)
    assert problems == [  # each names its backend; the one after them still gets its endpoints
        BackendProblem(
            "default/missing:80", "ServiceNotFound", "Service default/missing does not exist"
        ),
        BackendProblem(
            "default/ext:80",
            "ExternalNameService",
            "Service default/ext is of type ExternalName, which is never followed",
        ),
        BackendProblem("default/web:81", "PortNotFound", "Service default/web has no port 81"),
        BackendProblem(
            "default/web:admin", "PortNotFound", "Service default/web has no port 'admin'"
        ),
    ]
    assert view == {
        "default/missing:80": (),
        "default/ext:80": (),
        "default/web:81": (),
        "default/web:admin": (),
        "default/web:80": (("10.244.0.5", 8080),),
    }


def test_a_backend_shared_by_two_targets_is_looked_up_once_and_the_rest_still_are() -> None:
    targets = [
        so("a", scaleTargetRef={"name": "a", "service": "web", "port": 80}),
        so("b", scaleTargetRef={"name": "b", "service": "web", "port": 80}),
        so("c", scaleTargetRef={"name": "c", "service": "api", "port": 80}),
    ]
    services = {"default/web": service("web", [{"port": 80}]), "default/api": service("api", [])}
    view, problems = endpoint_view(backends_of(targets), services, {})
    assert view == {"default/web:80": (), "default/api:80": ()}
    assert [p.key for p in problems] == ["default/api:80"]


def test_a_slice_without_the_port_is_skipped_and_a_service_without_slices_is_empty() -> None:
    targets = [
        so("a", scaleTargetRef={"name": "a", "service": "web", "portName": "admin"}),
        so("b", scaleTargetRef={"name": "b", "service": "idle", "port": 80}),
    ]
    services = {
        "default/web": service("web", [{"name": "http", "port": 80}, {"name": "admin", "port": 9}]),
        "default/idle": service("idle", [{"port": 80}]),
    }
    slices = index_slices(
        [
            slice_("web", [{"name": "http", "port": 8080}], [{"addresses": ["10.244.0.5"]}], "a"),
            slice_("web", [{"name": "admin", "port": 9090}], [{"addresses": ["10.244.0.6"]}], "b"),
        ]
    )
    view, problems = endpoint_view(backends_of(targets), services, slices)
    assert problems == []
    assert view == {"default/web:admin": (("10.244.0.6", 9090),), "default/idle:80": ()}


def test_unnamed_single_port_and_failover_backend() -> None:
    t = so(
        "t",
        scaleTargetRef={"name": "t", "service": "t", "port": 80},
        coldStartTimeoutFailoverRef={"service": "fallback", "port": 80},
    )
    services = {
        "default/t": service("t", [{"port": 80}]),
        "default/fallback": service("fallback", [{"port": 80}]),
    }
    slices = index_slices(
        [
            slice_("t", [{"port": 8080}], [{"addresses": ["10.244.0.9"]}]),
            slice_("fallback", [{"port": 3000}], [{"addresses": ["10.244.0.10"]}]),
        ]
    )
    view, _ = endpoint_view(backends_of([t]), services, slices)
    assert view == {
        "default/t:80": (("10.244.0.9", 8080),),
        "default/fallback:80": (("10.244.0.10", 3000),),
    }


@pytest.mark.parametrize(
    ("conditions", "ready", "serving", "starting"),
    [
        ({}, True, True, False),  # no conditions: ready, so serving
        ({"ready": True}, True, True, False),
        ({"ready": False}, False, False, True),  # not ready, serving absent: as ready
        ({"ready": False, "terminating": False}, False, False, True),
        ({"ready": False, "serving": True, "terminating": True}, False, True, False),  # draining
        ({"ready": False, "serving": False, "terminating": True}, False, False, False),
    ],
)
def test_a_terminating_endpoint_that_still_serves_is_serving_not_ready(
    conditions: dict[str, bool], ready: bool, serving: bool, starting: bool
) -> None:
    """Starting: not ready and not terminating (a pod coming up, which an early probe tries;
    never one going away)."""
    parsed = slice_("web", [], [{"addresses": ["10.244.0.5"], "conditions": conditions}])
    assert (parsed.ready_addresses == ("10.244.0.5",)) is ready
    assert (parsed.serving_addresses == ("10.244.0.5",)) is serving
    assert (parsed.starting_addresses == ("10.244.0.5",)) is starting


def test_the_scaler_follows_draining_interceptors_until_they_stop_serving() -> None:
    """A replica shutting down still holds and forwards requests: its counts must still count."""
    from wakeway.scaler.kube_replicas import KubeReplicas

    replicas = KubeReplicas(None, "wakeway", "wakeway-interceptor-admin", "admin")
    draining = {"ready": False, "serving": True, "terminating": True}
    gone = {"ready": False, "serving": False, "terminating": True}
    parsed = slice_(
        "wakeway-interceptor-admin",
        [{"name": "admin", "port": 9090}],
        [
            {"addresses": ["10.244.0.5"], "conditions": {"ready": True}},
            {"addresses": ["10.244.0.6"], "conditions": draining},
            {"addresses": ["10.244.0.7"], "conditions": gone},
        ],
    )
    assert replicas.addresses([parsed]) == {"10.244.0.5:9090", "10.244.0.6:9090"}


@pytest.mark.parametrize(
    ("app_protocol", "h2c"),
    [
        (None, False),
        ("http", False),
        ("kubernetes.io/ws", False),
        ("kubernetes.io/h2c", True),
        ("h2c", True),
        ("grpc", True),
        ("GRPC", True),
        ("http2", True),
    ],
)
def test_backends_on_an_h2c_port_by_app_protocol(app_protocol: str | None, h2c: bool) -> None:
    by_number = so("a", scaleTargetRef={"name": "a", "service": "svc", "port": 50051})
    by_name = so("b", scaleTargetRef={"name": "b", "service": "svc", "portName": "rpc"})
    other_port = so("c", scaleTargetRef={"name": "c", "service": "svc", "port": 80})
    missing = so("d", scaleTargetRef={"name": "d", "service": "gone", "port": 80})
    port: dict[str, Any] = {"name": "rpc", "port": 50051}
    if app_protocol is not None:
        port["appProtocol"] = app_protocol
    services = {"default/svc": service("svc", [port, {"name": "http", "port": 80}])}
    keys = h2c_backends(backends_of([by_number, by_name, other_port, missing]), services)
    want = {"default/svc:50051", "default/svc:rpc"} if h2c else set()
    assert keys == want


# -- the incremental index ---------------------------------------------------------------------

SERVICES = ("a", "b", "c")
CONDITIONS: tuple[dict[str, bool], ...] = (
    {"ready": True},
    {"ready": False},
    {"ready": False, "terminating": True},
    {},
)


def _service_doc(name: str, variant: int) -> Any:
    ports: list[dict[str, Any]] = [{"name": "http", "port": 80 + variant % 2}]
    if variant % 3 == 0:
        ports.append({"name": "grpc", "port": 90, "appProtocol": "kubernetes.io/h2c"})
    return service(name, ports, type="ExternalName" if variant == 5 else "ClusterIP")


def _slice_doc(owner: str, n: int, variant: int) -> Any:
    endpoints = [
        {"addresses": [f"10.0.{n}.{i}"], "conditions": CONDITIONS[(variant + i) % 4]}
        for i in range(variant % 3 + 1)
    ]
    ports = [{"name": "http", "port": 8080}, {"name": "grpc", "port": 9090}]
    return slice_(owner, ports, endpoints, name=f"{owner}-{n}")


def _targets(variant: int) -> list[Any]:
    refs = [
        {"name": "a", "service": "a", "port": 80},
        {"name": "b", "service": "b", "portName": "grpc"},
        {"name": "c", "service": "c", "port": 81},
        {"name": "d", "service": "missing", "port": 80},
    ]
    return [so(f"t{i}", scaleTargetRef=ref) for i, ref in enumerate(refs) if (variant >> i) & 1]


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["service", "slice", "targets", "refresh"]),
            st.integers(0, 2),  # which Service
            st.integers(0, 3),  # which of its slices
            st.integers(-1, 15),  # the new version; -1: deleted
        ),
        max_size=40,
    )
)
def test_the_incremental_index_always_equals_the_whole_view(
    changes: list[tuple[str, int, int, int]],
) -> None:
    """Whatever the order of Service, EndpointSlice and target changes, a refresh gives what
    endpoint_view computes from everything at once (ready, starting and h2c)."""
    index = EndpointIndex(track_starting=True)
    services: dict[str, Any] = {}
    slices: dict[str, Any] = {}
    targets: list[Any] = []
    index.set_backends(backends_of(targets))
    for what, which, n, variant in changes:
        name = SERVICES[which]
        if what == "service":
            doc = None if variant < 0 else _service_doc(name, variant)
            services.pop(f"default/{name}", None) if doc is None else services.update(
                {f"default/{name}": doc}
            )
            index.service(f"default/{name}", doc)
        elif what == "slice":
            key = f"default/{name}-{n}"
            doc = None if variant < 0 else _slice_doc(name, n, variant)
            slices.pop(key, None) if doc is None else slices.update({key: doc})
            index.slice(key, doc)
        elif what == "targets":
            targets = _targets(max(variant, 0))
            index.set_backends(backends_of(targets))
        else:
            index.refresh()
            _assert_whole(index, targets, services, slices)
    index.refresh()
    _assert_whole(index, targets, services, slices)


def _assert_whole(
    index: EndpointIndex, targets: list[Any], services: dict[str, Any], slices: dict[str, Any]
) -> None:
    backends = backends_of(targets)
    by_service = index_slices(slices.values())
    ready, _ = endpoint_view(backends, services, by_service)
    starting, _ = endpoint_view(backends, services, by_service, starting=True)
    # Backends no longer used may linger in the index: only the targets' own keys are read.
    # The order of a backend's endpoints is the order slices were first seen (round robin
    # starts somewhere else, nothing more): compared as sets.
    keys = {ref.key(ns) for ns, ref in backends}

    def as_sets(view: dict[str, tuple[Any, ...]]) -> dict[str, set[Any]]:
        return {k: set(v) for k, v in view.items() if k in keys}

    assert as_sets(index.view) == as_sets(ready)
    assert as_sets(index.starting) == as_sets(starting)
    assert index.h2c & keys == h2c_backends(backends, services)


def ready_of(index: EndpointIndex, key: str) -> tuple[tuple[str, int], ...]:
    return index.view[key]  # read afresh each time (no narrowing carried across changes)


def starting_of(index: EndpointIndex, key: str) -> tuple[tuple[str, int], ...]:
    return index.starting[key]


def test_a_deleted_or_moved_slice_leaves_the_view_and_a_new_port_reaches_it() -> None:
    index = EndpointIndex(track_starting=True)
    index.set_backends(backends_of(_targets(0b0011)))  # a:80, b:grpc (h2c)
    index.service("default/a", _service_doc("a", 0))
    index.service("default/b", _service_doc("b", 0))
    index.slice("default/a-1", _slice_doc("a", 1, 0))
    index.slice("default/b-1", _slice_doc("b", 1, 0))
    assert index.refresh()
    assert ready_of(index, "default/a:80") == (("10.0.1.0", 8080),)
    assert ready_of(index, "default/b:grpc") == (("10.0.1.0", 9090),)
    assert starting_of(index, "default/b:grpc") == ()
    assert index.h2c == {"default/b:grpc"}
    index.slice("default/a-1", None)
    assert index.refresh()
    assert ready_of(index, "default/a:80") == ()
    index.slice("default/a-1", _slice_doc("b", 1, 1))  # the same slice name, now b's
    index.refresh()
    assert ready_of(index, "default/a:80") == ()
    assert starting_of(index, "default/b:grpc") == (("10.0.1.0", 9090),)  # not ready, not leaving
    index.service("default/b", _service_doc("b", 1))  # its grpc port is gone
    index.refresh()
    assert ready_of(index, "default/b:grpc") == ()
    assert index.h2c == frozenset()


def test_an_event_of_a_service_no_target_uses_changes_nothing() -> None:
    index = EndpointIndex()
    index.set_backends(
        backends_of([so("a", scaleTargetRef={"name": "a", "service": "a", "port": 80})])
    )
    assert index.refresh()
    index.service("default/other", service("other", [{"port": 80}]))
    index.slice("default/other-1", slice_("other", [{"port": 8080}], [{"addresses": ["10.0.0.1"]}]))
    assert index.stale
    assert not index.refresh()  # nothing to recompute
    assert not index.stale
