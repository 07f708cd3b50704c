"""The proxy's decisions (wakeway.interceptor.policy), table by table."""

from __future__ import annotations

import pytest

from wakeway.interceptor.policy import (
    AtDeadline,
    Failure,
    Next,
    RequestTarget,
    after_connect_failure,
    at_deadline,
    failure_status,
    may_resend,
    parse_request_target,
    resolve,
)
from wakeway.interceptor.settings import InterceptorSettings
from wakeway.model.httpso import HTTPScaledObject, parse_httpscaledobject

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("url", "host", "expected"),
    [
        pytest.param(b"/a/b?x=1", b"h.example", ("h.example", "/a/b", "x=1"), id="origin-form"),
        pytest.param(b"/", None, ("", "/", ""), id="no Host"),
        pytest.param(b"/p?", b"h", ("h", "/p", ""), id="empty query"),
        pytest.param(b"/p?a?b", b"h", ("h", "/p", "a?b"), id="second ? is query"),
        pytest.param(
            b"http://abs.example/x?q", b"other", ("abs.example", "/x", "q"), id="absolute wins"
        ),
        pytest.param(b"http://abs.example", b"other", ("abs.example", "/", ""), id="no path"),
        pytest.param(
            b"https://abs.example:8443/y", None, ("abs.example:8443", "/y", ""), id="https, port"
        ),
        pytest.param(b"*", b"h", ("h", "*", ""), id="asterisk-form stays a path"),
        pytest.param(b"/x://y", b"h", ("h", "/x://y", ""), id=":// inside an origin-form path"),
        pytest.param(b"http://h/x://y", b"o", ("h", "/x://y", ""), id=":// again in the path"),
        pytest.param(
            b"http://h/a://b://c?q", b"o", ("h", "/a://b://c", "q"), id="twice in the path"
        ),
        pytest.param(b"/caf\xc3\xa9", b"h", ("h", "/caf\xc3\xa9", ""), id="bytes kept (latin-1)"),
    ],
)
def test_request_target(url: bytes, host: bytes | None, expected: tuple[str, str, str]) -> None:
    assert parse_request_target(url, host) == RequestTarget(*expected)


@pytest.mark.parametrize(
    ("failure", "resend"),
    [
        (Failure.REFUSED, True),
        (Failure.CONNECT_TIMEOUT, False),
        (Failure.CONNECT_ERROR, False),
        (Failure.LOST, False),
        (Failure.INVALID_RESPONSE, False),
    ],
)
def test_only_a_refused_connection_may_be_resent(failure: Failure, resend: bool) -> None:
    assert may_resend(failure) is resend


@pytest.mark.parametrize(
    ("failure", "attempts", "available", "primary", "expected"),
    [
        pytest.param(Failure.REFUSED, 1, True, True, Next.RETRY, id="another endpoint"),
        pytest.param(Failure.REFUSED, 1, False, True, Next.HOLD, id="last endpoint: gate"),
        pytest.param(Failure.REFUSED, 1, False, False, Next.FAIL, id="failover: no gate"),
        pytest.param(Failure.REFUSED, 1, True, False, Next.RETRY, id="failover, another"),
        pytest.param(Failure.REFUSED, 2, True, True, Next.RETRY, id="below the limit"),
        pytest.param(Failure.REFUSED, 3, True, True, Next.FAIL, id="the limit"),
        pytest.param(Failure.REFUSED, 4, False, True, Next.FAIL, id="past the limit"),
        pytest.param(Failure.CONNECT_TIMEOUT, 0, True, True, Next.FAIL, id="timeout"),
        pytest.param(Failure.CONNECT_ERROR, 0, True, True, Next.FAIL, id="other error"),
        pytest.param(Failure.LOST, 0, True, True, Next.FAIL, id="sent, then lost"),
        pytest.param(Failure.INVALID_RESPONSE, 0, True, True, Next.FAIL, id="bad response"),
    ],
)
def test_after_connect_failure(
    failure: Failure, attempts: int, available: bool, primary: bool, expected: Next
) -> None:
    got = after_connect_failure(
        failure, attempts=attempts, limit=3, endpoint_available=available, primary_backend=primary
    )
    assert got is expected


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (Failure.CONNECT_TIMEOUT, 504),
        (Failure.REFUSED, 502),
        (Failure.CONNECT_ERROR, 502),
        (Failure.LOST, 502),
        (Failure.INVALID_RESPONSE, 502),
    ],
)
def test_failure_status(failure: Failure, status: int) -> None:
    assert failure_status(failure) == status


