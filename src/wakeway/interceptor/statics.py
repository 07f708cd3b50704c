"""Which requests wake nothing and count for nothing, and what they are answered (pure).

:func:`compile_statics` turns a target's ``spec.maintenance`` and ``spec.wakeExclusions`` into
:class:`Statics` once per routing-table swap (through :func:`.policy.resolve`); :func:`decide`
then says, for one request and whether the target has a ready endpoint:

- ``None``: the usual way — counted, forwarded or held at the cold-start gate (which wakes);
- a :class:`Verdict` with ``forward`` true: forwarded to the ready endpoint, not counted;
- a :class:`Verdict` with ``forward`` false: answered with ``answer`` at once, not counted.

Maintenance wins over every exclusion; exclusions are tried in order, the first match wins.
The table in ``tests/unit/test_interceptor_statics.py`` pins it down.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from wakeway.gateway.match import path_prefix_matches
from wakeway.gateway.request import Request
from wakeway.model.exclusions import (
    Maintenance,
    RequestMatch,
    StaticResponse,
    WakeExclusion,
    response_headers,
)

Kind = Literal["static", "maintenance"]


@dataclass(frozen=True, slots=True)
class Answer:
    """A response the interceptor writes itself; ``origin`` names the spec field it comes from."""

    kind: Kind
    origin: str
    status: int
    content_type: str
    extra: tuple[tuple[str, str], ...]  # every other configured header, Retry-After among them
    body: str


@dataclass(frozen=True, slots=True)
class Verdict:
    answer: Answer  # sent at once, or when forwarding finds no endpoint after all
    forward: bool


@dataclass(frozen=True, slots=True)
class Rule:
    test: Callable[[Request], bool]
    always: bool  # responseMode Always: answered even when the target is awake
    answer: Answer


@dataclass(frozen=True, slots=True)
class Statics:
    maintenance: Answer | None
    rules: tuple[Rule, ...]


def compile_statics(
    exclusions: tuple[WakeExclusion, ...], maintenance: Maintenance
) -> Statics | None:
    """The compiled form, or None when the target has neither (the common case costs nothing)."""
    if not exclusions and not maintenance.enabled:
        return None
    rules = tuple(
        Rule(
            _test(e.match),
            e.response_mode == "Always",
            _answer("static", f"spec.wakeExclusions[{i}]", e.response),
        )
        for i, e in enumerate(exclusions)
    )
    main = (
        _answer("maintenance", "spec.maintenance", maintenance.response)
        if maintenance.enabled
        else None
    )
    return Statics(main, rules)


def decide(statics: Statics, req: Request, *, ready: bool) -> Verdict | None:
    """What to do with ``req`` for a target with ``statics``; ``ready``: the target has a
    ready endpoint now."""
    if statics.maintenance is not None:
        return Verdict(statics.maintenance, forward=False)
    for rule in statics.rules:
        if rule.test(req):
            return Verdict(rule.answer, forward=ready and not rule.always)
    return None


def _answer(kind: Kind, origin: str, response: StaticResponse) -> Answer:
    headers = response_headers(response)
    content_type = next(v for n, v in headers if n.lower() == "content-type")
    extra = tuple((n, v) for n, v in headers if n.lower() != "content-type")
    return Answer(kind, origin, response.status_code, content_type, extra, response.body)


def _test(m: RequestMatch) -> Callable[[Request], bool]:
    tests: list[Callable[[Request], bool]] = []
    if m.paths:
        exact = frozenset(p.value for p in m.paths if p.type == "Exact")
        prefixes = tuple(p.value for p in m.paths if p.type == "PathPrefix")

        def path_ok(req: Request) -> bool:
            return req.path in exact or any(path_prefix_matches(p, req.path) for p in prefixes)

        tests.append(path_ok)
    if m.methods:
        methods = frozenset(m.methods)
        tests.append(lambda req: req.method in methods)
    for header in m.headers:
        tests.append(_header_test(header.name, header.value))
    if m.user_agent_regex is not None:
        search = m.user_agent_regex.search

        def agent_ok(req: Request) -> bool:
            agent = req.headers.get("user-agent")
            return agent is not None and search(agent) is not None

        tests.append(agent_ok)
    checks = tuple(tests)
    return lambda req: all(t(req) for t in checks)


def _header_test(name: str, value: str | None) -> Callable[[Request], bool]:
    if value is None:
        return lambda req: name in req.headers
    return lambda req: req.headers.get(name) == value
