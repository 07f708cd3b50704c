"""Routes declared by HTTPScaledObjects (``spec.hosts``/``pathPrefixes``/``headers``).

Semantics of the KEDA HTTP add-on: an exact host wins over wildcard hosts (the most specific
first), which win over the catch-all ("*" or no hosts); within a host, the longest element-wise
path prefix wins; header matchers are AND-ed and one without a value only requires presence.
Ties go to the entry with more header matchers, then more of them with a value, then the
older object, then "namespace/name". An InterceptorRoute's rules are entries like these.
Where a more specific entry's headers do not match, the next entry in that order is tried, so a
request is only refused when no entry at all accepts it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from wakeway.gateway.request import Request
from wakeway.model.exclusions import HeaderRule
from wakeway.model.httpso import HTTPScaledObject
from wakeway.routing.hosts import HostIndex
from wakeway.routing.paths import normalize_prefix, prefixes_of


@dataclass(frozen=True, slots=True)
class HostEntry:
    """One (host pattern, path prefix) claim of an HTTPScaledObject."""

    target: HTTPScaledObject
    host: str  # "*" for the catch-all
    prefix: str  # normalised: "" is the root
    headers: tuple[HeaderRule, ...]

    @property
    def sort_key(self) -> tuple[int, int, float, str]:
        # The add-on's order: more headers, then more of them with a value, then older.
        meta = self.target.meta
        valued = sum(1 for h in self.headers if h.value is not None)
        return (-len(self.headers), -valued, meta.creation_timestamp, meta.key)

    @property
    def header_set(self) -> frozenset[tuple[str, str | None]]:
        return frozenset((h.name, h.value) for h in self.headers)


def headers_match(rules: tuple[HeaderRule, ...], headers: Mapping[str, str]) -> bool:
    for rule in rules:
        value = headers.get(rule.name)
        if value is None:
            return False
        if rule.value is not None and not _has_value(value, rule.value):
            return False
    return True


def _has_value(value: str, expected: str) -> bool:
    # A repeated header arrives joined with ", "; any one of its values may match.
    if value == expected:
        return True
    return "," in value and expected in (v.strip() for v in value.split(","))


def host_entries(target: HTTPScaledObject) -> Iterable[HostEntry]:
    """The claims of one object: each of its match rules (an HTTPScaledObject has one, an
    InterceptorRoute any number) claims every host of it (none: the catch-all, as in the add-on)
    with every path prefix of it (none: the root) and its headers. An HTTPScaledObject bound to
    HTTPRoutes that names neither hosts nor paths has no rule: its traffic comes only through
    those routes; an InterceptorRoute without rules gets no traffic, as in the add-on."""
    for rule in target.match_rules:
        hosts = rule.hosts or ("*",)
        prefixes = {normalize_prefix(p) for p in rule.path_prefixes} or {""}
        for host in dict.fromkeys(hosts):
            for prefix in sorted(prefixes):
                yield HostEntry(target, host, prefix, rule.headers)


def merge_targets(
    scaled_objects: Iterable[HTTPScaledObject], interceptor_routes: Iterable[HTTPScaledObject]
) -> list[HTTPScaledObject]:
    """Every target, an InterceptorRoute in place of an HTTPScaledObject of the same namespace
    and name (the add-on's rule: both share one key, the route is kept)."""
    by_key = {t.key: t for t in scaled_objects}
    by_key.update((t.key, t) for t in interceptor_routes)
    return list(by_key.values())


@dataclass(slots=True)
class _Bucket:
    by_prefix: dict[str, list[HostEntry]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Conflict:
    """Two objects claim the same host, path and headers; ``winner`` gets the traffic."""

    source: str  # "HTTPScaledObject" or "HTTPRoute"
    claim: str  # what both claim, readable
    winner: str  # "namespace/name" of the HTTPScaledObject that gets the traffic
    loser: str
    route: str | None = None  # source "HTTPRoute": the route's "namespace/name"
    rule: int | None = None  # and the index of the rule both claim

    @property
    def message(self) -> str:
        return f"{self.claim} is also claimed by {self.winner}, which takes precedence"


class ScaledObjectIndex:
    """Immutable once built; :meth:`lookup` never allocates more than a few small strings."""

    __slots__ = ("_hosts", "conflicts")

    def __init__(self, targets: Iterable[HTTPScaledObject]) -> None:
        hosts: HostIndex[_Bucket] = HostIndex()
        for target in targets:
            for entry in host_entries(target):
                hosts.slot(entry.host, _Bucket).by_prefix.setdefault(entry.prefix, []).append(entry)
        conflicts: list[Conflict] = []
        for bucket in _all_buckets(hosts):
            for entries in bucket.by_prefix.values():
                entries.sort(key=lambda e: e.sort_key)
                conflicts.extend(_conflicts(entries))
        self._hosts = hosts
        self.conflicts = tuple(conflicts)

    def lookup(self, req: Request) -> HostEntry | None:
        headers = req.headers
        for bucket in self._hosts.buckets_for(req.host):
            by_prefix = bucket.by_prefix
            for key in prefixes_of(req.path):
                entries = by_prefix.get(key)
                if entries is None:
                    continue
                for entry in entries:
                    if not entry.headers or headers_match(entry.headers, headers):
                        return entry
        return None


def _all_buckets(hosts: HostIndex[_Bucket]) -> Iterable[_Bucket]:
    yield from hosts.exact.values()
    yield from hosts.wildcard.values()
    if hosts.catch_all is not None:
        yield hosts.catch_all


def _conflicts(entries: list[HostEntry]) -> Iterable[Conflict]:
    first_by_headers: dict[frozenset[tuple[str, str | None]], HostEntry] = {}
    for entry in entries:
        winner = first_by_headers.setdefault(entry.header_set, entry)
        if winner is not entry and winner.target.key != entry.target.key:
            yield Conflict(
                source="HTTPScaledObject",
                claim=_describe(entry),
                winner=winner.target.key,
                loser=entry.target.key,
            )


def _describe(entry: HostEntry) -> str:
    headers = "".join(
        f" {h.name}" + (f"={h.value}" if h.value is not None else "") for h in entry.headers
    )
    return f"host {entry.host} path {entry.prefix or '/'}{headers}".rstrip()
