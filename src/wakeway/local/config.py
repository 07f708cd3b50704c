"""Local mode's configuration: multi-document YAML files of the same kinds as in Kubernetes.

Every problem is collected and reported at once, each naming the file, the document (its
position and, when readable, kind and name) and the field, so one run shows all that is wrong.
The same reader checks Kubernetes manifests (``kubernetes=True``, for ``wakeway validate``):
HTTPScaledObjects, InterceptorRoutes, HTTPRoutes and ReferenceGrants by the rules the CRD and
the operator apply,
targets of any kind, and a note for each document of another kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from wakeway.model.errors import ModelError
from wakeway.model.httproute import HTTPRoute, parse_httproute
from wakeway.model.httpso import (
    API_VERSION as HTTPSO_API_VERSION,
)
from wakeway.model.httpso import (
    KIND as HTTPSO_KIND,
)
from wakeway.model.httpso import (
    LOCAL_API_VERSION,
    LOCAL_WORKLOAD_KIND,
    HTTPScaledObject,
    parse_httpscaledobject,
)
from wakeway.model.interceptorroute import API_VERSION as ROUTE_API_VERSION
from wakeway.model.interceptorroute import KIND as ROUTE_KIND
from wakeway.model.interceptorroute import parse_interceptorroute
from wakeway.model.local import LocalWorkload, parse_local_workload
from wakeway.model.service import ReferenceGrant, parse_reference_grant

GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"
GRANT_API_VERSION = "gateway.networking.k8s.io/v1beta1"
YAML_SUFFIXES = (".yaml", ".yml")


class ConfigError(Exception):
    """One or more problems in the configuration files; ``problems`` lists each one,
    ``notes`` what Kubernetes manifests may do but is worth a word (a kind wakeway does not
    read, an object defined twice)."""

    def __init__(self, problems: Sequence[str], notes: Sequence[str] = ()) -> None:
        self.problems = tuple(problems)
        self.notes = tuple(notes)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True, slots=True)
class LocalConfig:
    scaled_objects: tuple[HTTPScaledObject, ...] = ()
    routes: tuple[HTTPRoute, ...] = ()
    workloads: Mapping[str, LocalWorkload] = field(default_factory=dict)
    files: tuple[Path, ...] = ()
    grants: tuple[ReferenceGrant, ...] = ()
    # Kubernetes manifests: documents of kinds wakeway does not read, objects defined twice.
    notes: tuple[str, ...] = ()

    def workload_of(self, target: HTTPScaledObject) -> LocalWorkload:
        return self.workloads[f"{target.namespace}/{target.scale_target.name}"]


Parser = Callable[[Mapping[str, Any]], object]
_PARSERS: dict[tuple[str, str], Parser] = {
    (HTTPSO_API_VERSION, HTTPSO_KIND): parse_httpscaledobject,
    (GATEWAY_API_VERSION, "HTTPRoute"): partial(parse_httproute, strict=True),
    (LOCAL_API_VERSION, LOCAL_WORKLOAD_KIND): parse_local_workload,
}
_KUBERNETES_PARSERS: dict[tuple[str, str], Parser] = {
    **_PARSERS,
    (GRANT_API_VERSION, "ReferenceGrant"): partial(parse_reference_grant, strict=True),
    (ROUTE_API_VERSION, ROUTE_KIND): parse_interceptorroute,
}


def yaml_files(paths: Iterable[Path]) -> list[Path]:
    """The files named, and the YAML files directly inside each directory named, sorted."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix in YAML_SUFFIXES))
        else:
            out.append(path)
    return out


def load_config(paths: Iterable[Path], *, kubernetes: bool | None = False) -> LocalConfig:
    """Read and validate every document; raise :class:`ConfigError` listing all problems.

    ``kubernetes``: the files are Kubernetes manifests, not local mode's configuration:
    ReferenceGrants are read too, a scale target may be of any kind, and a document of a kind
    wakeway does not read, and an object defined again (the later replaces it, as when applied),
    are noted in ``notes`` instead of being problems. ``None``: decide from the files (local
    mode's configuration defines a LocalWorkload)."""
    problems: list[str] = []
    notes: list[str] = []
    objects: list[tuple[str, object]] = []
    files = yaml_files(paths)
    if not files:
        raise ConfigError(["no configuration files given (YAML files or directories of them)"])
    if kubernetes is None:
        kubernetes = not any(_defines_workload(file) for file in files)
    for file in files:
        objects.extend(_read_file(file, problems, notes if kubernetes else None))
    config = _assemble(objects, problems, notes if kubernetes else None)
    if problems:
        raise ConfigError(problems, notes)
    return replace(config, files=tuple(files), notes=tuple(notes))


