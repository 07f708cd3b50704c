"""The CRD is the single source of truth: the parser must read only fields the schema declares,
the schema must declare nothing the parser ignores, and the schema's defaults must mean exactly
what the parser does when a field is absent. The cluster tier proves the API server agrees."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from wakeway.model import ModelError
from wakeway.model.fields import parse_duration
from wakeway.model.httpso import API_VERSION, KIND, parse_httpscaledobject

pytestmark = pytest.mark.unit

CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / "http.keda.sh_httpscaledobjects.yaml"

# Leaves with no default: absent has a meaning of its own (a catch-all, "the interceptor's
# global setting", "the Service's name", ...), which the parser gives them.
NO_DEFAULT = {
    "spec.hosts[]",
    "spec.pathPrefixes[]",
    "spec.headers[].name",
    "spec.headers[].value",
    "spec.scaleTargetRef.name",
    "spec.scaleTargetRef.service",
    "spec.scaleTargetRef.port",
    "spec.scaleTargetRef.portName",
    "spec.targetPendingRequests",
    "spec.coldStartTimeoutFailoverRef.service",
    "spec.coldStartTimeoutFailoverRef.port",
    "spec.coldStartTimeoutFailoverRef.portName",
    "spec.timeouts.conditionWait",
    "spec.timeouts.responseHeader",
    "spec.timeouts.connect",
    "spec.timeouts.request",
    "spec.coldStart.maxHeldRequests",
    "spec.routes[].name",
    "spec.routes[].namespace",
    "spec.routes[].ruleName",
    "spec.warmWindows[].schedule",
    "spec.warmWindows[].duration",
    "spec.wakeExclusions[].paths[].value",
    "spec.wakeExclusions[].methods[]",
    "spec.wakeExclusions[].headers[].name",
    "spec.wakeExclusions[].headers[].value",
    "spec.wakeExclusions[].userAgent",
}


def load_crd() -> Any:
    return yaml.safe_load(CRD_PATH.read_text())


def version_schema() -> Any:
    (version,) = load_crd()["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def spec_schema() -> Any:
    return version_schema()["properties"]["spec"]


def walk(schema: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every node of a structural schema with its path (list items as ``[]``)."""
    yield path, schema
    for key, sub in schema.get("properties", {}).items():
        yield from walk(sub, f"{path}.{key}")
    if "items" in schema:
        yield from walk(schema["items"], f"{path}[]")


def leaves(schema: Any, path: str) -> set[str]:
    return {p for p, node in walk(schema, path) if node.get("type") not in ("object", "array")}


def apply_defaults(value: Any, schema: Any) -> Any:
    """Structural defaulting as the API server does it: a missing property with a default gets
    it (then its own nested defaults); only objects that exist are defaulted."""
    if isinstance(value, dict):
        out = dict(value)
        for key, sub in schema.get("properties", {}).items():
            if key not in out and "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
            if key in out:
                out[key] = apply_defaults(out[key], sub)
        return out
    if isinstance(value, list) and "items" in schema:
        return [apply_defaults(item, schema["items"]) for item in value]
    return value


class Reads(dict[str, Any]):
    """A mapping that records every key the parser asks for, present or not."""

    def __init__(self, data: dict[str, Any], path: str, log: set[str]) -> None:
        super().__init__({k: _wrap(v, f"{path}.{k}", log) for k, v in data.items()})
        self._path = path
        self._log = log

    def get(self, key: Any, default: Any = None) -> Any:
        self._log.add(f"{self._path}.{key}")
        return super().get(key, default)

    def __getitem__(self, key: Any) -> Any:
        self._log.add(f"{self._path}.{key}")
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self._log.add(f"{self._path}.{key}")
        return super().__contains__(key)


def _wrap(value: Any, path: str, log: set[str]) -> Any:
    if isinstance(value, dict):
        return Reads(value, path, log)
    if isinstance(value, list):
        return [_wrap(item, f"{path}[]", log) for item in value]
    return value