@pytest.mark.parametrize(
    ("failover", "endpoint", "placeholder", "refused", "expected"),
    [
        pytest.param(True, True, False, 0, AtDeadline.FAILOVER, id="failover"),
        pytest.param(True, True, True, 0, AtDeadline.FAILOVER, id="failover over placeholder"),
        pytest.param(True, False, True, 0, AtDeadline.FAILOVER_UNAVAILABLE, id="failover down"),
        pytest.param(True, True, False, 2, AtDeadline.FAILOVER, id="failover after refusals"),
        pytest.param(False, False, True, 0, AtDeadline.PLACEHOLDER, id="placeholder"),
        pytest.param(False, False, True, 1, AtDeadline.PLACEHOLDER, id="placeholder, refused"),
        pytest.param(False, False, False, 1, AtDeadline.REFUSING, id="refusing backend"),
        pytest.param(False, False, False, 0, AtDeadline.NOT_READY, id="not ready"),
    ],
)
def test_at_deadline(
    failover: bool, endpoint: bool, placeholder: bool, refused: int, expected: AtDeadline
) -> None:
    got = at_deadline(
        failover=failover,
        failover_endpoint=endpoint,
        placeholder=placeholder,
        refused_attempts=refused,
    )
    assert got is expected


def _httpso(**spec: object) -> HTTPScaledObject:
    doc = {
        "apiVersion": "http.keda.sh/v1alpha1",
        "kind": "HTTPScaledObject",
        "metadata": {"name": "app", "namespace": "ns"},
        "spec": {
            "hosts": ["app.example"],
            "scaleTargetRef": {"name": "app", "service": "app", "port": 8080},
            **spec,
        },
    }
    return parse_httpscaledobject(doc)


SETTINGS = InterceptorSettings(
    connect_timeout=5.0,
    response_header_timeout=60.0,
    condition_wait=20.0,
    request_timeout=None,
    max_held_per_target=1000,
)


def test_resolve_takes_the_global_settings_without_overrides() -> None:
    p = resolve(_httpso(), SETTINGS)
    assert (p.key, p.backend_key, p.failover_key) == ("ns/app", "ns/app:8080", None)
    assert (p.connect_timeout, p.response_header_timeout, p.request_timeout) == (5.0, 60.0, None)
    assert (p.hold_wait, p.max_held, p.cold_header) == (20.0, 1000, True)
    assert (p.failover_describe, p.statics) == ("", None)
    assert p.placeholder == _httpso().cold_start.placeholder


def test_resolve_prefers_the_targets_overrides() -> None:
    target = _httpso(
        timeouts={"connect": 1, "responseHeader": 2, "request": 3, "conditionWait": 4},
        coldStart={"maxHeldRequests": 7, "responseHeader": False},
    )
    p = resolve(target, SETTINGS)
    assert (p.connect_timeout, p.response_header_timeout, p.request_timeout) == (1.0, 2.0, 3.0)
    assert (p.hold_wait, p.max_held, p.cold_header) == (4.0, 7, False)


def test_resolve_with_failover_holds_for_the_failover_timeout() -> None:
    target = _httpso(
        timeouts={"conditionWait": 4},
        coldStartTimeoutFailoverRef={"service": "static", "port": 80, "timeoutSeconds": 9},
    )
    p = resolve(target, SETTINGS)
    assert (p.failover_key, p.hold_wait) == ("ns/static:80", 9.0)
    assert p.failover_describe == target.failover.backend.describe() != ""  # type: ignore[union-attr]


def test_resolve_compiles_the_targets_static_answers_once() -> None:
    target = _httpso(
        wakeExclusions=[{"paths": [{"type": "Exact", "value": "/healthz"}]}],
        coldStart={"placeholder": {"enabled": True, "status": 503}},
    )
    p = resolve(target, SETTINGS)
    assert p.statics is not None
    assert len(p.statics.rules) == 1
    assert p.statics.maintenance is None
    assert p.placeholder == target.cold_start.placeholder
    assert p.placeholder.enabled


def test_the_global_cold_start_header_switch_wins() -> None:
    settings = InterceptorSettings(cold_start_header=False)
    assert resolve(_httpso(), settings).cold_header is False
