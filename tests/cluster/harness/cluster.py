"""A real Kubernetes control plane in a private network namespace, for tests and developers.

Layout inside the namespace: `lo` carries POD_CIDR, so every address in it is local. The API
server listens on API_IP (also the fake node's InternalIP), the other components talk to it
there, and pods get IPs from the rest of the range. Outside the namespace, a loopback port on
the host forwards to the API server, so tests and kubectl need no routing into the namespace.

Teardown is idempotent and runs from `stop()`, from atexit, and on SIGTERM/SIGHUP; a namespace
left by a harness process that was killed outright is removed by the next one to start.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import datetime
import http.client
import ipaddress
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import yaml
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from . import kubeconfig, netns, pki
from .binaries import REPO, Binaries
from .forward import Forwarder
from .processes import Proc, ProcessGroup

POD_CIDR = "10.244.0.0/24"
API_IP = "10.244.0.1"  # the first address of POD_CIDR, which pods never get
API_PORT = 6443
SERVICE_CIDR = "10.96.0.0/24"
FIRST_POD_HOST = 10  # pods get .10 and up
# Addresses of POD_CIDR that pods never get: for servers a test runs inside the namespace that
# the API server must reach by address (an aggregated API server behind an APIService).
SPARE_IPS = tuple(str(ipaddress.ip_network(POD_CIDR)[host]) for host in range(2, FIRST_POD_HOST))
# The HPA controller acts every HPA_SYNC_PERIOD and scales down to the highest recommendation
# of the last HPA_DOWNSCALE_STABILIZATION (for HPAs without their own behavior): the defaults,
# 15 s and 5 min, would make scale-down tests wait minutes.
HPA_SYNC_PERIOD = "1s"
HPA_DOWNSCALE_STABILIZATION = "5s"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
TMP_PREFIX = "wakeway-cluster-"
CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "endpointslice-controller",
    "endpoints-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
    "horizontal-pod-autoscaler-controller",
)
# kwok runs the nodes only: a pod stage that matches no pod keeps kwok's default pod stages
# (which would mark every pod Ready at once) off, and leaves pod status to the pod runner.
_KWOK_CONFIG = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pods-belong-to-the-pod-runner
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.name'
      operator: 'In'
      values: ['']
  next: {}
"""


class ClusterError(Exception):
    pass


async def found(call: Awaitable[Any]) -> bool:
    """Awaits an API call: False if it answered 404 Not Found."""
    try:
        await call
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: str
    headers: dict[str, str]


def _get(ip: str, port: int, path: str, timeout: float) -> HttpAnswer:
    conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        body = response.read().decode(errors="replace")
        return HttpAnswer(response.status, body, dict(response.getheaders()))
    finally:
        conn.close()


_live: set[Cluster] = set()
_live_lock = threading.Lock()


def _stop_all_live() -> None:
    with _live_lock:
        clusters = list(_live)
    for cluster in clusters:
        cluster.stop()


def _interrupt_on_signal(signum: int, frame: FrameType | None) -> None:
    # TERM/HUP act like Ctrl-C: pytest ends the session (a SystemExit would only fail the
    # current test), and finally blocks, fixture teardown and atexit all run.
    raise KeyboardInterrupt(f"signal {signum}")


_hooks_installed = False


def _install_teardown_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_stop_all_live)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _interrupt_on_signal)


def _remove_stale_tempdirs() -> None:
    for entry in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}*"):
        if not netns.owner_alive(netns.PREFIX + entry.name.removeprefix(TMP_PREFIX)):
            shutil.rmtree(entry, ignore_errors=True)