def manifest(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": "app", "namespace": "team-a"},
        "spec": {"scaleTargetRef": {"service": "app", "port": 8080}, **spec},
    }


# Between them these take every branch of the parser that reads a field.
FULL_MANIFESTS = [
    manifest(
        hosts=["app.example.com"],
        pathPrefixes=["/api"],
        headers=[{"name": "x-tenant", "value": "a"}],
        scaleTargetRef={
            "name": "app",
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "service": "app",
            "port": 8080,
        },
        replicas={"min": 1, "max": 5},
        scalingMetric={"concurrency": {"targetValue": 10}},
        targetPendingRequests=20,
        scaledownPeriod=60,
        initialCooldownPeriod=30,
        coldStartTimeoutFailoverRef={
            "service": "fallback",
            "portName": "http",
            "timeoutSeconds": 5,
        },
        timeouts={"conditionWait": "20s", "responseHeader": "1m", "connect": "2s", "request": "5m"},
        coldStart={
            "maxHeldRequests": 50,
            "responseHeader": False,
            "placeholder": {
                "enabled": True,
                "status": 503,
                "body": "wait",
                "contentType": "text/plain",
                "refreshSeconds": 3,
            },
        },
        routes=[{"name": "web", "namespace": "edge", "ruleName": "api"}],
        warmWindows=[
            {
                "schedule": "0 9 * * MON-FRI",
                "timeZone": "Europe/Berlin",
                "duration": "8h",
                "minReplicas": 2,
                "leadTime": "5m",
            }
        ],
        wakeExclusions=[
            {
                "paths": [{"type": "Exact", "value": "/healthz"}],
                "methods": ["GET"],
                "headers": [{"name": "x-probe", "value": "1"}],
                "userAgent": "(?i)bot",
                "response": {"statusCode": 200, "headers": {"X-A": "b"}, "body": "ok"},
                "responseMode": "Always",
            }
        ],
        maintenance={
            "enabled": True,
            "response": {"statusCode": 503, "headers": {"Retry-After": "600"}, "body": "later"},
        },
    ),
    manifest(
        scalingMetric={"requestRate": {"targetValue": 5, "window": "2m", "granularity": "2s"}}
    ),
    manifest(scaleTargetRef={"service": "app", "portName": "http"}),
]

# Every optional object present and empty, so each nested default is reachable.
SKELETONS = [
    manifest(),
    manifest(
        headers=[{"name": "x-tenant"}],
        replicas={},
        scalingMetric={"concurrency": {}},
        coldStartTimeoutFailoverRef={"service": "fallback", "port": 80},
        timeouts={},
        coldStart={"placeholder": {}},
        routes=[{"name": "web"}],
        warmWindows=[{"schedule": "0 9 * * *", "duration": "1h"}],
        wakeExclusions=[{"paths": [{"value": "/probe"}], "response": {}}],
        maintenance={"response": {}},
    ),
    manifest(wakeExclusions=[{"userAgent": "bot"}], maintenance={}),
    manifest(scalingMetric={"requestRate": {}}, coldStart={}, targetPendingRequests=7),
]


def test_crd_identity() -> None:
    crd = load_crd()
    assert crd["metadata"]["name"] == "httpscaledobjects.http.keda.sh"
    assert crd["spec"]["scope"] == "Namespaced"
    assert "httpso" in crd["spec"]["names"]["shortNames"]
    (version,) = crd["spec"]["versions"]
    assert f"{crd['spec']['group']}/{version['name']}" == API_VERSION
    assert crd["spec"]["names"]["kind"] == KIND
    assert version["served"]
    assert version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == [
        "TargetWorkload",
        "TargetService",
        "Min",
        "Max",
        "Ready",
        "Active",
        "Bound",
        "Age",
    ]


def test_schema_is_structural_every_node_has_a_type() -> None:
    for path, node in walk(version_schema(), ""):
        assert "type" in node, f"{path or '<root>'} has no type"


