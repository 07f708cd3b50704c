"""The harness's API aggregation: an aggregated API server a test runs inside the namespace is
reached through the API server, which authenticates to it with the front-proxy client cert and
passes the caller's identity in the request headers."""

from __future__ import annotations

import asyncio
import json
import ssl
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.cluster.harness import aggregation
from tests.cluster.harness.cluster import SPARE_IPS, Cluster
from tests.cluster.harness.pki import FRONT_PROXY_CLIENT
from tests.cluster.helpers import eventually

pytestmark = pytest.mark.cluster

API = aggregation.AggregatedApi(
    "things.wakeway.test", "v1", "wakeway-harness", "things-api", SPARE_IPS[-1], 28443
)
RESOURCES = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": f"{API.group}/{API.version}",
    "resources": [{"name": "things", "namespaced": False, "kind": "Thing", "verbs": ["get"]}],
}


class _Handler(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]]  # set per server, below

    def do_GET(self) -> None:
        peer = self.connection.getpeercert()
        subject = dict(x[0] for x in peer["subject"])
        self.seen.append(
            {
                "path": self.path,
                "peer": subject,
                "user": self.headers.get_all("X-Remote-User"),
                "groups": self.headers.get_all("X-Remote-Group"),
            }
        )
        if self.path.rstrip("/") == f"/apis/{API.group}/{API.version}":
            body = RESOURCES
        elif self.path == f"/apis/{API.group}/{API.version}/things/one":
            body = {"apiVersion": f"{API.group}/{API.version}", "kind": "Thing", "name": "one"}
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def things_server(cluster: Cluster) -> Iterator[list[dict[str, Any]]]:
    """An HTTPS server on API.ip inside the namespace that trusts only the front-proxy CA, as
    published in kube-system's extension-apiserver-authentication ConfigMap."""

    async def front_proxy_ca() -> str:
        async with cluster.api() as c:
            cm = await client.CoreV1Api(c).read_namespaced_config_map(
                "extension-apiserver-authentication", "kube-system"
            )
        assert json.loads(cm.data["requestheader-allowed-names"]) == [FRONT_PROXY_CLIENT]
        assert json.loads(cm.data["requestheader-username-headers"]) == ["X-Remote-User"]
        return str(cm.data["requestheader-client-ca-file"])

    ca = asyncio.run(front_proxy_ca())
    serving = aggregation.serving_cert(cluster, API)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(serving.cert, serving.key)
    context.verify_mode = ssl.CERT_REQUIRED
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as f:
        f.write(ca)
        f.flush()
        context.load_verify_locations(Path(f.name))
    seen: list[dict[str, Any]] = []
    handler = type("Handler", (_Handler,), {"seen": seen})
    server = HTTPServer((API.ip, API.port), handler, bind_and_activate=False)
    server.socket = context.wrap_socket(cluster.netns.socket(), server_side=True)
    server.socket.setblocking(True)
    server.server_bind()
    server.server_activate()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


async def test_an_aggregated_api_is_served_through_the_api_server(
    cluster: Cluster, things_server: list[dict[str, Any]]
) -> None:
    await aggregation.register(cluster, API)
    try:
        await eventually(
            lambda: _available(cluster), f"APIService {API.name} to be available", within=30
        )
        async with cluster.api() as c:
            thing = await client.CustomObjectsApi(c).get_cluster_custom_object(
                API.group, API.version, "things", "one"
            )
        assert thing["name"] == "one"
        request = next(r for r in things_server if r["path"].endswith("/things/one"))
        assert request["peer"]["commonName"] == FRONT_PROXY_CLIENT
        assert request["user"] == ["wakeway-admin"]
        assert "system:masters" in request["groups"]
    finally:
        await aggregation.unregister(cluster, API)


async def _available(cluster: Cluster) -> bool:
    return await aggregation.available(cluster, API) is None
