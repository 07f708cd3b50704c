"""The informer's recovery rules, driven by a scripted API (the cluster tier uses the real one)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import aiohttp
import pytest

from wakeway.kube.client import Kube, ListResult, WatchEvent
from wakeway.kube.errors import Forbidden, Gone, NotFound, Unavailable
from wakeway.kube.informer import Backoff, Informer, overloaded
from wakeway.kube.resources import SERVICES, Resource
from wakeway.model.meta import ObjectMeta, parse_meta

pytestmark = pytest.mark.unit


def obj(name: str, rv: int) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv)}}


class ScriptedApi:
    """list() answers with the current objects; each watch() plays the next script step."""

    def __init__(self, objects: list[list[dict[str, Any]]], steps: list[list[Any]]) -> None:
        self.objects = objects  # what each successive list() finds (the last one repeats)
        self.steps = steps
        self.lists = 0
        self.watched_from: list[str] = []
        self.done = asyncio.Event()

    async def list(
        self, resource: Resource, namespace: str | None, selector: str | None
    ) -> ListResult:
        found = self.objects[min(self.lists, len(self.objects) - 1)]
        self.lists += 1
        return ListResult([dict(o) for o in found], str(10 * self.lists))

    async def wait_answering(self, delay: float) -> None:
        await asyncio.sleep(delay)

    async def watch(
        self, resource: Resource, namespace: str | None, version: str, **_: Any
    ) -> AsyncIterator[WatchEvent]:
        self.watched_from.append(version)
        if not self.steps:
            self.done.set()
            await asyncio.Event().wait()  # a quiet watch, until the test stops the informer
        for item in self.steps.pop(0):
            if isinstance(item, Exception):
                raise item
            yield item


def parse(doc: Mapping[str, Any]) -> ObjectMeta:
    return parse_meta(doc, "")


async def run(api: ScriptedApi) -> Informer[ObjectMeta]:
    informer: Informer[ObjectMeta] = Informer(
        api,  # type: ignore[arg-type]
        SERVICES,
        parse,
        backoff=Backoff(base=0.001, cap=0.002),
    )
    informer.start()
    await asyncio.wait_for(api.done.wait(), 5)
    await informer.stop()
    return informer


async def test_gone_relists_and_drops_what_disappeared() -> None:
    api = ScriptedApi(
        [[obj("a", 1), obj("b", 2)], [obj("b", 2), obj("c", 3)]],
        [[Gone(410, "Expired", "too old")]],
    )
    changed: list[str] = []
    informer: Informer[ObjectMeta] = Informer(api, SERVICES, parse)  # type: ignore[arg-type]
    informer.add_handler(changed.append)
    informer.start()
    await asyncio.wait_for(api.done.wait(), 5)
    await informer.stop()
    assert api.lists == 2
    assert informer.relists == 2
    assert set(informer.items()) == {"ns/b", "ns/c"}
    assert api.watched_from == ["10", "20"]
    assert changed.count("ns/a") == 2  # added, then removed by the relist
    assert "ns/c" in changed
    assert changed.count("ns/b") == 1  # unchanged by the relist: no second notification


async def test_errors_back_off_and_resume_from_the_last_version_seen() -> None:
    api = ScriptedApi(
        [[obj("a", 1)]],
        [
            [WatchEvent("ADDED", obj("x", 11)), Unavailable(0, "Silent", "no data")],
            [WatchEvent("BOOKMARK", {"metadata": {"resourceVersion": "15"}})],  # server ended it
            [WatchEvent("DELETED", obj("a", 16))],
        ],
    )
    informer = await run(api)
    assert api.lists == 1  # never relisted: each restart resumed where it was
    assert api.watched_from == ["10", "11", "15", "16"]
    assert informer.resumed == 2  # the two watches the server ended; not the one that failed
    assert set(informer.items()) == {"ns/x"}


def test_backoff_is_jittered_and_capped() -> None:
    rng = random.Random(1)
    b = Backoff(base=0.5, cap=8.0)
    delays = [b.delay(n, rng) for n in range(12)]
    assert all(0 <= d <= 8.0 for d in delays)
    assert all(b.delay(n, rng) <= 0.5 * 2**n for n in range(4))
    assert len(set(delays)) == len(delays)  # jitter: no two waits alike


class RecordingBackoff(Backoff):
    """Waits nothing; records each (attempt, overloaded) the informer asked a delay for."""

    calls: ClassVar[list[tuple[int, bool]]] = []

    def delay(self, attempt: int, rng: random.Random, *, overloaded: bool = False) -> float:
        self.calls.append((attempt, overloaded))
        return 0.0


class FailingLists(ScriptedApi):
    """list() fails with the scripted errors first (an API server away), then answers."""

    def __init__(self, failures: list[Exception], steps: list[list[Any]]) -> None:
        super().__init__([[obj("a", 1)]], steps)
        self.failures = failures

    async def list(
        self, resource: Resource, namespace: str | None, selector: str | None
    ) -> ListResult:
        if self.failures:
            raise self.failures.pop(0)
        return await super().list(resource, namespace, selector)


async def test_backoff_starts_over_once_the_api_server_answers_again() -> None:
    """A long outage grows the attempt count; the first success resets it, so the next failure
    waits as little as the first one did (a cache is never left stale for a grown backoff)."""
    outage: list[Exception] = [Unavailable(0, "Refused", "connection refused")] * 12
    restart: list[Exception] = [
        Unavailable(429, "TooManyRequests", "storage is (re)initializing"),
        Unavailable(429, "TooManyRequests", "storage is (re)initializing"),
        Forbidden(403, "Forbidden", "RBAC caches not in yet"),
        Forbidden(403, "Forbidden", "RBAC caches not in yet"),
    ]
    api = FailingLists(outage + restart, [[Unavailable(0, "Reset", "connection reset")]])
    RecordingBackoff.calls = []
    informer: Informer[ObjectMeta] = Informer(
        api,  # type: ignore[arg-type]
        SERVICES,
        parse,
        backoff=RecordingBackoff(),
    )
    informer.start()
    await asyncio.wait_for(api.done.wait(), 5)
    await informer.stop()
    # The 429s a starting server gives begin their own streak, not the outage's 13th attempt.
    assert RecordingBackoff.calls == [
        *((n, False) for n in range(12)),
        (0, True),
        (1, True),
        (2, False),
        (3, False),
        (0, False),
    ]
    assert set(informer.items()) == {"ns/a"}


@pytest.mark.parametrize(
    ("error", "cap"),
    [
        (Unavailable(0, "Refused", "no answer"), 2.0),
        (Forbidden(403, "Forbidden", "a restarting server's RBAC"), 2.0),
        (Unavailable(429, "TooManyRequests", "slow down"), 15.0),
        (Unavailable(503, "ServiceUnavailable", "overloaded"), 15.0),
    ],
)
def test_backoff_is_short_unless_the_server_is_overloaded(error: Exception, cap: float) -> None:
    rng = random.Random(7)
    b = Backoff()
    delays = [b.delay(40, rng, overloaded=overloaded(error)) for _ in range(500)]
    assert max(delays) <= cap
    assert max(delays) > cap * 0.9  # full jitter reaches up to the cap


class StubApi:
    """kubernetes_asyncio's ApiClient as far as Kube.request uses it: answers or fails as told."""

    def __init__(self, outcomes: list[Exception | None]) -> None:
        self.outcomes = outcomes

    async def call_api(self, *_: Any, **__: Any) -> Any:
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return {"items": [], "metadata": {"resourceVersion": "1"}}


