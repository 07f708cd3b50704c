"""The one place that calls the Kubernetes API (through kubernetes_asyncio's ApiClient).

Everything is plain JSON here and typed errors out; informers turn the JSON into frozen
dataclasses with the model's parsers, so nothing above this package sees raw API objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client.exceptions import ApiException

from wakeway.kube.errors import Conflict, KubeError, Unavailable, from_response
from wakeway.kube.resources import EVENTS, Resource

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"

log = logging.getLogger("wakeway.kube")
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[JSON]
    resource_version: str


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: JSON


@dataclass(frozen=True, slots=True)
class Scale:
    replicas: int  # spec.replicas: what is asked for
    ready: int  # status.replicas as the /scale subresource reports it
    selector: str
    resource_version: str


class Kube:
    """An API connection. Create with :meth:`connect`; close with :meth:`close`."""

    def __init__(self, api: k8s.ApiClient, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._api = api
        self.timeout = timeout
        # Whether the last call got no answer at all; set again when one does.
        self._down = False
        self._back = asyncio.Event()
        self._back.set()
        self._reconnect_handlers: list[Callable[[], None]] = []

    # --- reachability ---

    @property
    def down(self) -> bool:
        """The last call got no answer at all: the API server is unreachable."""
        return self._down

    def on_reconnect(self, handler: Callable[[], None]) -> None:
        """``handler()`` when the API server answers again after calls that got no answer
        (never blocks: enqueue work)."""
        self._reconnect_handlers.append(handler)

    async def wait_answering(self, delay: float) -> None:
        """Wait ``delay`` seconds, or less: while the API server is unreachable, until any
        call on this connection gets an answer again. So one caller's retry that gets through
        ends every other caller's backoff."""
        if not self._down:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._back.wait(), delay)

    def _answered(self) -> None:
        if not self._down:
            return
        self._down = False
        self._back.set()
        log.info("the API server answers again")
        for handler in list(self._reconnect_handlers):
            try:
                handler()
            except Exception:  # a broken handler must not break the call that got through
                log.exception("reconnect handler failed")

    def _unanswered(self) -> None:
        if not self._down:
            self._down = True
            self._back.clear()

    @classmethod
    async def connect(
        cls,
        kubeconfig: str | None = None,
        request_timeout: float = DEFAULT_TIMEOUT,
        context: str | None = None,
    ) -> Kube:
        """From a kubeconfig file (its current context, or ``context``), or from the pod's
        service account when ``kubeconfig`` is None. ValueError names a kubeconfig that cannot
        be used."""
        cfg = k8s.Configuration()
        if kubeconfig:
            try:
                await k8s_config.load_kube_config(
                    config_file=kubeconfig, context=context, client_configuration=cfg
                )
            except (k8s_config.ConfigException, OSError, ValueError) as exc:
                raise ValueError(f"kubeconfig {kubeconfig}: {exc}") from None
        else:
            k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        return cls(k8s.ApiClient(cfg), request_timeout)

    async def close(self) -> None:
        await self._api.close()

    # --- generic calls ---

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
        request_timeout: float | None = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            answer = await self._api.call_api(
                path,
                method,
                query_params=list((query or {}).items()),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                response_types_map={200: "object", 201: "object", 202: "object"},
                _return_http_data_only=True,
                _request_timeout=request_timeout or self.timeout,
            )
        except ApiException as exc:
            self._answered()
            raise from_response(exc.status or 0, exc.body) from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self._unanswered()
            raise Unavailable(
                0, "Unavailable", f"{method} {path}: {exc or type(exc).__name__}"
            ) from None
        self._answered()
        return answer

    async def list(
        self, resource: Resource, namespace: str | None = None, label_selector: str | None = None
    ) -> ListResult:
        query = {"labelSelector": label_selector} if label_selector else None
        doc = await self.request("GET", resource.path(namespace), query=query)
        items = list(doc.get("items") or [])
        for item in items:  # list items carry no apiVersion/kind; parsers want them
            item.setdefault("apiVersion", resource.api_version)
            item.setdefault("kind", resource.kind)
        return ListResult(items, str(doc.get("metadata", {}).get("resourceVersion", "")))

    async def get(self, resource: Resource, namespace: str | None, name: str) -> JSON:
        doc: JSON = await self.request("GET", resource.path(namespace, name))
        return doc

    async def create(self, resource: Resource, namespace: str | None, body: JSON) -> JSON:
        doc: JSON = await self.request("POST", resource.path(namespace), body=body)
        return doc

    async def replace(self, resource: Resource, namespace: str | None, body: JSON) -> JSON:
        name = body["metadata"]["name"]
        doc: JSON = await self.request("PUT", resource.path(namespace, name), body=body)
        return doc

    async def merge_patch(
        self, resource: Resource, namespace: str | None, name: str, patch: JSON, sub: str = ""
    ) -> JSON:
        doc: JSON = await self.request(
            "PATCH", resource.path(namespace, name, sub), body=patch, content_type=MERGE_PATCH
        )
        return doc

    async def delete(self, resource: Resource, namespace: str | None, name: str) -> None:
        await self.request(
            "DELETE", resource.path(namespace, name), body={"propagationPolicy": "Background"}
        )

    async def replace_status(self, resource: Resource, obj: JSON) -> JSON:
        """PUT the status subresource; ``obj`` carries the resourceVersion it was based on, so a
        concurrent change gives :class:`~wakeway.kube.errors.Conflict`."""
        meta = obj["metadata"]
        doc: JSON = await self.request(
            "PUT", resource.path(meta.get("namespace"), meta["name"], "status"), body=obj
        )
        return doc

    async def update_status(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        status: JSON,
        attempts: int = 5,
        rebase: Callable[[JSON, Any], JSON] | None = None,
    ) -> bool:
        """Make the object's status exactly ``status``; False when it already was (no write).

        Reads the object fresh and writes with its resourceVersion; a conflict (someone wrote
        in between) is retried with a fresh read. ``rebase(status, stored)``, when given, first
        adjusts ``status`` to the status as stored (e.g. keeps condition transition times).
        """
        for _ in range(attempts):
            obj = await self.get(resource, namespace, name)
            wanted = status if rebase is None else rebase(status, obj.get("status"))
            if obj.get("status") == wanted:
                return False
            obj["status"] = wanted
            try:
                await self.replace_status(resource, obj)
                return True
            except Conflict:
                continue
        raise Conflict(409, "Conflict", f"status of {namespace}/{name}: still conflicting")

    # --- scale subresource ---

    async def get_scale(self, resource: Resource, namespace: str, name: str) -> Scale:
        doc = await self.request("GET", resource.path(namespace, name, "scale"))
        return _scale(doc)

    async def set_scale(
        self, resource: Resource, namespace: str, name: str, replicas: int
    ) -> Scale:
        doc = await self.merge_patch(
            resource, namespace, name, {"spec": {"replicas": replicas}}, sub="scale"
        )
        return _scale(doc)

    async def scale_from_zero(
        self, resource: Resource, namespace: str, name: str, replicas: int
    ) -> bool:
        """Set ``replicas`` through /scale only if they are 0 now, in one write (a JSON patch
        whose ``test`` fails on the server otherwise): no read first, no lost update. False
        when the workload was not at zero (or is gone)."""
        # A Scale's spec has only ``replicas``, omitted when 0: an empty spec is zero replicas.
        patch = [
            {"op": "test", "path": "/spec", "value": {}},
            {"op": "add", "path": "/spec/replicas", "value": replicas},
        ]
        try:
            await self.request(
                "PATCH",
                resource.path(namespace, name, "scale"),
                body=patch,
                content_type=JSON_PATCH,
            )
        except KubeError as exc:
            if isinstance(exc, Unavailable):
                raise
            log.debug("%s/%s: not scaled from zero: %s", namespace, name, exc)
            return False
        return True

    # --- discovery and events ---

    async def has_resource(self, group: str, version: str, plural: str) -> bool:
        """Whether the API server serves ``group/version`` with resource ``plural``."""
        try:
            doc = await self.request("GET", f"/apis/{group}/{version}")
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return any(r.get("name") == plural for r in doc.get("resources") or [])

    async def create_event(
        self,
        involved: Mapping[str, str],
        reason: str,
        message: str,
        *,
        type: str = "Normal",
        component: str = "wakeway",
    ) -> None:
        """A core/v1 Event about ``involved`` (apiVersion, kind, namespace, name, uid)."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        namespace = involved["namespace"]
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{involved['name']}.", "namespace": namespace},
            "involvedObject": dict(involved),
            "reason": reason,
            "message": message[:1024],
            "type": type,
            "source": {"component": component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self.create(EVENTS, namespace, body)

    # --- watch ---

    async def watch(
        self,
        resource: Resource,
        namespace: str | None,
        resource_version: str,
        *,
        server_timeout: int = 300,
        silence: float = 330.0,
    ) -> AsyncIterator[WatchEvent]:
        """Events after ``resource_version`` until the server ends the watch.

        The server closes it after ``server_timeout`` seconds; a connection that stays silent
        for ``silence`` seconds (bookmarks included) is treated as dead. An expired
        resourceVersion raises :class:`~wakeway.kube.errors.Gone`.
        """
        query = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(server_timeout),
        }
        try:
            resp = await self._api.call_api(
                resource.path(namespace),
                "GET",
                query_params=list(query.items()),
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=aiohttp.ClientTimeout(
                    connect=self.timeout, sock_connect=self.timeout
                ),
            )
        except ApiException as exc:
            self._answered()
            raise from_response(exc.status or 0, exc.body) from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self._unanswered()
            raise Unavailable(0, "Unavailable", f"watch {resource.plural}: {exc}") from None
        self._answered()
        try:
            if resp.status != 200:
                raise from_response(resp.status, await resp.read())
            while True:
                try:
                    async with asyncio.timeout(silence):
                        line = await resp.content.readline()
                except TimeoutError:
                    raise Unavailable(0, "Silent", f"watch {resource.plural}: silent") from None
                except (aiohttp.ClientError, OSError) as exc:
                    self._unanswered()
                    raise Unavailable(0, "Unavailable", f"watch {resource.plural}: {exc}") from None
                if not line:
                    return  # the server ended the watch
                event = json.loads(line)
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    raise from_response(int(obj.get("code") or 0), obj)
                obj.setdefault("apiVersion", resource.api_version)
                obj.setdefault("kind", resource.kind)
                yield WatchEvent(str(kind), obj)
        finally:
            resp.release()


def _scale(doc: Mapping[str, Any]) -> Scale:
    spec = doc.get("spec") or {}
    status = doc.get("status") or {}
    return Scale(
        replicas=int(spec.get("replicas") or 0),
        ready=int(status.get("replicas") or 0),
        selector=str(status.get("selector") or ""),
        resource_version=str(doc.get("metadata", {}).get("resourceVersion", "")),
    )
