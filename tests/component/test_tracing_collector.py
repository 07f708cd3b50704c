"""OpenTelemetry tracing against a real OpenTelemetry Collector: ``wakeway local``, configured by
the standard OTEL_* variables only, exports its spans over OTLP/HTTP to a Collector built from
Go modules (tests/interop/otelcol: the OTLP receiver and the debug exporter, which writes each
span it received to a file the test reads). A cold request and a warm one, their spans as the
Collector received them, and the traceparent the workload received."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
from loadtest.common import free_port

from tests.component.test_local_mode import config
from tests.interop import binaries

pytestmark = pytest.mark.component

T = TypeVar("T")
APP = Path(__file__).with_name("trace_app.py")
CONFIG = config(app=APP, scaledown=300)  # one workload, host app.localhost
COLLECTOR = """\
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{port}
exporters:
  debug:
    verbosity: detailed
    use_internal_logger: false
    output_paths: [{spans}]
service:
  telemetry:
    metrics:
      level: none  # no metrics server of its own on a fixed port
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
"""
CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


def until(check: Callable[[], T | None], what: str, within: float = 30.0) -> T:
    """``check()``'s first value that is not None, polled for at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while (value := check()) is None:
        assert time.monotonic() < deadline, f"{what}: not within {within:.0f} s"
        time.sleep(0.05)
    return value


@dataclass
class Span:
    """One span as the debug exporter printed it; attribute values as printed (``Str(x)``)."""

    fields: dict[str, str] = field(default_factory=dict)  # Trace ID, Parent ID, ID, Name, Kind, …
    attributes: dict[str, str] = field(default_factory=dict)
    resource: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.fields["Name"]


FIELD = re.compile(r"^ {4}(\S.*?)\s*: ?(.*)$")
ATTRIBUTE = re.compile(r"^ {5}-> ([^:]+): (.*)$")


def parse(text: str) -> list[Span]:
    """The spans in the debug exporter's detailed output."""
    spans: list[Span] = []
    resource: dict[str, str] = {}
    section: dict[str, str] | None = None  # where the ``->`` lines go
    for line in text.splitlines():
        if line.startswith("ResourceSpans #"):
            resource, section = {}, None
        elif line == "Resource attributes:":
            section = resource
        elif line.startswith("Span #"):
            spans.append(Span(resource=resource))
            section = None
        elif line == "Attributes:" and spans:
            section = spans[-1].attributes
        elif (m := ATTRIBUTE.match(line)) and section is not None:
            section[m[1]] = m[2]
        elif (m := FIELD.match(line)) and spans:
            spans[-1].fields[m[1]] = m[2]
        else:
            section = None  # Events:, Links: and the like
    return spans


@dataclass(frozen=True)
class Collector:
    port: int
    spans: Path

    def trace(self, trace_id: str, names: set[str]) -> dict[str, Span] | None:
        """The spans of ``trace_id`` by name, once all of ``names`` have arrived."""
        text = self.spans.read_text() if self.spans.exists() else ""
        found = {s.name: s for s in parse(text) if s.fields.get("Trace ID") == trace_id}
        return found if set(found) >= names else None


@pytest.fixture(scope="module")
def otelcol() -> Path:
    return binaries.required(binaries.otelcol, "the tracing test with a real Collector")


@pytest.fixture
def collector(otelcol: Path, tmp_path: Path) -> Iterator[Collector]:
    port, spans = free_port(), tmp_path / "spans.txt"
    config = tmp_path / "otelcol.yaml"
    config.write_text(COLLECTOR.format(port=port, spans=json.dumps(str(spans))))
    log = tmp_path / "otelcol.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [str(otelcol), "--config", str(config)], stdout=sink, stderr=subprocess.STDOUT
        )
    try:

        def ready() -> bool | None:
            assert proc.poll() is None, f"the collector exited: {log.read_text()}"
            return True if "Everything is ready" in log.read_text() else None

        until(ready, "the collector ready")
        yield Collector(port, spans)
    finally:
        proc.terminate()
        proc.wait(30)


