"""Small helpers for cluster tests: bounded waiting and minimal manifests.

Manifests are plain dicts typed `Any`: the client sends dicts as they are, and its model
classes would only add noise here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

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