def _read_file(
    file: Path, problems: list[str], notes: list[str] | None
) -> list[tuple[str, object]]:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        problems.append(f"{file}: cannot be read: {exc.strerror or exc}")
        return []
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(file)
        problem = getattr(exc, "problem", None) or str(exc)
        problems.append(f"{where}: not valid YAML: {problem}")
        return []
    out: list[tuple[str, object]] = []
    for index, doc in enumerate(docs, start=1):
        if doc is None:
            continue  # an empty document between two "---"
        where = f"{file} document {index}"
        if not isinstance(doc, Mapping):
            problems.append(f"{where}: must be a mapping with apiVersion, kind, metadata, spec")
            continue
        parsers = _PARSERS if notes is None else _KUBERNETES_PARSERS
        parser = parsers.get((str(doc.get("apiVersion")), str(doc.get("kind"))))
        if parser is None and notes is not None and doc.get("kind") not in _KINDS:
            notes.append(f"{where}: skipped {_describe(doc, '/')}: not a wakeway kind")
            continue
        where = f"{where} ({_describe(doc)})"
        if parser is None:
            known = ", ".join(f"{kind} ({api})" for api, kind in parsers)
            problems.append(
                f"{where}: apiVersion/kind {doc.get('apiVersion')}/{doc.get('kind')} is not "
                f"one {'wakeway' if notes is not None else 'local mode'} reads; "
                f"expected one of {known}"
            )
            continue
        try:
            obj = parser(doc)
        except ModelError as exc:
            problems.extend(exc.located(where).lines())
            continue
        if isinstance(obj, LocalWorkload):
            # Commands run from the directory of the file that defines them, unless told.
            base = file.parent.resolve()
            obj = replace(obj, working_dir=str(base / (obj.working_dir or ".")))
        out.append((where, obj))
    return out


_KINDS = {kind for _, kind in _KUBERNETES_PARSERS}


def _defines_workload(file: Path) -> bool:
    try:
        docs = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False  # reading it again reports why
    return any(isinstance(d, Mapping) and d.get("kind") == LOCAL_WORKLOAD_KIND for d in docs)


def _describe(doc: Mapping[str, Any], sep: str = " ") -> str:
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return f"{doc.get('kind', 'no kind')}{sep}{name or '(no name)'}"


def _assemble(
    objects: list[tuple[str, object]], problems: list[str], notes: list[str] | None
) -> LocalConfig:
    """``notes`` is None for local mode's configuration, a list for Kubernetes manifests."""
    kubernetes = notes is not None
    chosen: dict[tuple[str, str], tuple[str, object]] = {}
    for where, obj in objects:
        kind, key = getattr(obj, "source", type(obj).__name__), getattr(obj, "key", "")
        if (kind, key) in chosen:
            first = chosen[kind, key][0]
            if notes is None:
                problems.append(f"{where}: metadata.name: {kind} {key} is also defined in {first}")
                continue
            notes.append(f"{where}: {kind} {key} is also defined in {first}; this one replaces it")
        chosen[kind, key] = (where, obj)
    scaled: list[HTTPScaledObject] = []
    routes: list[HTTPRoute] = []
    grants: list[ReferenceGrant] = []
    workloads: dict[str, LocalWorkload] = {}
    where_of: dict[str, str] = {}
    for where, obj in chosen.values():
        if isinstance(obj, HTTPScaledObject):
            scaled.append(obj)
            where_of[obj.key] = where
        elif isinstance(obj, HTTPRoute):
            routes.append(obj)
        elif isinstance(obj, LocalWorkload):
            workloads[obj.key] = obj
        elif isinstance(obj, ReferenceGrant):
            grants.append(obj)
    for so in scaled:
        ref = so.scale_target
        where = where_of[so.key]
        if kubernetes and (ref.api_version, ref.kind) != (LOCAL_API_VERSION, LOCAL_WORKLOAD_KIND):
            continue  # a Kubernetes workload (or none): the operator checks it in the cluster
        if (ref.api_version, ref.kind) != (LOCAL_API_VERSION, LOCAL_WORKLOAD_KIND):
            problems.append(
                f"{where}: spec.scaleTargetRef: local mode scales LocalWorkloads only; set "
                f"apiVersion: {LOCAL_API_VERSION} and kind: {LOCAL_WORKLOAD_KIND}"
            )
        elif f"{so.namespace}/{ref.name}" not in workloads:
            problems.append(
                f"{where}: spec.scaleTargetRef.name: no LocalWorkload {so.namespace}/{ref.name} "
                "is defined in the files given"
            )
        if so.failover is not None and f"{so.namespace}/{so.failover.backend.service}" not in (
            workloads
        ):
            problems.append(
                f"{where}: spec.coldStartTimeoutFailoverRef.service: no LocalWorkload "
                f"{so.namespace}/{so.failover.backend.service} is defined in the files given"
            )
    return LocalConfig(tuple(scaled), tuple(routes), workloads, grants=tuple(grants))