@dataclass(frozen=True)
class Local:
    proxy: int

    def get(self, path: str, headers: dict[str, str] | None = None) -> dict[str, str | None]:
        """GET ``path`` for app.localhost: the trace fields the workload received."""
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy, timeout=30)
        try:
            conn.request("GET", path, headers={"Host": "app.localhost", **(headers or {})})
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, body
            fields: dict[str, str | None] = json.loads(body)
            return fields
        finally:
            conn.close()


@pytest.fixture
def local(collector: Collector, tmp_path: Path) -> Iterator[Local]:
    """``wakeway local`` tracing to ``collector`` by the standard OTEL_* variables alone."""
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAKEWAY_", "OTEL_"))}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{collector.port}"
    env["OTEL_BSP_SCHEDULE_DELAY"] = "100"  # milliseconds: export soon after a span ends
    log = tmp_path / "local.log"
    argv = [sys.executable, "-m", "wakeway.cli", "--log-format", "json", "local", str(config)]
    argv += ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]
    with log.open("w") as sink:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=sink)
    try:

        def listening() -> int | None:
            assert proc.poll() is None, f"wakeway local exited: {log.read_text()}"
            for line in log.read_text().splitlines():
                event = json.loads(line) if line.startswith("{") else {}
                if event.get("event") == "listening":
                    return int(event["port"])
            return None

        yield Local(until(listening, "wakeway local listening"))
    finally:
        proc.terminate()
        proc.wait(30)


def traceparent(fields: dict[str, str | None]) -> tuple[str, str]:
    """The trace id and parent span id of the traceparent the workload received."""
    value = fields["traceparent"]
    assert value is not None, "the workload received no traceparent"
    version, trace_id, parent_id, flags = value.split("-")
    assert version == "00", value
    assert int(flags, 16) & 1, value  # sampled (0x02, if set, says the trace id is random)
    return trace_id, parent_id


def test_a_real_collector_receives_the_spans_of_a_cold_and_a_warm_request(
    collector: Collector, local: Local
) -> None:
    cold = local.get("/cold?x=1")  # the workload is asleep: this request wakes it
    caller = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    warm = local.get("/warm", {"traceparent": caller})

    # The cold request began a trace; the backend's traceparent names its forward span.
    trace_id, forward_id = traceparent(cold)
    names = {"GET", "route", "hold", "wake", "forward"}
    s = until(lambda: collector.trace(trace_id, names), "the cold request's spans")
    assert set(s) == names
    root = s["GET"]
    assert root.resource["service.name"] == "Str(wakeway-interceptor)"
    assert (root.fields["Kind"], root.fields["Parent ID"]) == ("Server", "")
    assert root.attributes == {
        "http.request.method": "Str(GET)",
        "url.path": "Str(/cold)",
        "wakeway.target": "Str(default/app)",
        "http.response.status_code": "Int(200)",
    }
    for name in ("route", "hold", "wake", "forward"):
        assert s[name].fields["Parent ID"] == root.fields["ID"], name
    assert s["route"].fields["Kind"] == "Internal"
    assert s["route"].attributes == {"wakeway.target": "Str(default/app)"}
    for name in ("hold", "wake"):
        assert s[name].fields["Kind"] == "Internal"
        assert s[name].attributes["wakeway.outcome"] == "Str(released)", name
        assert s[name].attributes["wakeway.backend"].startswith("Str("), name
    forward = s["forward"]
    assert forward.fields["ID"] == forward_id
    assert forward.fields["Kind"] == "Client"
    assert forward.attributes["http.response.status_code"] == "Int(200)"
    assert re.fullmatch(r"Str\(127\.0\.0\.1:\d+\)", forward.attributes["server.address"])
    assert all(span.fields["Status code"] == "Unset" for span in s.values())

    # The warm request went on in the caller's trace: no hold, no wake.
    trace_id, forward_id = traceparent(warm)
    assert trace_id == CALLER_TRACE
    names = {"GET", "route", "forward"}
    w = until(lambda: collector.trace(CALLER_TRACE, names), "the warm request's spans")
    assert set(w) == names
    assert w["GET"].fields["Parent ID"] == CALLER_SPAN
    assert w["GET"].attributes["url.path"] == "Str(/warm)"
    assert w["forward"].fields["ID"] == forward_id
    for name in ("route", "forward"):
        assert w[name].fields["Parent ID"] == w["GET"].fields["ID"], name
