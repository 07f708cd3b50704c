"""Informers: list, then watch from the list's resourceVersion; relist on 410; restart a silent
or broken watch with jittered backoff. The cache holds typed objects; watch handlers only get
the key of what changed (level-triggered: the reader looks at the cache).

Backoff is kept short where a retry costs the API server nothing (no answer at all: a refused
connection) or where the answer is what a restarting API server says before its caches are in
(401, 403, 404): a cache must be fresh within seconds of the server coming back, however long
it was away. Only a server that answers but is overloaded (429, 5xx) is left alone for longer,
and that backoff grows from its start: a restarting server also answers 429 for a moment while
its storage initializes, which must not inherit the count of a long outage. Every success (a
list, a watch event) starts the backoff from the beginning again, and while the API server is
unreachable a wait ends as soon as any call on the same connection gets through.

An ``optional`` informer is for a kind whose CRD may not be installed (InterceptorRoute, on a
cluster set up before it existed): while listing it answers 404 it is synced and empty, and
the list is tried again every ``absent_retry`` seconds, so a CRD installed later is picked up.
Likewise, before its first list, while it may not be read (403: RBAC from before the kind)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from wakeway.kube.client import JSON, Kube
from wakeway.kube.errors import Forbidden, Gone, KubeError, NotFound, Unauthorized
from wakeway.kube.resources import Resource
from wakeway.model.conditions import Condition, parse_conditions
from wakeway.model.errors import ModelError
from wakeway.model.meta import ObjectMeta, parse_meta

T = TypeVar("T")
log = logging.getLogger("wakeway.kube")


@dataclass(frozen=True, slots=True)
class Cached(Generic[T]):
    """One object as the cache holds it: parsed, or the reason it could not be."""

    meta: ObjectMeta
    value: T | None
    error: ModelError | None
    conditions: tuple[Condition, ...] = ()

    @property
    def key(self) -> str:
        return self.meta.key


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter: a random wait up to min(cap, base * 2**n), where
    the cap is ``overloaded_cap`` for an API server that answered 429 or 5xx, ``cap`` for any
    other failure (nothing answered, or an answer a restarting server gives)."""

    base: float = 0.2
    cap: float = 2.0
    overloaded_cap: float = 15.0

    def delay(self, attempt: int, rng: random.Random, *, overloaded: bool = False) -> float:
        cap = self.overloaded_cap if overloaded else self.cap
        return rng.uniform(0, min(cap, self.base * (2 ** min(attempt, 30))))


def overloaded(exc: BaseException) -> bool:
    """An API server that answered, but with 429 or a 5xx: retrying fast would add to its load."""
    return isinstance(exc, KubeError) and (exc.status == 429 or exc.status >= 500)