class Cluster:
    """One cluster. `start()` brings it up (or raises ClusterError and leaves nothing behind);
    `stop()` tears everything down and may be called any number of times."""

    def __init__(self, binaries: Binaries, *, nodes: int = 1, log: Callable[[str], None] = print):
        self.binaries = binaries
        self.node_names = [f"kwok-node-{i}" for i in range(nodes)]
        self._log = log
        tag = f"{os.getpid()}-{id(self) & 0xFFFF:04x}"
        self.netns = netns.NetNs(netns.PREFIX + tag, f"{API_IP}/{POD_CIDR.split('/')[1]}")
        self.dir = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{tag}-"))
        self.logs = self.dir / "logs"
        self.logs.mkdir()
        self.procs = ProcessGroup(self.logs)
        self._forwarder: Forwarder | None = None
        self._reaper: subprocess.Popen[bytes] | None = None
        self._pki: pki.Pki | None = None
        self._stopped = False
        self._stop_lock = threading.Lock()
        self.startup_seconds = 0.0
        # Registered from birth: the temp dir above is already something to clean up.
        with _live_lock:
            _live.add(self)
        _install_teardown_hooks()
        # Filled in by start():
        self.kubeconfig = self.dir / "admin.kubeconfig"  # for the host: loopback forward
        self.netns_kubeconfig = self.dir / "admin-netns.kubeconfig"  # for processes inside

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        began = time.monotonic()
        try:
            self._start(began + timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began

    def _start(self, deadline: float) -> None:
        for name in netns.remove_stale():
            self._log(f"cluster: removed a namespace left by a dead harness: {name}")
        _remove_stale_tempdirs()
        self.netns.create()
        self._start_reaper()
        self._pki = keys = pki.generate(
            self.dir / "pki", server_ips=(API_IP, "127.0.0.1", "10.96.0.1")
        )
        in_ns = f"https://{API_IP}:{API_PORT}"
        kubeconfig.write(
            self.netns_kubeconfig,
            server=in_ns,
            ca=keys.ca.cert,
            user="admin",
            client_cert=keys.admin.cert,
            client_key=keys.admin.key,
        )
        kcm_kubeconfig = kubeconfig.write(
            self.dir / "controller-manager.kubeconfig",
            server=in_ns,
            ca=keys.ca.cert,
            user="system:kube-controller-manager",
            client_cert=keys.controller_manager.cert,
            client_key=keys.controller_manager.key,
        )
        scheduler_kubeconfig = kubeconfig.write(
            self.dir / "scheduler.kubeconfig",
            server=in_ns,
            ca=keys.ca.cert,
            user="system:kube-scheduler",
            client_cert=keys.scheduler.cert,
            client_key=keys.scheduler.key,
        )

        self._start_etcd()
        self._start_apiserver(keys)
        self._forwarder = Forwarder((API_IP, API_PORT), self.netns.enter_on_this_thread)
        self._forwarder.start()
        kubeconfig.write(
            self.kubeconfig,
            server=f"https://127.0.0.1:{self._forwarder.port}",
            ca=keys.ca.cert,
            user="admin",
            client_cert=keys.admin.cert,
            client_key=keys.admin.key,
        )
        self._wait("the API server to be ready", self._apiserver_ready, deadline)

        self._run(
            "kube-controller-manager",
            [
                "--kubeconfig",
                str(kcm_kubeconfig),
                "--controllers",
                ",".join(CONTROLLERS),
                # Each controller acts as its own ServiceAccount, under its bootstrap role.
                "--use-service-account-credentials=true",
                "--service-account-private-key-file",
                str(keys.sa_key),
                "--root-ca-file",
                str(keys.ca.cert),
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                "--secure-port=10257",
                f"--horizontal-pod-autoscaler-sync-period={HPA_SYNC_PERIOD}",
                "--horizontal-pod-autoscaler-downscale-stabilization="
                + HPA_DOWNSCALE_STABILIZATION,
                "--v=1",
            ],
        )
        self._run(
            "kube-scheduler",
            [
                "--kubeconfig",
                str(scheduler_kubeconfig),
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                "--secure-port=10259",
                "--v=1",
            ],
        )
        kwok_config = self.dir / "kwok.yaml"
        kwok_config.write_text(_KWOK_CONFIG)
        self._run(
            "kwok",
            [
                "--kubeconfig",
                str(self.netns_kubeconfig),
                "--config",
                str(kwok_config),
                "--manage-nodes-with-annotation-selector",
                f"{KWOK_NODE_ANNOTATION}=fake",
                "--node-ip",
                API_IP,
                "--cidr",
                POD_CIDR,
            ],
        )
        runner_ready = self.dir / "podrunner.ready"
        pod_logs = self.logs / "pods"
        pod_logs.mkdir()
        runner_argv = [
            sys.executable,
            "-m",
            "tests.cluster.harness.podrunner",
            "--kubeconfig",
            str(self.netns_kubeconfig),
            "--node-ip",
            API_IP,
            "--cidr",
            POD_CIDR,
            "--first-host",
            str(FIRST_POD_HOST),
            "--log-dir",
            str(pod_logs),
            "--ready-file",
            str(runner_ready),
        ]
        for node in self.node_names:
            runner_argv += ["--node", node]
        self.procs.start("podrunner", self.netns.command(runner_argv), env=self._python_env())

        asyncio.run(self._bootstrap(deadline))
        self._wait("kube-controller-manager /healthz", lambda: self._component_ok(10257), deadline)
        self._wait("kube-scheduler /healthz", lambda: self._component_ok(10259), deadline)
        self._wait("the pod runner", runner_ready.exists, deadline)

    def stop(self) -> None:
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        if self._forwarder is not None:
            self._forwarder.close()
        self.procs.stop_all()
        self.netns.delete()  # also ends anything the components left in the namespace
        keep = os.environ.get("WAKEWAY_CLUSTER_LOGS")
        if keep:
            shutil.copytree(self.logs, Path(keep) / self.dir.name, dirs_exist_ok=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        if self._reaper is not None:
            self._reaper.terminate()
            self._reaper.wait(timeout=10)
        with _live_lock:
            _live.discard(self)

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- components ------------------------------------------------------------------------

    def _run(self, name: str, args: list[str]) -> Proc:
        return self.procs.start(name, self.netns.command([self.binaries.path(name), *args]))

    def _start_reaper(self) -> None:
        """A watcher outside the namespace that cleans up if this process dies unannounced."""
        self._reaper = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.cluster.harness.reaper",
                "--pid",
                str(os.getpid()),
                "--netns",
                self.netns.name,
                "--dir",
                str(self.dir),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self._python_env(),
            cwd=REPO,
            start_new_session=True,
        )

    def _python_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env["PYTHONPATH"] = str(REPO)
        return env

    def _start_etcd(self) -> None:
        url = "http://127.0.0.1:2379"
        peer = "http://127.0.0.1:2380"
        self._run(
            "etcd",
            [
                "--name=etcd0",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=etcd0={peer}",
                # Throwaway data: durability buys nothing and fsyncs cost seconds.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )

    def _start_apiserver(self, keys: pki.Pki) -> None:
        self._run(
            "kube-apiserver",
            [
                "--etcd-servers=http://127.0.0.1:2379",
                "--bind-address=0.0.0.0",
                f"--advertise-address={API_IP}",
                f"--secure-port={API_PORT}",
                f"--tls-cert-file={keys.apiserver.cert}",
                f"--tls-private-key-file={keys.apiserver.key}",
                f"--client-ca-file={keys.ca.cert}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={keys.sa_pub}",
                f"--service-account-signing-key-file={keys.sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--cert-dir={self.dir / 'apiserver'}",
                "--allow-privileged=true",
                # New nodes would carry the not-ready taint until a node-lifecycle controller
                # lifts it; the fake nodes are Ready from the start, so skip both.
                "--disable-admission-plugins=TaintNodesByCondition",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                # API aggregation: the API server proxies an APIService's group to its Service
                # as FRONT_PROXY_CLIENT, passing the user in these headers, and dials the
                # Service's endpoint address itself (no kube-proxy here for a cluster IP).
                f"--requestheader-client-ca-file={keys.front_proxy_ca.cert}",
                f"--requestheader-allowed-names={pki.FRONT_PROXY_CLIENT}",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-username-headers=X-Remote-User",
                f"--proxy-client-cert-file={keys.front_proxy_client.cert}",
                f"--proxy-client-key-file={keys.front_proxy_client.key}",
                "--enable-aggregator-routing=true",
                "--v=1",
            ],
        )

    # -- readiness -------------------------------------------------------------------------

    def _wait(self, what: str, check: Callable[[], bool], deadline: float) -> None:
        while True:
            dead = self.procs.dead()
            if dead:
                raise ClusterError(self._died(dead[0]))
            try:
                if check():
                    return
            except (OSError, ssl.SSLError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out waiting for {what}\n{self._all_tails()}")
            time.sleep(0.1)

    def _died(self, proc: Proc) -> str:
        return f"{proc.name} exited with status {proc.popen.returncode}:\n{proc.tail()}"

    def _all_tails(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail(15)}" for p in self.procs.procs)

    def _admin_ssl(self) -> ssl.SSLContext:
        assert self._pki is not None
        ctx = ssl.create_default_context(cafile=str(self._pki.ca.cert))
        ctx.load_cert_chain(str(self._pki.admin.cert), str(self._pki.admin.key))
        return ctx

    def _apiserver_ready(self) -> bool:
        assert self._forwarder is not None
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self._forwarder.port, context=self._admin_ssl(), timeout=2
        )
        try:
            conn.request("GET", "/readyz")
            return conn.getresponse().status == 200
        finally:
            conn.close()

    def _component_ok(self, port: int) -> bool:
        """A component's own /healthz, on its loopback inside the namespace."""

        def get() -> bool:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # self-signed serving certs of the components
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=2)
            try:
                conn.request("GET", "/healthz")
                return conn.getresponse().status == 200
            finally:
                conn.close()

        return self.netns.call(get)

    async def _bootstrap(self, deadline: float) -> None:
        async with self.api() as api:
            core = client.CoreV1Api(api)
            for name in self.node_names:
                await core.create_node(self._node(name))
            ext = client.ApiextensionsV1Api(api)
            crds = []
            served: list[tuple[str, str, str]] = []  # (group, version, plural)
            for path in sorted(self.binaries.gateway_crds.glob("*.yaml")):
                for doc in yaml.safe_load_all(path.read_text()):
                    if doc and doc.get("kind") == "CustomResourceDefinition":
                        await ext.create_custom_resource_definition(doc)
                        crds.append(doc["metadata"]["name"])
                        spec = doc["spec"]
                        served += [
                            (spec["group"], v["name"], spec["names"]["plural"])
                            for v in spec["versions"]
                            if v.get("served")
                        ]
            await self._await(
                "the fake nodes to be Ready", lambda: self._nodes_ready(core), deadline
            )
            await self._await(
                "the Gateway API CRDs to be established", lambda: self._crds_ok(ext, crds), deadline
            )
            # Established is not yet listable: until each version's storage is initialised the
            # API server answers 429 "storage is (re)initializing", which the first test to
            # read such a kind would otherwise meet.
            objects = client.CustomObjectsApi(api)
            await self._await(
                "the Gateway API kinds to be listable",
                lambda: self._listable(objects, served),
                deadline,
            )
            # The default ServiceAccount appears once the controller manager works.
            await self._await(
                "the default ServiceAccount",
                lambda: found(core.read_namespaced_service_account("default", "default")),
                deadline,
            )

    async def _await(self, what: str, check: Callable[[], Any], deadline: float) -> None:
        while True:
            dead = self.procs.dead()
            if dead:
                raise ClusterError(self._died(dead[0]))
            if await check():
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out waiting for {what}\n{self._all_tails()}")
            await asyncio.sleep(0.1)

    async def _nodes_ready(self, core: Any) -> bool:
        for name in self.node_names:
            node = await core.read_node(name)
            conditions = {c.type: c.status for c in (node.status.conditions or [])}
            if conditions.get("Ready") != "True":
                return False
        return True

    @staticmethod
    async def _listable(objects: Any, served: list[tuple[str, str, str]]) -> bool:
        for group, version, plural in served:
            try:
                await objects.list_cluster_custom_object(group, version, plural, limit=1)
            except ApiException as exc:
                if exc.status == 429:
                    return False
                raise
        return True

    @staticmethod
    async def _crds_ok(ext: Any, names: list[str]) -> bool:
        for name in names:
            crd = await ext.read_custom_resource_definition(name)
            conditions = {c.type: c.status for c in (crd.status.conditions or [])}
            if conditions.get("Established") != "True":
                return False
        return True

    def _node(self, name: str) -> Any:
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            # Every node shares the namespace's range; the pod runner hands out its addresses.
            "spec": {"podCIDR": POD_CIDR, "podCIDRs": [POD_CIDR]},
        }

    # -- helpers for tests -----------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """The API server as the host sees it (the loopback forward)."""
        assert self._forwarder is not None, "the cluster is not started"
        return f"https://127.0.0.1:{self._forwarder.port}"

    api_url_in_netns = f"https://{API_IP}:{API_PORT}"

    @property
    def ca_cert(self) -> Path:
        assert self._pki is not None, "the cluster is not started"
        return self._pki.ca.cert

    def serving_cert(
        self, name: str, *, server_names: tuple[str, ...] = (), server_ips: tuple[str, ...] = ()
    ) -> pki.KeyPair:
        """A serving cert signed by the cluster CA (``ca_cert``), written into the run's dir."""
        assert self._pki is not None, "the cluster is not started"
        return self._pki.serving(name, server_names=server_names, server_ips=server_ips)

    async def client_configuration(self, kubeconfig_path: Path | None = None) -> Any:
        """A kubernetes_asyncio Configuration (admin unless another kubeconfig is given)."""
        configuration = client.Configuration()
        await config.load_kube_config(
            config_file=str(kubeconfig_path or self.kubeconfig),
            client_configuration=configuration,
        )
        return configuration

    @contextlib.asynccontextmanager
    async def api(self, kubeconfig_path: Path | None = None) -> AsyncIterator[Any]:
        """A kubernetes_asyncio ApiClient (admin unless another kubeconfig is given)."""
        configuration = await self.client_configuration(kubeconfig_path)
        async with client.ApiClient(configuration=configuration) as api:
            yield api

    async def service_account_kubeconfig(
        self, namespace: str, name: str, *, in_netns: bool = False, seconds: int = 3600
    ) -> Path:
        """Mints a token for a ServiceAccount (TokenRequest) and writes a kubeconfig with it,
        so a component can run under exactly that account's RBAC."""
        async with self.api() as api:
            answer = await client.CoreV1Api(api).create_namespaced_service_account_token(
                name,
                namespace,
                client.AuthenticationV1TokenRequest(
                    spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds)
                ),
            )
        where = "netns" if in_netns else "host"
        return kubeconfig.write(
            self.dir / f"sa-{namespace}-{name}-{where}.kubeconfig",
            server=self.api_url_in_netns if in_netns else self.api_url,
            ca=self.ca_cert,
            user=f"system:serviceaccount:{namespace}:{name}",
            token=answer.status.token,
        )

    def http_get(self, ip: str, port: int, path: str = "/", timeout: float = 5.0) -> HttpAnswer:
        """One HTTP GET sent from inside the namespace (e.g. straight to a pod IP)."""
        return self.netns.call(lambda: _get(ip, port, path, timeout))

    async def http_get_async(
        self, ip: str, port: int, path: str = "/", *, deadline: float = 5.0
    ) -> HttpAnswer:
        """http_get for async tests; `deadline` bounds the connect and each read."""
        return await asyncio.wrap_future(self.netns.submit(lambda: _get(ip, port, path, deadline)))

    def popen_in_netns(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        """Starts a process inside the namespace; it is stopped at teardown at the latest."""
        return self.procs.start(name, self.netns.command(argv), env=env or self._python_env())

    # -- faults, for tests that inject them ---------------------------------------------------

    def _running(self, name: str) -> Proc:
        for proc in self.procs.procs:
            if proc.name == name and proc.alive():
                return proc
        raise ClusterError(f"{name} is not running")

    def kill_apiserver(self) -> None:
        """SIGKILLs the API server: its clients meet refused connections until
        :meth:`start_apiserver`. etcd keeps the data."""
        proc = self._running("kube-apiserver")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.popen.wait(10)
        self.procs.procs.remove(proc)  # gone on purpose, not a component that died

    def start_apiserver(self, timeout: float = 60.0) -> None:
        """The API server again, with the same flags and certificates; returns once it is ready."""
        assert self._pki is not None, "the cluster is not started"
        self._start_apiserver(self._pki)
        proc = self._running("kube-apiserver")
        deadline = time.monotonic() + timeout
        while True:
            if not proc.alive():
                raise ClusterError(self._died(proc))
            with contextlib.suppress(OSError, ssl.SSLError, http.client.HTTPException):
                if self._apiserver_ready():
                    return
            if time.monotonic() > deadline:
                raise ClusterError(f"the API server was not ready again in {timeout:.0f} s")
            time.sleep(0.1)

    def pause_etcd(self) -> None:
        """SIGSTOPs etcd: the API server's reads and writes hang until :meth:`resume_etcd`."""
        os.killpg(self._running("etcd").pid, signal.SIGSTOP)

    def resume_etcd(self) -> None:
        os.killpg(self._running("etcd").pid, signal.SIGCONT)

    def kill_pod_server(self, namespace: str, pod: str, container: str = "http") -> int:
        """SIGKILLs the server the pod runner started for a pod's container (a container
        crash: the runner restarts it, as a kubelet would); returns its PID."""
        pid_file = self.logs / "pods" / f"{namespace}_{pod}_{container}.pid"
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGKILL)
        return pid

    def describe(self) -> Iterator[str]:
        yield f"kubeconfig (host):   {self.kubeconfig}"
        yield f"kubeconfig (netns):  {self.netns_kubeconfig}"
        yield f"network namespace:   {self.netns.name}  (ip netns exec {self.netns.name} ...)"
        yield f"API server:          https://{API_IP}:{API_PORT} inside, forwarded to the host"
        yield f"pod CIDR:            {POD_CIDR}  nodes: {', '.join(self.node_names)}"
        yield f"logs:                {self.logs}"
        yield f"started in {self.startup_seconds:.1f} s at {datetime.datetime.now():%H:%M:%S}"
