"""TLS from watched ``kubernetes.io/tls`` Secrets on a real API server: ``wakeway interceptor``
under its own ServiceAccount (config/base plus the Role of
config/components/interceptor-tls-secrets) serves the certificate of a labelled Secret of its
namespace, serves a changed Secret to new connections while an old connection keeps working,
and ignores Secrets without the label or in other namespaces."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.certs import TestCA, peer_names, peer_serial
from tests.cluster.harness.binaries import Binaries
from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.processes import stop
from tests.cluster.helpers import eventually
from tests.cluster.render import documents as rendered
from tests.cluster.render import helm_template, kustomize_build
from tests.cluster.wakeway_setup import (
    REPO,
    apply,
    documents,
    install_crd,
    install_interceptor_rbac,
    start_interceptor,
)
from wakeway.kube import Kube
from wakeway.kube.resources import NAMESPACES, SECRETS

pytestmark = pytest.mark.cluster

ROLE = REPO / "config" / "components" / "interceptor-tls-secrets" / "role.yaml"


def tls_secret(name: str, pem: tuple[bytes, bytes], label: str | None = "true") -> Any:
    cert, key = pem
    labels = {} if label is None else {"wakeway.dev/tls-certificate": label}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": labels},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(cert).decode(),
            "tls.key": base64.b64encode(key).decode(),
        },
    }


def free_port(cluster: Cluster) -> int:
    def pick() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    return cluster.netns.call(pick)


def handshake(cluster: Cluster, port: int, ctx: ssl.SSLContext, name: str) -> ssl.SSLSocket:
    """A TLS connection to the interceptor from inside the network namespace."""

    def connect() -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        return ctx.wrap_socket(raw, server_hostname=name)

    return cluster.netns.call(connect)


def answers(conn: ssl.SSLSocket) -> bytes:
    """The answer's first bytes to a request on an open connection: the interceptor's own
    (404 for no route, or 503 before its routing table is in; either says it is alive)."""
    conn.sendall(b"GET / HTTP/1.1\r\nHost: nowhere.example\r\n\r\n")
    return conn.recv(4096)


async def test_labelled_secrets_are_served_and_rotated(cluster: Cluster, tmp_path: Path) -> None:
    ca = TestCA.make()
    suffix = uuid.uuid4().hex[:6]
    secure, other = f"secure-{suffix}.example.com", f"other-{suffix}.example.com"
    kube = await Kube.connect(str(cluster.kubeconfig))
    proc = None
    conns: list[ssl.SSLSocket] = []
    try:
        await install_crd(kube)
        await install_interceptor_rbac(kube)
        await apply(kube, documents(ROLE))
        first = ca.issue(secure)
        await kube.create(SECRETS, "wakeway", tls_secret(f"secure-{suffix}", first[:2]))
        # Neither of these may be served: no label, and another namespace.
        await kube.create(
            SECRETS, "wakeway", tls_secret(f"unlabelled-{suffix}", ca.issue(other)[:2], None)
        )
        tenant = f"tenant-{suffix}"
        await kube.create(NAMESPACES, None, {"metadata": {"name": tenant}})
        await kube.create(SECRETS, tenant, tls_secret("claim", ca.issue(other)[:2]))
        kubeconfig = await cluster.service_account_kubeconfig(
            "wakeway", "wakeway-interceptor", in_netns=True
        )
        port, admin = free_port(cluster), free_port(cluster)
        proc = start_interceptor(
            cluster, kubeconfig, port, admin, WAKEWAY_INTERCEPTOR_TLS_SECRETS="true"
        )
        client = ca.client()

        async def served(name: str, ctx: ssl.SSLContext = client) -> ssl.SSLSocket | None:
            try:
                conn = await asyncio.to_thread(handshake, cluster, port, ctx, name)
            except (OSError, ssl.SSLError):
                return None
            conns.append(conn)
            return conn

        try:
            old = await eventually(lambda: served(secure), "the Secret's certificate served")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{proc.tail()}") from None
        assert peer_names(old.getpeercert(binary_form=True)) == [secure]
        assert peer_serial(old.getpeercert(binary_form=True)) == first[2]

        unchecked = ca.client()
        unchecked.check_hostname = False
        conn = await served(other, unchecked)
        assert conn is not None
        assert peer_names(conn.getpeercert(binary_form=True)) == [secure]  # the default

        second = ca.issue(secure)
        current = await kube.get(SECRETS, "wakeway", f"secure-{suffix}")
        rotated = tls_secret(f"secure-{suffix}", second[:2])
        rotated["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        await kube.replace(SECRETS, "wakeway", rotated)

        async def new_serial() -> bool:
            conn = await served(secure)
            return conn is not None and peer_serial(conn.getpeercert(binary_form=True)) == second[2]

        await eventually(new_serial, "the rotated certificate served to new connections")
        status = await asyncio.to_thread(answers, old)
        assert status.startswith((b"HTTP/1.1 404 ", b"HTTP/1.1 503 ")), status
        assert peer_serial(old.getpeercert(binary_form=True)) == first[2]
    finally:
        for conn in conns:
            conn.close()
        if proc is not None:
            stop(proc, 5.0)
        await kube.close()


def tls_parts(text: str) -> tuple[set[tuple[str, str]], list[Any]]:
    """The Secret-reading RBAC objects of a rendering, and the interceptor's TLS variables."""
    docs = rendered(text)
    rbac = {
        (d["kind"], d["metadata"]["name"])
        for d in docs
        if any("secrets" in rule.get("resources", []) for rule in d.get("rules", []))
        or d["metadata"]["name"] == "wakeway-interceptor-tls"
    }
    env = [
        e
        for d in docs
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "wakeway-interceptor"
        for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
        if e["name"].startswith("WAKEWAY_INTERCEPTOR_TLS")
    ]
    return rbac, env


def test_secret_access_only_when_tls_from_secrets_is_on(binaries: Binaries) -> None:
    on = {("Role", "wakeway-interceptor-tls"), ("RoleBinding", "wakeway-interceptor-tls")}
    variable = [{"name": "WAKEWAY_INTERCEPTOR_TLS_SECRETS", "value": "true"}]
    assert tls_parts(helm_template(binaries)) == (set(), [])
    assert tls_parts(kustomize_build(binaries, "config/base")) == (set(), [])
    assert tls_parts(helm_template(binaries, "interceptor.tlsSecrets=true")) == (on, variable)
    overlay = kustomize_build(binaries, "config/overlays/tls-secrets")
    assert tls_parts(overlay) == (on, variable)
