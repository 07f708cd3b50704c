"""Wake exclusions and maintenance: parsing names the field, the decision is a pure table."""

from __future__ import annotations

from typing import Any

import pytest

from wakeway.gateway.request import Request
from wakeway.interceptor.policy import resolve
from wakeway.interceptor.settings import InterceptorSettings
from wakeway.interceptor.statics import Statics, Verdict, compile_statics, decide
from wakeway.model import ModelError
from wakeway.model.exclusions import EXCLUDED_BODY, MAINTENANCE_BODY, Maintenance
from wakeway.model.httpso import HTTPScaledObject, parse_httpscaledobject

pytestmark = pytest.mark.unit

BOT = "(?i)(bot|crawler|spider)"


def obj(**spec: Any) -> HTTPScaledObject:
    return parse_httpscaledobject(
        {
            "apiVersion": "http.keda.sh/v1alpha1",
            "kind": "HTTPScaledObject",
            "metadata": {"name": "app", "namespace": "team-a"},
            "spec": {"scaleTargetRef": {"service": "app", "port": 8080}, **spec},
        }
    )


def statics(**spec: Any) -> Statics:
    compiled = resolve(obj(**spec), InterceptorSettings()).statics
    assert compiled is not None
    return compiled


def req(path: str = "/", method: str = "GET", **headers: str) -> Request:
    return Request(
        method, "app.example.com", path, "", {k.replace("_", "-"): v for k, v in headers.items()}
    )


EXCLUSIONS = [
    {"userAgent": BOT},
    {
        "paths": [{"type": "Exact", "value": "/healthz"}],
        "response": {"statusCode": 200, "body": "ok\n"},
        "responseMode": "Always",
    },
    {"paths": [{"value": "/probe"}], "methods": ["HEAD", "OPTIONS"]},
    {"headers": [{"name": "X-Probe", "value": "1"}, {"name": "X-Monitor"}]},
]

# (request, target has a ready endpoint, expected: None = usual; "forward"; or the answer's status)
TABLE: list[tuple[str, Request, bool, str | int | None]] = [
    ("a user's request", req("/", user_agent="Mozilla/5.0"), False, None),
    ("a user's request, awake", req("/", user_agent="Mozilla/5.0"), True, None),
    ("no user agent at all", req("/"), False, None),
    ("a bot while asleep", req("/", user_agent="Googlebot/2.1"), False, 503),
    (
        "a bot while awake",
        req("/x", user_agent="Mozilla/5.0 (compatible; bingbot)"),
        True,
        "forward",
    ),
    ("health check asleep", req("/healthz"), False, 200),
    ("health check awake (Always)", req("/healthz"), True, 200),
    ("health check is Exact", req("/healthz/deep"), False, None),
    ("prefix needs its method", req("/probe/x", "GET"), False, None),
    ("prefix and method", req("/probe/x", "HEAD"), False, 503),
    ("prefix is element-wise", req("/probes", "HEAD"), False, None),
    ("headers all match", req("/", x_probe="1", x_monitor="y"), False, 503),
    ("one header missing", req("/", x_probe="1"), False, None),
    ("header value differs", req("/", x_probe="2", x_monitor="y"), False, None),
    ("first match wins", req("/healthz", user_agent="bot"), False, 503),
]


@pytest.mark.parametrize(
    ("request_", "ready", "expected"), [r[1:] for r in TABLE], ids=[r[0] for r in TABLE]
)
def test_decision_table(request_: Request, ready: bool, expected: str | int | None) -> None:
    verdict = decide(statics(wakeExclusions=EXCLUSIONS), request_, ready=ready)
    if expected is None:
        assert verdict is None
    elif expected == "forward":
        assert verdict is not None
        assert verdict.forward
    else:
        assert verdict is not None
        assert not verdict.forward
        assert verdict.answer.status == expected


@pytest.mark.parametrize("ready", [False, True])
def test_maintenance_answers_everything_and_wins(ready: bool) -> None:
    compiled = statics(wakeExclusions=EXCLUSIONS, maintenance={})
    for r in (req("/"), req("/healthz"), req("/", user_agent="bot")):
        verdict = decide(compiled, r, ready=ready)
        assert isinstance(verdict, Verdict)
        assert (verdict.forward, verdict.answer.kind, verdict.answer.status) == (
            False,
            "maintenance",
            503,
        )
        assert verdict.answer.body == MAINTENANCE_BODY
        assert verdict.answer.origin == "spec.maintenance"


