"""``wakeway status|wake|sleep|explain --local`` against a real ``wakeway local`` process: the
commands run as processes too, and talk to its admin port."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wakeway.ctl.output import STATUS_COLUMNS

pytestmark = pytest.mark.component

APP = Path(__file__).with_name("local_app.py")
CONFIG = f"""\
apiVersion: local.wakeway.dev/v1alpha1
kind: LocalWorkload
metadata: {{name: app}}
spec:
  command: [{json.dumps(sys.executable)}, {json.dumps(str(APP))}, "--port", "{{port}}"]
  startupTimeout: 20s
  stopGracePeriod: 5s
---
apiVersion: http.keda.sh/v1alpha1
kind: HTTPScaledObject
metadata: {{name: app}}
spec:
  hosts: [app.localhost]
  scaleTargetRef: {{apiVersion: local.wakeway.dev/v1alpha1, kind: LocalWorkload, name: app}}
  scaledownPeriod: 300
---
apiVersion: http.keda.sh/v1alpha1
kind: HTTPScaledObject
metadata: {{name: api}}
spec:
  scaleTargetRef: {{apiVersion: local.wakeway.dev/v1alpha1, kind: LocalWorkload, name: app}}
  routes: [{{name: shop, ruleName: api}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: shop}}
spec:
  hostnames: [shop.localhost]
  parentRefs: [{{name: gw}}]
  rules:
    - name: api
      matches: [{{path: {{type: PathPrefix, value: /api}}}}]
      backendRefs: [{{name: wakeway-interceptor, port: 8080}}]
"""


class Local:
    def __init__(self, proc: subprocess.Popen[bytes], proxy: int, admin: int) -> None:
        self.proc, self.proxy, self.admin = proc, proxy, admin

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, "--local", f"127.0.0.1:{self.admin}")

    def status(self, name: str) -> dict[str, Any]:
        done = self.cli("status", name, "-o", "json")
        assert done.returncode == 0, done.stderr
        items: list[dict[str, Any]] = json.loads(done.stdout)["items"]
        assert len(items) == 1
        return items[0]

    def until(self, check: Callable[[], bool], within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while not check():
            assert time.monotonic() < deadline, "condition not reached in time"
            time.sleep(0.05)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAKEWAY_", "KUBE"))}
    return subprocess.run(
        [sys.executable, "-m", "wakeway.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Local]:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    log = tmp_path / "local.log"
    args = ["local", str(config), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]
    with launch(args, log) as (proc, listening):
        yield Local(proc, int(listening["port"]), int(listening["admin_port"]))


@contextlib.contextmanager
def launch(args: list[str], log: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    """``wakeway <args>`` logging JSON to ``log``, once it listens: the process and its
    ``listening`` event; terminated on exit."""
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wakeway.cli", "--log-format", "json", *args], stderr=sink
        )
    try:
        deadline = time.monotonic() + 30
        while (listening := _listening(log)) is None:
            assert proc.poll() is None, f"wakeway local exited: {log.read_text()}"
            assert time.monotonic() < deadline, "wakeway local did not listen in time"
            time.sleep(0.05)
        yield proc, listening
    finally:
        proc.terminate()
        proc.wait(30)


def _listening(log: Path) -> dict[str, Any] | None:
    for line in log.read_text().splitlines():
        doc = json.loads(line) if line.startswith("{") else {}
        if doc.get("event") == "listening":
            return doc
    return None


def test_status_wake_and_sleep(local: Local) -> None:
    first = local.status("app")
    assert first | {"lastWake": None} == {
        "namespace": "default",
        "name": "app",
        "state": "asleep",
        "replicas": 0,
        "ready": 0,
        "inFlight": 0,
        "held": 0,
        "routesBound": 0,
        "routes": 0,
        "lastWake": None,
        "lastSleep": None,
        "mode": "local",
        "workload": "LocalWorkload/app",
    }
    woke = local.cli("wake", "app")
    assert (woke.returncode, woke.stdout) == (0, "default/app: starting its workload\n")
    local.until(lambda: local.status("app")["state"] == "awake")
    awake = local.status("app")
    assert (awake["replicas"], awake["ready"]) == (1, 1)
    assert awake["lastWake"] is not None
    # One object's workload is another's too: `api` (bound to HTTPRoute shop) shares it.
    api = local.status("api")
    assert (api["state"], api["routesBound"], api["routes"]) == ("awake", 1, 1)

    # A request in flight (a server-sent event stream) is counted, and keeps it awake.
    conn = http.client.HTTPConnection("127.0.0.1", local.proxy, timeout=30)
    conn.request("GET", "/events", headers={"Host": "app.localhost"})
    resp = conn.getresponse()
    assert resp.status == 200
    resp.readline()
    local.until(lambda: local.status("app")["inFlight"] == 1)
    refused = local.cli("sleep", "app")
    assert refused.returncode == 1
    assert "1 request(s) in flight" in refused.stderr
    conn.close()
    local.until(lambda: local.status("app")["inFlight"] == 0)

    slept = local.cli("sleep", "app", "-o", "yaml")
    assert slept.returncode == 0, slept.stderr
    assert "default/app: stopping its workload" in slept.stdout
    local.until(lambda: local.status("app")["state"] == "asleep")
    assert local.status("app")["lastSleep"] is not None


def test_status_table_lists_every_object(local: Local) -> None:
    done = local.cli("status")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["NAMESPACE", *STATUS_COLUMNS]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["default", "app", "asleep"],
        ["default", "api", "asleep"],
    ]


def test_explain_names_the_rule_and_why_not_the_others(local: Local) -> None:
    done = local.cli("explain", "--host", "shop.localhost", "--path", "/api/items", "-o", "json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["winner"]["object"] == "default/api"
    assert (doc["winner"]["route"], doc["winner"]["rule"]) == ("default/shop", "api")
    why = {c["object"]: (c["verdict"], c["reason"]) for c in doc["candidates"]}
    assert why["default/app"] == ("host", "host shop.localhost does not match app.localhost")
    text = local.cli("explain", "--host", "app.localhost", "--path", "/x", "-H", "X-A: 1")
    assert text.returncode == 0, text.stderr
    assert "goes to: default/app\n" in text.stdout
    assert "default/api: HTTPRoute default/shop rule api match #0" in text.stdout


def test_errors_are_one_line_with_an_exit_code(local: Local) -> None:
    missing = local.cli("wake", "nope")
    assert missing.returncode == 1
    assert missing.stderr == (
        "wakeway wake: no HTTPScaledObject 'nope' (known: default/app, default/api)\n"
    )
    bad_header = local.cli("explain", "--host", "a", "-H", "novalue")
    assert bad_header.returncode == 2
    assert "-H 'novalue': expected NAME:VALUE" in bad_header.stderr
    assert local.cli("status", "-A").returncode == 2
    local.proc.terminate()
    local.proc.wait(30)
    gone = local.cli("status")
    assert gone.returncode == 3
    assert "cannot reach local mode's admin port" in gone.stderr
    assert "Traceback" not in gone.stderr
