"""The real KEDA operator and its metrics API server, out of cluster, inside the harness
cluster's network namespace.

What the operator needs there: its CRDs (from the release in the module cache), its
cluster-object namespace, a certificate directory (ca.crt, tls.crt, tls.key) for its metrics
gRPC service, WATCH_NAMESPACE, and ports on the namespace's loopback. Leader election,
certificate rotation and webhook/APIService patching are off: no Deployment, Secret or webhook
exists to manage. It runs as the cluster admin, as its controller-runtime client would with
KEDA's own RBAC.

The metrics API server (keda-adapter) serves ``external.metrics.k8s.io`` to the HPA controller
through the API server's aggregation layer (tests/cluster/harness/aggregation.py): it listens on
one of the harness's spare addresses with a serving cert from the cluster CA, authenticates the
API server's front-proxy client through kube-system's extension-apiserver-authentication
ConfigMap, and asks the operator's metrics gRPC service for each value, with the operator's
certificate directory for mutual TLS (its ``--cert-dir``, as in KEDA's own install).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import http.client
import ipaddress
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.cluster.harness.aggregation import AggregatedApi, serving_cert
from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.processes import Proc
from tests.cluster.wakeway_setup import apply, documents
from wakeway.kube import Kube, NotFound
from wakeway.kube.resources import CRDS, NAMESPACES, SCALEDOBJECTS

NAMESPACE = "keda"
EXTERNAL_METRICS = ("external.metrics.k8s.io", "v1beta1")


def crd_documents(crds: Path) -> list[dict[str, Any]]:
    return documents(*sorted(crds.glob("*.yaml")))


async def install_crds(kube: Kube, docs: list[dict[str, Any]], within: float = 60.0) -> list[str]:
    """KEDA's CRDs, all of them (``crd_documents``): the operator runs a controller per kind.

    Returns the names of those that were not there before, for ``remove_crds``."""
    names = [d["metadata"]["name"] for d in docs]
    created: list[str] = []
    for name in names:
        try:
            await kube.get(CRDS, None, name)
        except NotFound:
            created.append(name)
    await apply(kube, docs)
    deadline = time.monotonic() + within
    for name in names:
        while not _established(await kube.get(CRDS, None, name)):
            if time.monotonic() > deadline:
                raise AssertionError(f"KEDA's CRD {name} was not established in time")
            await asyncio.sleep(0.2)
    try:
        await kube.get(NAMESPACES, None, NAMESPACE)
    except NotFound:
        await kube.create(NAMESPACES, None, {"metadata": {"name": NAMESPACE}})
    return created


async def remove_crds(kube: Kube, names: list[str], within: float = 60.0) -> None:
    """Deletes the CRDs and waits until they are gone (with every object of their kinds).

    KEDA puts a finalizer on its ScaledObjects and is stopped by now: clear it first."""
    if "scaledobjects.keda.sh" in names:
        for so in (await kube.list(SCALEDOBJECTS, None)).items:
            meta = so["metadata"]
            with contextlib.suppress(NotFound):
                await kube.merge_patch(
                    SCALEDOBJECTS,
                    meta["namespace"],
                    meta["name"],
                    {"metadata": {"finalizers": None}},
                )
    for name in names:
        with contextlib.suppress(NotFound):
            await kube.delete(CRDS, None, name)
    deadline = time.monotonic() + within
    for name in names:
        while True:
            try:
                await kube.get(CRDS, None, name)
            except NotFound:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"KEDA's CRD {name} was not removed in time")
            await asyncio.sleep(0.2)


def _established(crd: dict[str, Any]) -> bool:
    conditions = crd.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def write_certs(directory: Path) -> Path:
    """A CA and a serving certificate for 127.0.0.1, as KEDA's cert dir expects them."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    later = now + datetime.timedelta(days=2)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("wakeway-interop-ca"))
        .issuer_name(name("wakeway-interop-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("keda-operator"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("keda-operator.keda.svc"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / "ca.crt").write_bytes(ca.public_bytes(pem))
    (directory / "tls.crt").write_bytes(cert.public_bytes(pem))
    (directory / "tls.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    for f in directory.iterdir():
        f.chmod(0o600)
    return directory


def _certs(cluster: Cluster) -> Path:
    """The operator's certificate directory, shared with the adapter (written once per run)."""
    directory = cluster.dir / "keda-certs"
    return directory if (directory / "tls.key").exists() else write_certs(directory)


def _env(cluster: Cluster, watch_namespace: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "KUBECONFIG": str(cluster.netns_kubeconfig),
        "WATCH_NAMESPACE": watch_namespace,  # "" for every namespace
        "KEDA_CLUSTER_OBJECT_NAMESPACE": NAMESPACE,
        "POD_NAMESPACE": NAMESPACE,
    }


def start_operator(
    cluster: Cluster,
    binary: Path,
    *,
    watch_namespace: str,
    probe_port: int,
    metrics_service_port: int,
) -> Proc:
    certs = _certs(cluster)
    argv = [
        str(binary),
        "--leader-elect=false",
        f"--cert-dir={certs}",
        f"--ca-dir={certs}",
        "--enable-cert-rotation=false",
        "--enable-webhook-patching=false",
        "--enable-apiservice-patching=false",
        "--enable-prometheus-metrics=false",
        f"--health-probe-bind-address=127.0.0.1:{probe_port}",
        f"--metrics-service-bind-address=127.0.0.1:{metrics_service_port}",
        "--zap-log-level=info",
        "--zap-encoder=console",
    ]
    return cluster.popen_in_netns("keda-operator", argv, env=_env(cluster, watch_namespace))


def metrics_api(ip: str, port: int) -> AggregatedApi:
    """The APIService KEDA's install registers, served by the adapter at ip:port."""
    group, version = EXTERNAL_METRICS
    return AggregatedApi(group, version, NAMESPACE, "keda-operator-metrics-apiserver", ip, port)


def start_adapter(
    cluster: Cluster,
    binary: Path,
    api: AggregatedApi,
    *,
    watch_namespace: str,
    metrics_service_port: int,
    prometheus_port: int,
) -> Proc:
    """keda-adapter serving ``api``; register the APIService (aggregation.register) to use it.

    It listens for the API server on api.ip:api.port, and for Prometheus on every address at
    ``prometheus_port`` (it has no flag for the address)."""
    serving = serving_cert(cluster, api)
    admin = str(cluster.netns_kubeconfig)
    argv = [
        str(binary),
        f"--bind-address={api.ip}",
        f"--secure-port={api.port}",
        f"--tls-cert-file={serving.cert}",
        f"--tls-private-key-file={serving.key}",
        f"--cert-dir={_certs(cluster)}",  # its client cert for the operator's gRPC service
        f"--metrics-service-address=127.0.0.1:{metrics_service_port}",
        f"--lister-kubeconfig={admin}",
        f"--authentication-kubeconfig={admin}",
        f"--authorization-kubeconfig={admin}",
        f"--port={prometheus_port}",
        "--zap-log-level=info",
        "--zap-encoder=console",
    ]
    return cluster.popen_in_netns("keda-adapter", argv, env=_env(cluster, watch_namespace))


def healthy(cluster: Cluster, probe_port: int) -> bool:
    def get() -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", probe_port, timeout=2)
        try:
            conn.request("GET", "/readyz")
            return conn.getresponse().status == 200
        finally:
            conn.close()

    try:
        return cluster.netns.call(get)
    except (OSError, http.client.HTTPException):
        return False


def condition(obj: dict[str, Any], kind: str) -> str | None:
    """The status ("True"/"False"/"Unknown") of one of a ScaledObject's conditions."""
    for c in obj.get("status", {}).get("conditions") or []:
        if c.get("type") == kind:
            return str(c.get("status"))
    return None