def test_nothing_configured_compiles_to_nothing() -> None:
    assert resolve(obj(), InterceptorSettings()).statics is None
    assert resolve(obj(maintenance={"enabled": False}), InterceptorSettings()).statics is None
    assert compile_statics((), Maintenance()) is None


def test_default_answer_is_503_with_retry_after() -> None:
    verdict = decide(
        statics(wakeExclusions=[{"userAgent": "bot"}]), req(user_agent="bot"), ready=False
    )
    assert verdict is not None
    answer = verdict.answer
    assert (answer.kind, answer.origin, answer.status) == ("static", "spec.wakeExclusions[0]", 503)
    assert answer.content_type == "text/plain; charset=utf-8"
    assert answer.extra == (("Retry-After", "60"),)
    assert answer.body == EXCLUDED_BODY


def test_configured_headers_are_sent_as_written() -> None:
    ex = {
        "userAgent": "bot",
        "response": {
            "statusCode": 503,
            "headers": {"Content-Type": "text/html", "Retry-After": "3600", "X-Why": "asleep"},
            "body": "<p>asleep</p>",
        },
    }
    verdict = decide(statics(wakeExclusions=[ex]), req(user_agent="bot"), ready=False)
    assert verdict is not None
    assert verdict.answer.content_type == "text/html"
    assert verdict.answer.extra == (("Retry-After", "3600"), ("X-Why", "asleep"))
    ok = decide(
        statics(wakeExclusions=[{**ex, "response": {"statusCode": 200}}]),
        req(user_agent="bot"),
        ready=False,
    )
    assert ok is not None
    assert ok.answer.extra == ()


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        (
            {"wakeExclusions": [{"userAgent": "bot(?=x)"}]},
            "spec.wakeExclusions[0].userAgent",
            "is not an RE2 regular expression",
        ),
        (
            {"wakeExclusions": [{"userAgent": "(unclosed"}]},
            "spec.wakeExclusions[0].userAgent",
            "is not an RE2 regular expression",
        ),
        (
            {"wakeExclusions": [{"response": {"statusCode": 200}}]},
            "spec.wakeExclusions[0]",
            "at least one of",
        ),
        (
            {"wakeExclusions": [{"userAgent": "b"}, {"paths": [{"value": "healthz"}]}]},
            "spec.wakeExclusions[1].paths[0].value",
            "must start with '/'",
        ),
        (
            {"wakeExclusions": [{"paths": [{"type": "Regex", "value": "/x"}]}]},
            "spec.wakeExclusions[0].paths[0].type",
            "is not one of",
        ),
        (
            {"wakeExclusions": [{"methods": ["GE T"]}]},
            "spec.wakeExclusions[0].methods[0]",
            "not an HTTP method",
        ),
        (
            {"wakeExclusions": [{"userAgent": "b", "responseMode": "Never"}]},
            "spec.wakeExclusions[0].responseMode",
            "is not one of",
        ),
        (
            {"wakeExclusions": [{"userAgent": "b", "response": {"statusCode": 99}}]},
            "spec.wakeExclusions[0].response.statusCode",
            "at least 200",
        ),
        (
            {
                "wakeExclusions": [
                    {"userAgent": "b", "response": {"headers": {"Content-Length": "1"}}}
                ]
            },
            "spec.wakeExclusions[0].response.headers.Content-Length",
            "set by the interceptor",
        ),
        (
            {"wakeExclusions": [{"headers": [{"name": "a"}, {"name": "A"}]}]},
            "spec.wakeExclusions[0].headers[1].name",
            "listed twice",
        ),
        (
            {"maintenance": {"response": {"statusCode": 600}}},
            "spec.maintenance.response.statusCode",
            "at most 599",
        ),
        ({"maintenance": {"enabled": "yes"}}, "spec.maintenance.enabled", "true or false"),
        (
            {"wakeExclusions": [{"userAgent": "b", "respnse": {}}]},
            "spec.wakeExclusions[0].respnse",
            "unknown field",
        ),
    ],
)
def test_bad_input_names_the_field(spec: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ModelError) as err:
        obj(**spec)
    assert any(p.path == path and message in p.message for p in err.value.problems), err.value


def test_maintenance_present_means_on() -> None:
    assert obj(maintenance={}).maintenance.enabled
    assert not obj().maintenance.enabled
    assert (
        obj(maintenance={"response": {"body": "back at 6"}}).maintenance.response.body
        == "back at 6"
    )