class Informer(Generic[T]):
    def __init__(
        self,
        kube: Kube,
        resource: Resource,
        parse: Callable[[Mapping[str, Any]], T],
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        backoff: Backoff | None = None,
        server_timeout: int = 300,
        silence: float = 330.0,
        optional: bool = False,
        absent_retry: float = 10.0,
    ) -> None:
        self.kube = kube
        self.resource = resource
        self._parse = parse
        self.namespace = namespace
        self.label_selector = label_selector
        self.backoff = backoff or Backoff()
        self.server_timeout = server_timeout
        self.silence = silence
        self.optional = optional
        self.absent_retry = absent_retry
        self.absent = False  # optional, and the API server does not serve the kind
        self.synced = asyncio.Event()
        self.relists = 0  # how many times the whole list was read (1 after the first sync)
        self.resumed = 0  # watches the server ended normally, each resumed from its version
        self._store: dict[str, Cached[T]] = {}
        self._handlers: list[Callable[[str], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._rng = random.Random()

    # --- reading ---

    def get(self, key: str) -> Cached[T] | None:
        return self._store.get(key)

    def items(self) -> Mapping[str, Cached[T]]:
        """The cache; read it synchronously, it changes between awaits."""
        return self._store

    def values(self) -> list[T]:
        """Every object that parsed."""
        return [c.value for c in self._store.values() if c.value is not None]

    def add_handler(self, handler: Callable[[str], None]) -> None:
        """``handler(key)`` after every change of that key (never blocks; enqueue work)."""
        self._handlers.append(handler)

    # --- running ---

    def start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"informer-{self.resource.plural}")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        attempt = 0
        was_overloaded = False  # what the last failure was: its own backoff streak
        version: str | None = None  # None: list before watching
        while True:
            try:
                if version is None:
                    version = await self._relist()
                    attempt = 0
                async for event in self.kube.watch(
                    self.resource,
                    self.namespace,
                    version,
                    server_timeout=self.server_timeout,
                    silence=self.silence,
                ):
                    attempt = 0
                    version = self._apply(event.type, event.object) or version
                # The server ended the watch normally: resume from where it got to.
                self.resumed += 1
            except Gone:
                log.info("%s: resourceVersion expired, listing again", self.resource.plural)
                version = None
            except (Forbidden, Unauthorized) as exc:
                # A restarting API server says so until its caches are in, and permissions can
                # be granted later: keep trying, loudly (once a streak, then now and then).
                if self.optional and version is None and not self.synced.is_set():
                    self._not_served(f"not readable ({exc})")  # an install's older RBAC
                delay = self.backoff.delay(attempt, self._rng)
                level = logging.ERROR if attempt % 60 == 0 else logging.DEBUG
                attempt += 1
                log.log(level, "%s: %s; retrying in %.1fs", self.resource.plural, exc, delay)
                await self.kube.wait_answering(delay)
            except KubeError as exc:
                if self.optional and isinstance(exc, NotFound):
                    if version is None:
                        self._not_served("not served by the API server")
                        await asyncio.sleep(self.absent_retry)
                    version = None  # a watch of a kind no longer served: list to find out
                    continue
                busy = overloaded(exc)
                if busy != was_overloaded:
                    attempt, was_overloaded = 0, busy
                delay = self.backoff.delay(attempt, self._rng, overloaded=busy)
                attempt += 1
                log.warning("%s: %s; retrying in %.1fs", self.resource.plural, exc, delay)
                await self.kube.wait_answering(delay)
            except Exception:  # a broken stream or object must not end the informer for good
                delay = self.backoff.delay(attempt, self._rng)
                attempt += 1
                log.exception(
                    "%s: watch failed; listing again in %.1fs", self.resource.plural, delay
                )
                version = None
                await self.kube.wait_answering(delay)

    def _not_served(self, why: str) -> None:
        if not self.absent:
            log.warning("%s: %s; none until it is", self.resource.plural, why)
        self.absent = True
        gone, self._store = list(self._store), {}
        self.synced.set()
        for key in gone:
            self._notify(key)

    async def _relist(self) -> str:
        result = await self.kube.list(self.resource, self.namespace, self.label_selector)
        fresh = {c.key: c for c in (self._cache_entry(item) for item in result.items)}
        changed = [k for k in self._store if k not in fresh]
        changed += [k for k, c in fresh.items() if self._store.get(k) != c]
        self._store = fresh
        self.absent = False
        self.relists += 1
        self.synced.set()
        for key in changed:
            self._notify(key)
        return result.resource_version

    def _apply(self, kind: str, obj: JSON) -> str | None:
        version = str(obj.get("metadata", {}).get("resourceVersion") or "") or None
        if kind == "BOOKMARK":
            return version
        entry = self._cache_entry(obj)
        if kind == "DELETED":
            self._store.pop(entry.key, None)
        else:
            self._store[entry.key] = entry
        self._notify(entry.key)
        return version

    def _cache_entry(self, obj: JSON) -> Cached[T]:
        try:
            meta = parse_meta(obj, "")
        except ModelError:
            meta = ObjectMeta(namespace="", name=str(obj.get("metadata", {}).get("name", "")))
        conditions = parse_conditions((obj.get("status") or {}).get("conditions"))
        try:
            return Cached(meta, self._parse(obj), None, conditions)
        except ModelError as exc:
            return Cached(meta, None, exc, conditions)

    def _notify(self, key: str) -> None:
        for handler in self._handlers:
            try:
                handler(key)
            except Exception:  # a broken handler must not stop the watch
                log.exception("%s: handler failed for %s", self.resource.plural, key)