async def test_one_call_getting_through_ends_every_wait_and_says_so() -> None:
    refused = aiohttp.ClientConnectionError("connection refused")
    kube = Kube(StubApi([refused, refused, None]), timeout=1)  # type: ignore[arg-type]
    back: list[str] = []
    kube.on_reconnect(lambda: back.append("back"))
    for _ in range(2):
        with pytest.raises(Unavailable):
            await kube.list(SERVICES)
    was_down = kube.down
    waiting = asyncio.create_task(kube.wait_answering(60))  # an informer's long backoff
    await asyncio.sleep(0)
    await kube.list(SERVICES)  # another caller gets through
    await asyncio.wait_for(waiting, 1)
    assert (was_down, kube.down) == (True, False)
    assert back == ["back"]


class AbsentKindApi(ScriptedApi):
    """list() answers 404 (the kind's CRD is not installed) for the first ``absent`` lists."""

    def __init__(self, absent: int, error: Exception) -> None:
        super().__init__([[obj("a", 1)]], [])
        self.absent = absent
        self.error = error

    async def list(
        self, resource: Resource, namespace: str | None, selector: str | None
    ) -> ListResult:
        if self.absent:
            self.absent -= 1
            self.lists += 1
            raise self.error
        return await super().list(resource, namespace, selector)


def absent(informer: Informer[ObjectMeta]) -> bool:
    """Read afresh each time (a bare attribute stays narrowed across awaits for mypy)."""
    return informer.absent


@pytest.mark.parametrize(
    "error",
    [NotFound(404, "NotFound", "the server could not find"), Forbidden(403, "Forbidden", "no")],
    ids=["crd-missing", "rbac-older"],
)
async def test_an_optional_kind_not_served_is_synced_empty_and_listed_again(
    error: Exception,
) -> None:
    api = AbsentKindApi(absent=2, error=error)
    informer: Informer[ObjectMeta] = Informer(
        api,  # type: ignore[arg-type]
        SERVICES,
        parse,
        backoff=Backoff(base=0.001, cap=0.002),
        optional=True,
        absent_retry=0.05,
    )
    informer.start()
    await asyncio.wait_for(informer.synced.wait(), 5)  # at once: readiness does not wait
    assert absent(informer) is True
    assert informer.values() == []
    await asyncio.wait_for(api.done.wait(), 5)  # listed once it is served, then watched
    assert [m.name for m in informer.values()] == ["a"]
    assert absent(informer) is False
    assert api.lists == 3
    await informer.stop()