def test_parser_reads_only_fields_the_schema_declares() -> None:
    declared = {p for p, _ in walk(spec_schema(), "spec")}
    read: set[str] = set()
    for doc in FULL_MANIFESTS:
        parse_httpscaledobject(Reads(doc, "", read))
    read_in_spec = {p.removeprefix(".") for p in read if p.startswith(".spec.")}
    # The keys of a free-form map (additionalProperties) are the user's, not the schema's.
    maps = tuple(
        f"{p}." for p, node in walk(spec_schema(), "spec") if "additionalProperties" in node
    )
    undeclared = {p for p in read_in_spec - declared if not p.startswith(maps)}
    assert not undeclared, f"the parser reads fields the CRD does not declare: {undeclared}"


def test_schema_declares_nothing_the_parser_ignores() -> None:
    read: set[str] = set()
    for doc in FULL_MANIFESTS:
        parse_httpscaledobject(Reads(doc, "", read))
    read_in_spec = {p.removeprefix(".") for p in read}
    # A list of scalars is read whole: reading "spec.hosts" reads "spec.hosts[]".
    ignored = {
        leaf
        for leaf in leaves(spec_schema(), "spec")
        if leaf not in read_in_spec and leaf.removesuffix("[]") not in read_in_spec
    }
    assert not ignored, f"the CRD declares fields the parser never reads: {ignored}"


def test_every_leaf_has_a_default_or_a_documented_meaning_when_absent() -> None:
    for path, node in walk(spec_schema(), "spec"):
        if node.get("type") in ("object", "array"):
            continue
        if path in NO_DEFAULT:
            assert "default" not in node, f"{path} is listed as having no default but has one"
        else:
            assert "default" in node, f"{path} has no default and is not in NO_DEFAULT"


@pytest.mark.parametrize(
    "doc", SKELETONS, ids=["minimal", "every-object", "exclusions", "request-rate"]
)
def test_schema_defaults_mean_what_the_parser_does_when_absent(doc: dict[str, Any]) -> None:
    defaulted = apply_defaults(doc, version_schema())
    assert parse_httpscaledobject(defaulted) == parse_httpscaledobject(doc)


def test_skeletons_reach_every_default_in_the_schema() -> None:
    with_default = {p for p, node in walk(spec_schema(), "spec") if "default" in node}
    reached: set[str] = set()
    for doc in SKELETONS:
        defaulted = apply_defaults(doc, version_schema())
        reached |= {p for p in with_default if _present(defaulted, p.split("."))}
    assert with_default <= reached, f"defaults no skeleton exercises: {with_default - reached}"


def _present(doc: Any, parts: list[str]) -> bool:
    if not parts:
        return True
    head, rest = parts[0], parts[1:]
    key, is_list = (head[:-2], True) if head.endswith("[]") else (head, False)
    if not isinstance(doc, dict) or key not in doc:
        return False
    value = doc[key]
    if is_list:
        return any(_present(item, rest) for item in value)
    return _present(value, rest)


def _duration_regex() -> str:
    node = spec_schema()["properties"]["timeouts"]["properties"]["conditionWait"]
    (rule,) = node["x-kubernetes-validations"]
    match = re.fullmatch(r"self\.matches\('(.*)'\)", rule["rule"])
    assert match is not None
    return match.group(1)


@pytest.mark.parametrize(
    "text",
    ["0s", "250ms", "30s", "5m", "1h30m", "1.5h", "2h45m10s", "", "5", "5 m", "1d", "-1s", "1.s"],
)
def test_duration_rule_agrees_with_the_parser(text: str) -> None:
    in_crd = re.fullmatch(_duration_regex(), text) is not None
    try:
        parse_duration(text, "d")
        in_parser = True
    except ModelError:
        in_parser = False
    assert in_crd == in_parser, text


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "App.Example.COM",
        "*.example.com",
        "*",
        "example.com.",
        "a-b.c",
        "a b",
        "-a.com",
    ],
)
def test_host_pattern_agrees_with_the_parser(host: str) -> None:
    node = spec_schema()["properties"]["hosts"]["items"]
    in_crd = re.fullmatch(node["pattern"].removeprefix("^").removesuffix("$"), host) is not None
    try:
        parse_httpscaledobject(manifest(hosts=[host]))
        in_parser = True
    except ModelError:
        in_parser = False
    assert in_crd == in_parser, host


