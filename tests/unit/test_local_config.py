"""Local mode's configuration files: what is read, and errors that name file, document, field."""

from __future__ import annotations

from pathlib import Path

import pytest

from wakeway.local.config import ConfigError, load_config
from wakeway.model import ModelError
from wakeway.model.local import parse_local_workload

pytestmark = pytest.mark.unit

WORKLOAD = """\
apiVersion: local.wakeway.dev/v1alpha1
kind: LocalWorkload
metadata: {name: web}
spec:
  command: ["python3", "app.py", "--port", "{port}"]
  env: {MODE: demo, WORKERS: 2}
  readiness: {httpGet: {path: /healthz}}
  startupTimeout: 15s
  stopGracePeriod: 2s
"""
SCALED = """\
apiVersion: http.keda.sh/v1alpha1
kind: HTTPScaledObject
metadata: {name: web}
spec:
  hosts: [web.localhost]
  scaleTargetRef: {apiVersion: local.wakeway.dev/v1alpha1, kind: LocalWorkload, name: web}
  scaledownPeriod: 5
"""
ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: site}
spec:
  rules:
    - backendRefs: [{name: wakeway-interceptor, port: 8080}]
"""


def write(tmp_path: Path, name: str, *docs: str) -> Path:
    path = tmp_path / name
    path.write_text("---\n".join(docs))
    return path


def problems_of(*paths: Path) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as err:
        load_config(paths)
    return err.value.problems


def test_reads_every_kind_from_files_and_directories(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", WORKLOAD, SCALED)
    write(tmp_path, "b.yml", ROUTE)
    (tmp_path / "notes.txt").write_text("not yaml config")
    config = load_config([tmp_path])
    [so] = config.scaled_objects
    assert so.key == "default/web"
    assert so.backend.key("default") == "default/web"  # the workload is its own service
    assert [r.key for r in config.routes] == ["default/site"]
    workload = config.workload_of(so)
    assert workload.argv(4321) == ["python3", "app.py", "--port", "4321"]
    assert workload.env == {"MODE": "demo", "WORKERS": "2"}
    assert workload.readiness.type == "HTTP"
    assert workload.readiness.path == "/healthz"
    assert (workload.startup_timeout, workload.stop_grace_period) == (15.0, 2.0)
    assert workload.working_dir == str(tmp_path.resolve())  # commands run beside their file


def test_field_error_names_file_document_and_field(tmp_path: Path) -> None:
    bad = SCALED.replace("scaledownPeriod: 5", "scaledownPeriod: soon")
    path = write(tmp_path, "demo.yaml", WORKLOAD, bad)
    [problem] = problems_of(path)
    assert problem.startswith(f"{path} document 2 (HTTPScaledObject web): spec.scaledownPeriod:")
    assert "integer" in problem


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "demo.yaml",
        WORKLOAD.replace('command: ["python3", "app.py", "--port", "{port}"]', "command: []"),
        SCALED.replace("name: web}\n", "name: missing}\n"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n",
        "- just\n- a list\n",
    )
    problems = problems_of(path)
    assert len(problems) == 4, problems
    assert "document 1 (LocalWorkload web): spec.command: is required" in problems[0]
    assert (
        "document 3 (Service x): apiVersion/kind v1/Service is not one local mode reads"
        in (problems[1])
    )
    assert "document 4: must be a mapping" in problems[2]
    assert "spec.scaleTargetRef.name: no LocalWorkload default/missing" in problems[3]


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", "kind: [unclosed\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:2:1: not valid YAML")


def test_duplicate_object_and_non_local_target(tmp_path: Path) -> None:
    k8s_target = SCALED.replace(
        "{apiVersion: local.wakeway.dev/v1alpha1, kind: LocalWorkload, name: web}",
        "{name: web, service: web, port: 80}",
    ).replace("name: web}\n", "name: other}\n", 1)
    path = write(tmp_path, "demo.yaml", WORKLOAD, WORKLOAD, k8s_target)
    problems = problems_of(path)
    assert (
        "document 2 (LocalWorkload web): metadata.name: LocalWorkload default/web is also"
        in (problems[0])
    )
    assert "local mode scales LocalWorkloads only" in problems[1]


def test_missing_file_and_no_files(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path / "nope.yaml")
    assert "nope.yaml: cannot be read" in problem
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no configuration files" in problems_of(empty)[0]


@pytest.mark.parametrize(
    ("spec", "path", "fragment"),
    [
        ({"command": "python3 app.py"}, "spec.command", "must be a list"),
        ({"command": ["x"], "port": 0}, "spec.port", "at least 1"),
        ({"command": ["x"], "env": {"A": None}}, "spec.env.A", "must be a string"),
        ({"command": ["x"], "readiness": {}}, "spec.readiness", "httpGet"),
        (
            {"command": ["x"], "readiness": {"httpGet": {"path": "x"}}},
            "spec.readiness.httpGet.path",
            "start with",
        ),
        (
            {"command": ["x"], "readiness": {"httpGet": {}, "tcpSocket": {}}},
            "spec.readiness",
            "not both",
        ),
        ({"command": ["x"], "startupTimeout": "0s"}, "spec.startupTimeout", "greater than zero"),
        ({"command": ["x"], "stopGracePeriod": "1 minute"}, "spec.stopGracePeriod", "duration"),
        ({"command": ["x"], "appProtocol": 2}, "spec.appProtocol", "must be a string"),
    ],
)
def test_local_workload_errors(spec: dict[str, object], path: str, fragment: str) -> None:
    doc = {
        "apiVersion": "local.wakeway.dev/v1alpha1",
        "kind": "LocalWorkload",
        "metadata": {"name": "w"},
        "spec": spec,
    }
    with pytest.raises(ModelError) as err:
        parse_local_workload(doc)
    assert err.value.path == path
    assert fragment in err.value.message


@pytest.mark.parametrize(
    ("app_protocol", "h2c"),
    [(None, False), ("http", False), ("kubernetes.io/h2c", True), ("grpc", True), ("H2C", True)],
)
def test_local_workload_app_protocol(app_protocol: str | None, h2c: bool) -> None:
    spec: dict[str, object] = {"command": ["x"]}
    if app_protocol is not None:
        spec["appProtocol"] = app_protocol
    doc = {
        "apiVersion": "local.wakeway.dev/v1alpha1",
        "kind": "LocalWorkload",
        "metadata": {"name": "w"},
        "spec": spec,
    }
    workload = parse_local_workload(doc)
    assert workload.app_protocol == app_protocol
    assert workload.h2c is h2c


def test_the_shipped_demo_is_valid() -> None:
    demo = Path(__file__).resolve().parents[2] / "examples" / "local"
    config = load_config([demo])
    assert len(config.scaled_objects) == 2
    assert set(config.workloads) == {"default/hello", "default/api"}
