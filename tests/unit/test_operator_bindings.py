"""Route bindings in the operator: built once per change of their inputs, never per reconcile;
each object's verdicts read from an index; what an event concerns found without a scan."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.interceptor_helpers import until
from wakeway.model.httproute import HTTPRoute, parse_httproute
from wakeway.model.httpso import HTTPScaledObject, parse_httpscaledobject
from wakeway.operator.bindings import Bindings, BindingsCache, Inputs, build_bindings
from wakeway.operator.dependents import Dependents
from wakeway.routing import InterceptorRef

pytestmark = pytest.mark.unit

INTERCEPTOR = InterceptorRef("wakeway", "interceptor")


def httpso(
    ns: str, name: str, created: str = "2026-01-01T00:00:00Z", **spec: Any
) -> HTTPScaledObject:
    return parse_httpscaledobject(
        {
            "apiVersion": "http.keda.sh/v1alpha1",
            "kind": "HTTPScaledObject",
            "metadata": {"namespace": ns, "name": name, "creationTimestamp": created},
            "spec": {"scaleTargetRef": {"name": name, "service": name, "port": 80}, **spec},
        }
    )


def route(ns: str, name: str, backend: str = "interceptor") -> HTTPRoute:
    return parse_httproute(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"namespace": ns, "name": name},
            "spec": {
                "hostnames": [f"{name}.test"],
                "rules": [
                    {"backendRefs": [{"name": backend, "namespace": "wakeway", "port": 8080}]}
                ],
            },
        }
    )


class Counted:
    """A build that counts its calls and can be told to fail."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.fail = False

    def __call__(self, version: int, inputs: Inputs) -> Bindings:
        self.calls.append(version)
        if self.fail:
            raise RuntimeError("broken build")
        return build_bindings(version, inputs, INTERCEPTOR, None)


def cache(state: dict[str, list[Any]], build: Counted, **kwargs: Any) -> BindingsCache:
    return BindingsCache(
        lambda: Inputs(tuple(state["targets"]), tuple(state["routes"]), ()),
        build,
        debounce=0.01,
        **kwargs,
    )


async def test_a_burst_of_changes_is_one_build_and_readers_share_it() -> None:
    state: dict[str, list[Any]] = {"targets": [], "routes": []}
    build = Counted()
    c = cache(state, build)
    for i in range(500):  # a relist: one change per object, in one go
        state["targets"].append(httpso("a", f"app-{i}"))
        c.changed()
    readers = await asyncio.gather(*(c.current() for _ in range(50)))  # 50 reconciles
    assert len(build.calls) == 1
    assert all(r is readers[0] for r in readers)
    assert len(readers[0].table.targets) == 500
    await c.close()


async def test_reading_without_a_change_never_builds_again() -> None:
    state: dict[str, list[Any]] = {"targets": [httpso("a", "x")], "routes": []}
    build = Counted()
    c = cache(state, build)
    first = await c.current()
    for _ in range(100):
        assert await c.current() is first
    assert build.calls == [0]
    await c.close()


async def test_a_reader_after_a_change_waits_for_a_build_that_includes_it() -> None:
    state: dict[str, list[Any]] = {"targets": [httpso("a", "x")], "routes": []}
    build = Counted()
    c = cache(state, build)
    before = await c.current()
    state["targets"].append(httpso("a", "y"))
    c.changed()
    after = await c.current()
    assert after.version > before.version
    assert set(after.table.targets) == {"a/x", "a/y"}
    assert len(build.calls) == 2
    # A reader that came before the change may be served the older table.
    assert c.latest is after
    await c.close()


async def test_a_change_during_a_build_gets_a_build_of_its_own() -> None:
    state: dict[str, list[Any]] = {"targets": [], "routes": []}
    build = Counted()
    c = cache(state, build, in_thread=False)
    c.changed()
    reader = asyncio.create_task(c.current())
    await until(lambda: build.calls)  # the first build is done or under way
    state["targets"].append(httpso("a", "late"))
    c.changed()
    latest = await c.current()
    await reader
    assert "a/late" in latest.table.targets
    assert len(build.calls) == 2
    await c.close()


async def test_a_failed_build_fails_its_readers_and_the_next_change_recovers() -> None:
    state: dict[str, list[Any]] = {"targets": [httpso("a", "x")], "routes": []}
    build = Counted()
    build.fail = True
    c = cache(state, build)
    with pytest.raises(RuntimeError, match="broken build"):
        await c.current()
    build.fail = False
    c.changed()
    assert "a/x" in (await c.current()).table.targets
    await c.close()


async def test_verdicts_are_read_per_object() -> None:
    ok = httpso("a", "ok", routes=[{"name": "r", "namespace": "a"}])
    late = httpso("a", "late", "2026-01-02T00:00:00Z", routes=[{"name": "r", "namespace": "a"}])
    lost = httpso("a", "lost", routes=[{"name": "nope", "namespace": "a"}])
    bindings = build_bindings(
        1, Inputs((ok, late, lost), (route("a", "r"),), ()), INTERCEPTOR, None
    )
    assert [p.reason for p in bindings.problems_of("a/lost")] == ["RouteNotFound"]
    assert bindings.problems_of("a/ok") == ()
    assert [(c.winner, c.loser) for c in bindings.conflicts_of("a/late")] == [("a/ok", "a/late")]
    assert bindings.conflicts_of("a/ok") == bindings.conflicts_of("a/late")
    assert bindings.conflicts_of("a/lost") == ()
    assert bindings.identities_of("a/ok") == {}  # no identity key
    # The same verdicts the whole table gives.
    assert list(bindings.problems_of("a/lost")) == list(bindings.table.problems_of("a/lost"))
    assert list(bindings.conflicts_of("a/late")) == list(bindings.table.conflicts_of("a/late"))


def test_dependents_find_the_objects_an_event_concerns() -> None:
    d = Dependents()
    web = httpso("a", "web", routes=[{"name": "shared", "namespace": "gw"}])
    api = httpso("b", "api", routes=[{"name": "shared", "namespace": "gw"}])
    local = httpso("gw", "local", routes=[{"name": "own", "namespace": "gw"}])
    for h in (web, api, local):
        d.update(h.key, h)
    assert d.of_service("a/web") == {"a/web"}
    assert d.of_service("b/web") == set()
    assert d.of_routes({"gw/shared"}) == {"a/web", "b/api"}
    # A grant in gw concerns the objects of other namespaces binding its routes only.
    assert d.of_grants("gw") == {"a/web", "b/api"}
    # web moves to another route: both the old and the new route are returned.
    moved = httpso("a", "web", routes=[{"name": "other", "namespace": "gw"}])
    assert d.update(moved.key, moved) == {"gw/shared", "gw/other"}
    assert d.of_routes({"gw/shared"}) == {"b/api"}
    # Gone: nothing points at it any more.
    assert d.update(api.key, None) == {"gw/shared"}
    assert d.of_routes({"gw/shared"}) == set()
    assert d.of_grants("gw") == {"a/web"}
    assert len(d) == 2


def test_dependents_know_the_failover_service() -> None:
    d = Dependents()
    h = httpso(
        "a",
        "web",
        scaleTargetRef={"name": "web", "service": "web", "port": 80},
        coldStartTimeoutFailoverRef={"service": "sorry", "port": 80},
    )
    d.update(h.key, h)
    assert d.of_service("a/sorry") == {"a/web"}