def test_every_duration_field_carries_the_duration_rule() -> None:
    expected = {
        "spec.scalingMetric.requestRate.window",
        "spec.scalingMetric.requestRate.granularity",
        "spec.timeouts.conditionWait",
        "spec.timeouts.responseHeader",
        "spec.timeouts.connect",
        "spec.timeouts.request",
        "spec.warmWindows[].duration",
        "spec.warmWindows[].leadTime",
    }
    regex = _duration_regex()
    found = {
        path
        for path, node in walk(spec_schema(), "spec")
        if any(regex in r["rule"] for r in node.get("x-kubernetes-validations", []))
        and node.get("type") == "string"
    }
    assert found == expected
    for path in expected:
        node = _node(path)
        assert "maxLength" in node, f"{path}: CEL cost needs a bounded string"


def test_every_validation_rule_has_a_message() -> None:
    for path, node in walk(version_schema(), ""):
        for rule in node.get("x-kubernetes-validations", []):
            assert rule.get("message"), f"{path}: rule {rule['rule']!r} has no message"
            if node.get("type") == "object":
                assert rule.get("fieldPath"), f"{path}: rule {rule['rule']!r} names no field"


def _node(path: str) -> Any:
    return dict(walk(spec_schema(), "spec"))[path]


def _rule_regex(path: str) -> str:
    (rule,) = _node(path)["x-kubernetes-validations"]
    match = re.fullmatch(r"self\.matches\('(.*)'\)", rule["rule"])
    assert match is not None
    return match.group(1).replace("\\\\", "\\")  # the CEL string literal's escapes


@pytest.mark.parametrize(
    "text",
    [
        "0 9 * * 1-5",
        " 0  9 * *   MON-FRI ",
        "*/15 * * * *",
        "0 9 * *",
        "0 9 * * * *",
        "@daily",
        "0 9 * * 1;2",
        "61 9 * * *",
        "0 9 31 2 *",
    ],
)
def test_schedule_rule_rejects_nothing_the_parser_accepts(text: str) -> None:
    """The CRD checks the shape (5 fields of cron characters); the parser checks the rest, so
    what the API server refuses, the parser refuses too."""
    in_crd = re.fullmatch(_rule_regex("spec.warmWindows[].schedule"), text) is not None
    window = {"schedule": text, "duration": "1h"}
    try:
        parse_httpscaledobject(manifest(warmWindows=[window]))
        in_parser = True
    except ModelError:
        in_parser = False
    assert in_crd or not in_parser, text
    assert in_crd == (len(text.split()) == 5 and ";" not in text), text


@pytest.mark.parametrize(
    ("zone", "in_crd", "in_parser"),
    [
        ("UTC", True, True),
        ("Europe/Berlin", True, True),
        ("America/Argentina/Buenos_Aires", True, True),
        ("Etc/GMT+5", True, True),
        ("Mars/Olympus_Mons", True, False),  # the shape is right; the zone does not exist
        ("../etc/passwd", False, False),
        ("Europe Berlin", False, False),
    ],
)
def test_time_zone_rule_and_parser(zone: str, in_crd: bool, in_parser: bool) -> None:
    assert (re.fullmatch(_rule_regex("spec.warmWindows[].timeZone"), zone) is not None) == in_crd
    window = {"schedule": "0 9 * * *", "timeZone": zone, "duration": "1h"}
    if in_parser:
        parse_httpscaledobject(manifest(warmWindows=[window]))
        return
    with pytest.raises(ModelError, match=r"spec\.warmWindows\[0\]\.timeZone: "):
        parse_httpscaledobject(manifest(warmWindows=[window]))
