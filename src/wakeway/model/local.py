"""LocalWorkload (``local.wakeway.dev/v1alpha1``): a command that serves HTTP on a port.

Local mode starts it on the first request, marks it ready when its readiness check passes and
stops it after its HTTPScaledObject's quiet period.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from wakeway.model import fields as f
from wakeway.model.errors import ModelError
from wakeway.model.httpso import LOCAL_API_VERSION, LOCAL_WORKLOAD_KIND
from wakeway.model.meta import ObjectMeta, parse_meta
from wakeway.model.service import H2C_APP_PROTOCOLS

PORT_PLACEHOLDER = "{port}"
DEFAULT_STARTUP_TIMEOUT = 60.0
DEFAULT_STOP_GRACE_PERIOD = 10.0


@dataclass(frozen=True, slots=True)
class Readiness:
    """TCP: the port accepts connections. HTTP: GET ``path`` answers below 500."""

    type: Literal["TCP", "HTTP"] = "TCP"
    path: str = "/"


@dataclass(frozen=True, slots=True)
class LocalWorkload:
    meta: ObjectMeta
    command: tuple[str, ...]
    port: int | None = None  # None: a free port is chosen at each start
    env: Mapping[str, str] = field(default_factory=dict)
    readiness: Readiness = field(default_factory=Readiness)
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
    stop_grace_period: float = DEFAULT_STOP_GRACE_PERIOD
    working_dir: str | None = None
    # What the workload speaks, as a Service port's appProtocol: kubernetes.io/h2c, h2c, grpc
    # or http2 mean HTTP/2 without TLS; None (or anything else) means HTTP/1.1.
    app_protocol: str | None = None

    @property
    def key(self) -> str:
        return self.meta.key

    @property
    def h2c(self) -> bool:
        """Whether the interceptor forwards to this workload over HTTP/2 (h2c)."""
        return (self.app_protocol or "").lower() in H2C_APP_PROTOCOLS

    def argv(self, port: int) -> list[str]:
        return [arg.replace(PORT_PLACEHOLDER, str(port)) for arg in self.command]


def parse_local_workload(
    doc: Mapping[str, Any], default_namespace: str = "default"
) -> LocalWorkload:
    """Parse and validate one LocalWorkload document, strictly: one :class:`ModelError` lists
    every problem, each naming its field path, an unknown field among them."""
    return f.parse_document(doc, lambda d: _parse(d, default_namespace))


def _parse(doc: Mapping[str, Any], default_namespace: str) -> LocalWorkload:
    if doc.get("apiVersion") != LOCAL_API_VERSION:
        raise ModelError(
            "apiVersion", f"must be {LOCAL_API_VERSION!r}, got {doc.get('apiVersion')!r}"
        )
    if doc.get("kind") != LOCAL_WORKLOAD_KIND:
        raise ModelError("kind", f"must be {LOCAL_WORKLOAD_KIND!r}, got {doc.get('kind')!r}")
    no_meta = ObjectMeta(default_namespace, "")
    meta = f.guard(doc, "metadata", lambda: parse_meta(doc, default_namespace), no_meta)
    spec = f.req_mapping(doc, "spec", "")
    p = "spec"
    # Each field is read on its own (f.guard), so one run reports every problem.
    return LocalWorkload(
        meta=meta,
        command=f.guard(spec, "command", lambda: _command(spec, p), ("",)),
        port=f.guard(
            spec, "port", lambda: f.opt_int(spec, "port", p, minimum=1, maximum=65535), None
        ),
        env=f.guard(spec, "env", lambda: _env(spec, p), {}),
        readiness=f.guard(spec, "readiness", lambda: _readiness(spec, p), Readiness()),
        startup_timeout=f.guard(
            spec, "startupTimeout", lambda: _startup_timeout(spec, p), DEFAULT_STARTUP_TIMEOUT
        ),
        stop_grace_period=f.guard(
            spec,
            "stopGracePeriod",
            lambda: f.opt_duration(spec, "stopGracePeriod", p, DEFAULT_STOP_GRACE_PERIOD),
            DEFAULT_STOP_GRACE_PERIOD,
        ),
        working_dir=f.guard(spec, "workingDir", lambda: f.opt_str(spec, "workingDir", p), None),
        app_protocol=f.guard(
            spec, "appProtocol", lambda: f.opt_str(spec, "appProtocol", p) or None, None
        ),
    )


def _command(spec: Mapping[str, Any], p: str) -> tuple[str, ...]:
    raw_command = f.opt_list(spec, "command", p)
    if not raw_command:
        raise ModelError("spec.command", "is required: the program and its arguments, as a list")
    command = tuple(f.as_str(arg, f"spec.command[{i}]") for i, arg in enumerate(raw_command))
    if not command[0]:
        raise ModelError("spec.command[0]", "must name a program")
    return command


def _env(spec: Mapping[str, Any], p: str) -> dict[str, str]:
    env_raw = f.opt_mapping(spec, "env", p) or {}
    return {str(k): _env_value(v, f"spec.env.{k}") for k, v in env_raw.items()}


def _startup_timeout(spec: Mapping[str, Any], p: str) -> float:
    startup = f.opt_duration(spec, "startupTimeout", p, DEFAULT_STARTUP_TIMEOUT)
    if startup <= 0:
        raise ModelError("spec.startupTimeout", "must be greater than zero")
    return startup


def _env_value(value: Any, path: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ModelError(path, "must be a string (quote numbers and booleans in YAML)")
    return str(value)


def _readiness(spec: Mapping[str, Any], p: str) -> Readiness:
    raw = f.opt_mapping(spec, "readiness", p)
    if raw is None:
        return Readiness()
    path = f"{p}.readiness"
    http = f.opt_mapping(raw, "httpGet", path)
    tcp = f.opt_mapping(raw, "tcpSocket", path)
    if http is not None and tcp is not None:
        raise ModelError(path, "set one of 'httpGet' and 'tcpSocket', not both")
    if http is not None:
        route = f.opt_str(http, "path", f"{path}.httpGet", "/")
        if not route.startswith("/"):
            raise ModelError(f"{path}.httpGet.path", f"{route!r} must start with '/'")
        return Readiness("HTTP", route)
    if tcp is not None:
        return Readiness("TCP")
    raise ModelError(path, "set 'httpGet: {path: /...}' or 'tcpSocket: {}'")
