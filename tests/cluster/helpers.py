"""Small helpers for cluster tests: bounded waiting and minimal manifests.

Manifests are plain dicts typed `Any`: the client sends dicts as they are, and its model
classes would only add noise here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from tests.cluster.harness.cluster import Cluster

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    what: str,
    within: float = 30.0,
    interval: float = 0.1,
) -> T:
    """Polls `check` until it returns something other than None/False, for at most `within` s."""
    deadline = time.monotonic() + within
    last: object = None
    while True:
        try:
            result = await check()
            if result is not None and result is not False:
                return result
            last = result
        except AssertionError as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}: {last!r}")
        await asyncio.sleep(interval)


def deployment(
    name: str,
    *,
    replicas: int,
    port: int,
    annotations: dict[str, str] | None = None,
) -> Any:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations or {}},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "containers": [
                        {
                            "name": "http",
                            "image": "wakeway.test/podserver",
                            "ports": [{"containerPort": port, "name": "http"}],
                        }
                    ],
                },
            },
        },
    }


def service(name: str, *, port: int) -> Any:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "selector": {"app": name},
            "ports": [{"name": "http", "port": port, "targetPort": "http"}],
        },
    }


def pod(name: str, *, port: int, annotations: dict[str, str] | None = None) -> Any:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "http",
                    "image": "wakeway.test/podserver",
                    "ports": [{"containerPort": port}],
                }
            ],
        },
    }


def manifest(**fields: Any) -> Any:
    """Any other object, written inline."""
    return fields


@dataclass(frozen=True)
class Answer:
    status: int  # 0: no HTTP answer (body says what failed where)
    body: str
    seconds: float


def http_request(
    cluster: Cluster,
    host: str,
    port: int,
    *,
    path: str = "/",
    headers: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> asyncio.Task[Answer]:
    """A GET of ``path`` to 127.0.0.1:``port`` inside the cluster's namespace (an interceptor), on a
    socket of that namespace; many of them run truly concurrently on this event loop."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())

    async def send() -> Answer:
        began = time.monotonic()
        sock = cluster.netns.socket()
        raw = b""
        stage = "connect"
        try:
            async with asyncio.timeout(timeout):
                await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
                stage = "send"
                reader, writer = await asyncio.open_connection(sock=sock)
                line = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n"
                writer.write(f"{line}\r\n".encode())
                stage = "read"
                while chunk := await reader.read(65536):
                    raw += chunk
                writer.close()
        except (OSError, TimeoutError) as exc:
            sock.close()
            return Answer(0, f"{exc!r} at {stage}: {raw[:60]!r}", time.monotonic() - began)
        head, _, body = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        return Answer(status, body.decode(errors="replace"), time.monotonic() - began)

    return asyncio.create_task(send())
