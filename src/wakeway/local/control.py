"""Local mode's routes on its admin port, for ``wakeway status|wake|sleep|explain``.

- ``GET /objects`` (``?name=NAME``): ``{"items": [OBJECT_STATUS, ...]}``
  (:class:`~wakeway.model.objectstatus.ObjectStatus` as JSON), every HTTPScaledObject with its
  workload's state and the interceptor's live counts;
- ``POST /objects/NAME/wake``: start the workload now (it sleeps again after its
  ``scaledownPeriod`` without requests); ``POST /objects/NAME/sleep``: stop it now (409 while
  requests are in flight, or when ``replicas.min`` or a warm window keeps it awake);
- ``GET /explain?host=H&path=P&method=M&header=NAME:VALUE...``: what
  :func:`wakeway.routing.explain.explain` says of that request against the running
  configuration.

``NAME`` is the HTTPScaledObject's name, or ``namespace/name`` where names repeat. Errors are
``{"error": MESSAGE}`` with 400, 404 or 409.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from aiohttp import web

from wakeway.gateway.request import Request
from wakeway.interceptor.counts import TargetCounts
from wakeway.local.config import LocalConfig
from wakeway.local.plan import Phase
from wakeway.model.httpso import HTTPScaledObject
from wakeway.model.objectstatus import ASLEEP, AWAKE, SLEEPING, WAKING, ObjectStatus
from wakeway.routing import InterceptorRef, RoutingTable
from wakeway.routing.explain import explain, explanation_json


class SlotView(Protocol):
    @property
    def phase(self) -> Phase: ...
    @property
    def last_wake(self) -> float | None: ...
    @property
    def last_sleep(self) -> float | None: ...


class Controlled(Protocol):
    """What these routes need of the runner (``runner.LocalRunner``)."""

    @property
    def config(self) -> LocalConfig: ...
    @property
    def routes_to(self) -> InterceptorRef: ...
    def slot_of(self, workload_key: str) -> SlotView | None: ...
    def counts(self) -> Mapping[str, TargetCounts]: ...
    def wake(self, workload_key: str) -> str: ...
    def sleep(self, workload_key: str) -> str | None: ...


RUNNER_KEY: web.AppKey[Controlled] = web.AppKey("local-runner")

_STATES = {
    Phase.STOPPED: ASLEEP,
    Phase.STARTING: WAKING,
    Phase.READY: AWAKE,
    Phase.STOPPING: SLEEPING,
}


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def add_control_routes(app: web.Application, runner: Controlled) -> None:
    app[RUNNER_KEY] = runner
    app.router.add_get("/objects", _objects)
    app.router.add_post("/objects/{name:[^/]+(/[^/]+)?}/wake", _wake)
    app.router.add_post("/objects/{name:[^/]+(/[^/]+)?}/sleep", _sleep)
    app.router.add_get("/explain", _explain)


def rfc3339(wall: float | None) -> str | None:
    if wall is None:
        return None
    moment = datetime.datetime.fromtimestamp(wall, datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def object_statuses(runner: Controlled) -> list[ObjectStatus]:
    config = runner.config
    table = RoutingTable(config.scaled_objects, config.routes, runner.routes_to)
    counts = runner.counts()
    out = []
    for so in config.scaled_objects:
        workload = config.workload_of(so)
        slot = runner.slot_of(workload.key)
        phase = Phase.STOPPED if slot is None else slot.phase
        seen = counts.get(so.key)
        refused = {p.route for p in table.problems_of(so.key)}
        out.append(
            ObjectStatus(
                namespace=so.namespace,
                name=so.name,
                state=_STATES[phase],
                replicas=1 if phase in (Phase.STARTING, Phase.READY) else 0,
                ready=1 if phase is Phase.READY else 0,
                in_flight=0 if seen is None else seen.in_flight,
                held=0 if seen is None else seen.held,
                routes_bound=sum(1 for b in so.routes if b.route_key not in refused),
                routes=len(so.routes),
                last_wake=rfc3339(None if slot is None else slot.last_wake),
                last_sleep=rfc3339(None if slot is None else slot.last_sleep),
                mode="local",
                workload=f"LocalWorkload/{workload.meta.name}",
            )
        )
    return out


def find_object(runner: Controlled, name: str) -> HTTPScaledObject:
    """The object ``name`` (or ``namespace/name``) names; ControlError 404 or 400 otherwise."""
    objects = runner.config.scaled_objects
    found = [so for so in objects if name in (so.key, so.name)]
    if not found:
        known = ", ".join(so.key for so in objects) or "none"
        raise ControlError(404, f"no HTTPScaledObject {name!r} (known: {known})")
    if len(found) > 1:
        keys = ", ".join(so.key for so in found)
        raise ControlError(400, f"{name!r} is ambiguous: {keys}; name it as namespace/name")
    return found[0]


def _json(doc: Any, status: int = 200) -> web.Response:
    return web.json_response(doc, status=status)


def _errors(
    handler: Callable[[web.Request, Controlled], Any],
) -> Callable[[web.Request], Any]:
    async def wrapped(request: web.Request) -> web.Response:
        try:
            return _json(handler(request, request.app[RUNNER_KEY]))
        except ControlError as exc:
            return _json({"error": str(exc)}, exc.status)

    return wrapped


@_errors
def _objects(request: web.Request, runner: Controlled) -> Any:
    items = object_statuses(runner)
    name = request.query.get("name")
    if name is not None:
        key = find_object(runner, name).key
        items = [s for s in items if s.key == key]
    return {"items": [s.to_json() for s in items]}


@_errors
def _wake(request: web.Request, runner: Controlled) -> Any:
    so = find_object(runner, request.match_info["name"])
    message = runner.wake(runner.config.workload_of(so).key)
    return {"object": so.key, "message": message}


@_errors
def _sleep(request: web.Request, runner: Controlled) -> Any:
    so = find_object(runner, request.match_info["name"])
    why_not = runner.sleep(runner.config.workload_of(so).key)
    if why_not is not None:
        raise ControlError(409, f"{so.key}: {why_not}")
    return {"object": so.key, "message": "stopping its workload"}


@_errors
def _explain(request: web.Request, runner: Controlled) -> Any:
    query = request.query
    host, path = query.get("host"), query.get("path", "/")
    if not host:
        raise ControlError(400, "explain: the query parameter host is required")
    headers: dict[str, str] = {}
    for item in query.getall("header", []):
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise ControlError(400, f"explain: header {item!r} is not NAME:VALUE")
        headers[name.strip().lower()] = value.strip()
    path, _, raw_query = path.partition("?")
    req = Request(query.get("method", "GET").upper(), host, path, raw_query, headers)
    config = runner.config
    found = explain(config.scaled_objects, config.routes, req, runner.routes_to)
    return explanation_json(found)
