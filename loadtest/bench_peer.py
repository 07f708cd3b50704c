"""Peer benchmark: wakeway's interceptor and the KEDA HTTP add-on's, side by side, in one run.

    sudo .venv/bin/python -m loadtest.bench_peer [--runs 3] [--duration 10] [--latency-seconds 10]
        [--profile-seconds 60] [--cold 20] [--only http1|h2|cold|throughput] [--many-routes N]
        [--workers N] [--json FILE]

Brings up the harness cluster (tests/cluster, a real control plane in a network namespace) and,
inside that namespace, both interceptors against the same backends, plus the baselines: the
backend direct and nginx as a reverse proxy. All traffic stays inside the namespace. Builds the
add-on's interceptor and h2bench (the HTTP/2 and gRPC load generator) once (scripts/interop-binaries
addon, h2bench) and installs Debian's nginx, wrk and iptables when missing.

- Routing objects: the same HTTPScaledObjects serve both interceptors. wakeway's CRD is a
  compatible superset of the add-on's v1alpha1 kind (they share the CRD's name, so only one can
  be installed); the add-on also watches its own InterceptorRoute kind, whose CRD is installed
  from the add-on's module (a different kind, so it coexists).
- Warm backend: nginx serving a 100-byte file on an address of the namespace, published as the
  ready endpoint of a Service (selector-less, with a hand-written EndpointSlice). The harness's
  pods are a stdlib Python server that would cap every path far below the proxies.
- How each interceptor reaches a backend: wakeway forwards to pod IPs from EndpointSlices; this
  add-on release dials the Service name (``svc.ns:port``), which in a cluster means DNS plus
  kube-proxy. Here a hosts file for the namespace maps the name to the Service's ClusterIP and an
  iptables DNAT rule in the namespace (kube-proxy's own mechanism) sends it to the endpoint; the
  rule follows the EndpointSlice and is written as soon as a pod has an address, before it is
  ready, so the add-on never waits for it.
- Cold start: a Deployment of a harness pod at zero. For each interceptor in turn, one request
  is sent; once that interceptor shows it held through its own signal (wakeway: its count
  stream, pushed, which is what its scaler follows; the add-on: its ``/queue`` counts, which its
  scaler polls, read here every 2 ms), the benchmark scales the Deployment to one itself,
  identically for both (neither scaler nor KEDA is part of this comparison). Recorded: time to
  first byte from the request, from the scale call, and from the moment the benchmark's own
  watch saw the endpoint ready (the interceptor's own share of the cold path), and the CPU time
  each interceptor used meanwhile. A second wakeway interceptor with early probes on
  (``early_probe_interval`` 5 ms) takes its turn too: three cold starts per round, interleaved
  (``--only cold`` runs just these).

``--workers N``: wakeway's interceptor runs N worker processes (``WAKEWAY_INTERCEPTOR_WORKERS``)
and nginx as a proxy N worker processes; the add-on's Go binary uses every core as it always
does. CPU per request of the uncapped runs is that of every process of each proxy (its process
group). ``--only throughput`` runs just the uncapped throughput and CPU per request.

Measured: uncapped throughput (wrk, same threads and connections for every path, interleaved,
medians of ``--runs``), CPU per request of each interceptor, p50/p99 at 1000 req/s (open loop,
loadgen.py), the add-on's own CI profile (1000 req/s for 60 s: p99 <= 100 ms and no error;
uncapped >= 3000 req/s), 200 routes at 1000 req/s, and ``--cold`` cold starts each.

HTTP/2 (``--only h2`` runs just this part): clients speak h2c with prior knowledge to each
interceptor, and each forwards over h2c, because the backend Service's port has ``appProtocol:
kubernetes.io/h2c`` (the one value this add-on release reads; wakeway takes it too). The h2c
backend is the same nginx, serving the same file on a second port (``listen ... http2``); the gRPC
backend is h2bench's grpc-go echo server. Measured, with h2bench for every path: h2c uncapped
throughput (closed loop, 4 connections x 16 streams, interleaved, medians of ``--runs``), CPU
per request, p50/p99 of h2c GETs at 1000 req/s and of gRPC unary calls at 1000 req/s (open
loop over 4 connections), each for the backend direct, wakeway and the add-on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.cluster.harness.binaries import ensure
from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.processes import Proc
from tests.cluster.helpers import deployment
from tests.cluster.wakeway_setup import (
    apply,
    documents,
    install_crd,
    install_interceptor_rbac,
    start_interceptor,
)
from tests.interop import binaries

from loadtest import addon as addon_peer
from loadtest import h2gen
from loadtest.addon import KubeProxy, ServicePort
from loadtest.cluster_cold import at_zero, cold_request, wait_for
from loadtest.common import format_ratio, free_ports, percentile
from loadtest.loadgen import (
    BACKEND_BODY,
    CONNECTIONS,
    PROXY_BODY,
    cpu_seconds,
    ensure_tools,
    group_cpu_seconds,
    nginx_argv,
    nginx_config,
    wrk_argv,
    wrk_result,
)
from wakeway.kube import Kube
from wakeway.kube.resources import (
    DEPLOYMENTS,
    ENDPOINTSLICES,
    HTTPSCALEDOBJECTS,
    NAMESPACES,
    SERVICES,
)

NS = "bench"
FAST_IP = "10.244.0.250"  # in the namespace's pod range, past the addresses pods get here
BACKEND_PORT = 8080  # the warm backend's port on its pod address, as a containerPort
ROUTES = 200
RATE = 1000
PATHS = ("direct", "nginx", "wakeway", "addon")
H2_PATHS = ("direct", "wakeway", "addon")  # nginx cannot forward to an h2c backend
H2_BACKEND_PORT = 8081  # the same nginx, speaking h2c (prior knowledge) on this port
GRPC_BACKEND_PORT = 8082  # h2bench's gRPC echo server
H2C = "kubernetes.io/h2c"  # the appProtocol both interceptors forward over h2c for
# Service name -> (port name, port on the endpoint address, appProtocol)
BACKENDS: dict[str, tuple[str, int, str | None]] = {
    "fast": ("http", BACKEND_PORT, None),
    "sleepy": ("http", BACKEND_PORT, None),
    "h2": ("h2c", H2_BACKEND_PORT, H2C),
    "grpc": ("grpc", GRPC_BACKEND_PORT, H2C),
}
STATIC = ("fast", "h2", "grpc")  # Services whose one endpoint is FAST_IP (no pod)
# Cold starts: wakeway as installed, wakeway with early probes on, the add-on.
COLD_PATHS = ("wakeway", "probe", "addon")
COLD_NAMES = {"wakeway": "wakeway", "probe": "wakeway, early probes", "addon": "add-on"}
EARLY_PROBE_INTERVAL = 0.005
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    address: str
    port: int


@dataclass
class Ports:
    """Loopback ports inside the namespace, picked by the OS there once it is up."""

    wakeway: int = 0
    wakeway_admin: int = 0
    addon: int = 0
    addon_admin: int = 0
    nginx: int = 0
    probe: int = 0  # a second wakeway interceptor, early probes on (cold starts only)
    probe_admin: int = 0


PORTS = Ports()
TARGETS: dict[str, Target] = {}


def pick_ports(cluster: Cluster) -> None:
    """Fills PORTS and TARGETS with ports free inside the cluster's namespace."""
    names = list(vars(PORTS))
    for name, port in zip(names, cluster.netns.call(lambda: free_ports(len(names))), strict=True):
        setattr(PORTS, name, port)
    TARGETS.update(
        direct=Target(FAST_IP, BACKEND_PORT),
        nginx=Target("127.0.0.1", PORTS.nginx),
        wakeway=Target("127.0.0.1", PORTS.wakeway),
        addon=Target("127.0.0.1", PORTS.addon),
        probe=Target("127.0.0.1", PORTS.probe),
    )


FAST_HOST = "fast.bench.test"
SLEEPY_HOST = "sleepy.bench.test"
H2_HOST = "h2.bench.test"
GRPC_HOST = "grpc.bench.test"


def route_hosts(count: int = ROUTES) -> list[str]:
    return [f"r{i:03d}.bench.test" for i in range(count)]


CREATES_IN_FLIGHT = 32  # API calls at once while creating thousands of routes


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- objects -------------------------------------------------------------------------------------


def httpso(name: str, hosts: list[str], service: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "http.keda.sh/v1alpha1",
        "kind": "HTTPScaledObject",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "hosts": hosts,
            "scaleTargetRef": {"name": name, "service": service, "port": 80},
            **spec,
        },
    }


def service(name: str, selector: bool) -> dict[str, Any]:
    port_name, target, app_protocol = BACKENDS[name]
    port: dict[str, Any] = {"name": port_name, "port": 80, "targetPort": target}
    if app_protocol:
        port["appProtocol"] = app_protocol
    spec: dict[str, Any] = {"ports": [port]}
    if selector:
        spec["selector"] = {"app": name}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def static_endpoints(name: str) -> dict[str, Any]:
    port_name, target, app_protocol = BACKENDS[name]
    port: dict[str, Any] = {"name": port_name, "port": target, "protocol": "TCP"}
    if app_protocol:
        port["appProtocol"] = app_protocol
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": f"{name}-static", "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [FAST_IP],
                "conditions": {"ready": True, "serving": True, "terminating": False},
            }
        ],
        "ports": [port],
    }


async def set_up_objects(cluster: Cluster, addon_crds: Path, routes: int) -> dict[str, str]:
    """Creates everything (``routes`` one-host HTTPScaledObjects beside the named ones); returns
    each Service's ClusterIP."""
    kube = await Kube.connect(str(cluster.kubeconfig))
    try:
        await install_crd(kube)
        await install_interceptor_rbac(kube)
        await apply(kube, documents(addon_crds / "http.keda.sh_interceptorroutes.yaml"))
        await kube.create(NAMESPACES, None, {"metadata": {"name": NS}})
        ips: dict[str, str] = {}
        for name in BACKENDS:
            created = await kube.create(SERVICES, NS, service(name, name not in STATIC))
            ips[name] = created["spec"]["clusterIP"]
        for name in STATIC:
            await kube.create(ENDPOINTSLICES, NS, static_endpoints(name))
        sleepy = deployment("sleepy", replicas=0, port=BACKEND_PORT)
        await kube.create(DEPLOYMENTS, NS, sleepy)
        objects = [
            httpso("fast", [FAST_HOST], "fast"),
            httpso("sleepy", [SLEEPY_HOST], "sleepy", timeouts={"conditionWait": "60s"}),
            httpso("h2", [H2_HOST], "h2"),
            httpso("grpc", [GRPC_HOST], "grpc"),
            *(httpso(f"r{i:03d}", [h], "fast") for i, h in enumerate(route_hosts(routes))),
        ]
        limit = asyncio.Semaphore(CREATES_IN_FLIGHT)

        async def create(obj: dict[str, Any]) -> None:
            async with limit:
                await kube.create(HTTPSCALEDOBJECTS, NS, obj)

        await asyncio.gather(*(create(obj) for obj in objects))
        return ips
    finally:
        await kube.close()


# -- processes in the namespace ------------------------------------------------------------------


H2C_BACKEND_BODY = """
    server {{
        listen {address}:{port} http2 backlog=4096;
        location / {{ root {dir}/www; }}
    }}
"""


def start_servers(
    cluster: Cluster,
    work: Path,
    addon: Path,
    h2bench: Path,
    wakeway_kubeconfig: Path,
    workers: int = 1,
) -> dict[str, Proc]:
    (work / "www").mkdir(exist_ok=True)
    (work / "www" / "b").write_bytes(b"x" * 100)
    work.chmod(0o755)  # nginx workers run as an unprivileged user
    backend = nginx_config(
        work,
        "backend",
        BACKEND_BODY.format(address=FAST_IP, port=BACKEND_PORT, dir=work)
        + H2C_BACKEND_BODY.format(address=FAST_IP, port=H2_BACKEND_PORT, dir=work),
    )
    proxy = nginx_config(
        work,
        "proxy",
        PROXY_BODY.format(
            address="127.0.0.1", port=PORTS.nginx, backend_address=FAST_IP, backend=BACKEND_PORT
        ),
        workers=workers,
    )
    procs = {
        "backend": cluster.popen_in_netns("nginx-backend", nginx_argv(work, backend)),
        "nginx": cluster.popen_in_netns("nginx-proxy", nginx_argv(work, proxy)),
        "grpc-backend": cluster.popen_in_netns(
            "grpc-backend",
            [str(h2bench), "serve-grpc", "-listen", f"{FAST_IP}:{GRPC_BACKEND_PORT}"],
            env={"PATH": "/usr/bin:/bin", "GOMAXPROCS": "1"},
        ),
        "wakeway": start_interceptor(
            cluster,
            wakeway_kubeconfig,
            PORTS.wakeway,
            PORTS.wakeway_admin,
            WAKEWAY_INTERCEPTOR_WORKERS=str(workers),
        ),
        "probe": start_interceptor(
            cluster,
            wakeway_kubeconfig,
            PORTS.probe,
            PORTS.probe_admin,
            WAKEWAY_INTERCEPTOR_EARLY_PROBE_INTERVAL=f"{EARLY_PROBE_INTERVAL:g}",
        ),
    }
    procs["addon"] = addon_peer.start_interceptor(cluster, addon, PORTS.addon, PORTS.addon_admin)
    return procs


def netns_get(cluster: Cluster, port: int, path: str, host: str = "bench") -> tuple[int, bytes]:
    import http.client

    def get() -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", path, headers={"Host": host})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    try:
        return cluster.netns.call(get)
    except OSError:
        return 0, b""


# -- load, inside the namespace ------------------------------------------------------------------


def run_wrk(cluster: Cluster, path: str, duration: float, threads: int) -> float:
    t = TARGETS[path]
    host = None if path in ("direct", "nginx") else FAST_HOST
    argv = wrk_argv(f"http://{t.address}:{t.port}/b", duration, threads, CONNECTIONS, host)
    out = subprocess.run(
        cluster.netns.command(argv),
        check=True,
        capture_output=True,
        text=True,
        timeout=duration + 30,
    ).stdout
    return wrk_result(out, path)


@dataclass
class Latency:
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    sent: int
    reconnects: int


def run_open_loop(cluster: Cluster, path: str, seconds: float, hosts: list[str]) -> Latency:
    t = TARGETS[path]
    argv = [
        sys.executable,
        "-m",
        "loadtest.loadgen",
        "--address",
        t.address,
        "--port",
        str(t.port),
        "--rate",
        str(RATE),
        "--seconds",
        str(seconds),
    ]
    hosts_file = cluster.dir / "bench-hosts.txt"
    hosts_file.write_text("\n".join(hosts) + "\n")
    argv += ["--hosts-file", str(hosts_file)]
    done = subprocess.run(
        cluster.netns.command(argv),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        cwd=REPO,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed on {path}:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout)
    lat = result["latencies"] or [float("nan")]
    return Latency(
        percentile(lat, 0.5) * 1000,
        percentile(lat, 0.99) * 1000,
        max(lat) * 1000,
        result["errors"],
        result["sent"],
        result["reconnects"],
    )


# -- HTTP/2 and gRPC, with h2bench ---------------------------------------------------------------


def h2_target(path: str) -> tuple[str, str | None]:
    """The h2c URL of ``path`` and the :authority to send (None: the URL's)."""
    if path == "direct":
        return f"http://{FAST_IP}:{H2_BACKEND_PORT}/b", None
    return f"http://127.0.0.1:{TARGETS[path].port}/b", H2_HOST


def grpc_target(path: str) -> tuple[str, str | None]:
    """The gRPC target (ADDR:PORT) of ``path`` and the :authority to send."""
    if path == "direct":
        return f"{FAST_IP}:{GRPC_BACKEND_PORT}", None
    return f"127.0.0.1:{TARGETS[path].port}", GRPC_HOST


def run_h2bench(
    cluster: Cluster, argv: list[str], seconds: float, *, open_loop: bool
) -> h2gen.H2Result:
    done = subprocess.run(
        cluster.netns.command(argv), capture_output=True, text=True, timeout=seconds + 60
    )
    if done.returncode != 0:
        raise RuntimeError(f"h2bench failed: {' '.join(argv[1:])}:\n{done.stderr[-3000:]}")
    return h2gen.parse(done.stdout, open_loop=open_loop)


def h2_answers(cluster: Cluster, h2bench: Path, path: str) -> bool:
    """One h2c GET and one gRPC call through ``path`` succeed."""
    url, host = h2_target(path)
    target, authority = grpc_target(path)
    for argv in (
        h2gen.h2c_argv(h2bench, url, host, 0.01, connections=1, streams=1),
        h2gen.grpc_argv(h2bench, target, authority, rate=100, seconds=0.01, connections=1),
    ):
        done = subprocess.run(cluster.netns.command(argv), capture_output=True, timeout=30)
        if done.returncode != 0:
            return False
    return True


def latency_of(result: h2gen.H2Result) -> Latency:
    lat = result.latencies or [float("nan")]
    return Latency(
        percentile(lat, 0.5) * 1000,
        percentile(lat, 0.99) * 1000,
        max(lat) * 1000,
        result.errors,
        result.sent,
        result.dials - h2gen.H2_CONNECTIONS,  # connections opened beyond the first ones
    )


def settle(procs: dict[str, Proc], within: float = 30.0) -> None:
    """Waits (up to ``within`` s) until neither interceptor used more than 5 % of a core over
    half a second: a run that left a backlog must not weigh on the next one's figures."""
    pids = [procs[p].pid for p in ("wakeway", "addon")]
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        before = sum(cpu_seconds(pid) for pid in pids)
        time.sleep(0.5)
        if sum(cpu_seconds(pid) for pid in pids) - before < 0.025:
            return
    log(f"the interceptors were still busy after {within:g} s; measuring anyway")


def measure_h2(
    cluster: Cluster, procs: dict[str, Proc], h2bench: Path, args: argparse.Namespace, r: Results
) -> None:
    def uncapped(path: str, seconds: float) -> h2gen.H2Result:
        url, host = h2_target(path)
        argv = h2gen.h2c_argv(h2bench, url, host, seconds)
        return run_h2bench(cluster, argv, seconds, open_loop=False)

    log("h2c warm-up")
    for path in H2_PATHS:
        h2gen.uncapped(uncapped(path, 2), f"h2c {path}", h2gen.H2_CONNECTIONS)
    for i in range(args.runs):
        for path in H2_PATHS:
            pid = procs[path].pid if path in ("wakeway", "addon") else None
            cpu0 = cpu_seconds(pid) if pid else 0.0
            result = uncapped(path, args.duration)
            rps = h2gen.uncapped(result, f"h2c {path}", h2gen.H2_CONNECTIONS)
            r.h2_uncapped.setdefault(path, []).append(rps)
            if pid:
                used = cpu_seconds(pid) - cpu0
                r.h2_cpu_us.setdefault(path, []).append(used / result.ok * 1e6)
            log(f"h2c uncapped run {i + 1}: {path:8s} {rps:10.0f} req/s")

    def fixed(path: str, argv: list[str], cpu_us: dict[str, float]) -> Latency:
        settle(procs)
        pid = procs[path].pid if path in ("wakeway", "addon") else None
        cpu0 = cpu_seconds(pid) if pid else 0.0
        result = run_h2bench(cluster, argv, args.latency_seconds, open_loop=True)
        if pid and result.ok:
            cpu_us[path] = (cpu_seconds(pid) - cpu0) / result.ok * 1e6
        return latency_of(result)

    for path in H2_PATHS:
        url, host = h2_target(path)
        argv = h2gen.h2c_argv(h2bench, url, host, args.latency_seconds, rate=RATE)
        r.h2_fixed[path] = fixed(path, argv, r.h2_fixed_cpu_us)
        log(f"h2c at {RATE} req/s: {path:8s} {r.h2_fixed[path]}")
    for path in H2_PATHS:
        target, authority = grpc_target(path)
        argv = h2gen.grpc_argv(h2bench, target, authority, RATE, args.latency_seconds)
        r.grpc_fixed[path] = fixed(path, argv, r.grpc_cpu_us)
        log(f"gRPC unary at {RATE} req/s: {path:8s} {r.grpc_fixed[path]}")


# -- cold start ----------------------------------------------------------------------------------


def addon_holds(cluster: Cluster) -> bool:
    status, body = netns_get(cluster, PORTS.addon_admin, "/queue")
    if status != 200:
        return False
    counts = json.loads(body or b"{}")
    return int(counts.get(f"{NS}/sleepy", {}).get("Concurrency", 0)) > 0


def wakeway_hold_watch(admin: int, subscribed: threading.Event) -> float:
    """Runs inside the namespace: follows wakeway's count stream (what its scaler follows) on
    admin port ``admin`` and returns the perf_counter time of the first line that shows the
    request held."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=30)
    try:
        conn.request("GET", "/counts")
        resp = conn.getresponse()
        resp.readline()  # the snapshot: subscribed
        subscribed.set()
        while line := resp.readline():
            target = json.loads(line).get("targets", {}).get(f"{NS}/sleepy", {})
            if target.get("held", 0) > 0:
                return time.perf_counter()
        raise RuntimeError("wakeway's count stream ended")
    finally:
        conn.close()


@dataclass
class Cold:
    ttfb: float  # request written -> first response byte
    from_scale: float  # the benchmark's scale call -> first response byte
    after_ready: float  # the endpoint seen ready (by the benchmark's own watch) -> first byte
    hold_seen: float  # request written -> the benchmark saw it held (and scaled)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU s of each interceptor meanwhile


async def cold_start(
    cluster: Cluster, kube: Kube, proxy: KubeProxy, path: str, pids: dict[str, int]
) -> Cold:
    """One cold start; the Deployment is scaled once the interceptor holds the request, seen
    from its own signal: wakeway's count stream (pushed), the add-on's /queue (polled 2 ms).
    ``pids``: the interceptors whose CPU time is taken from the request to the first byte."""
    await at_zero(kube, NS, "sleepy")
    proxy.ready_at.pop("sleepy", None)
    port = TARGETS[path].port
    subscribed = threading.Event()
    admin = {"wakeway": PORTS.wakeway_admin, "probe": PORTS.probe_admin}.get(path)
    watch = (
        None
        if admin is None
        else cluster.netns.submit(lambda: wakeway_hold_watch(admin, subscribed))
    )
    if watch is not None and not await asyncio.to_thread(subscribed.wait, 10):
        raise RuntimeError("could not follow wakeway's count stream")
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    pending = cluster.netns.submit(lambda: cold_request(port, SLEEPY_HOST))
    deadline = time.monotonic() + 30
    if watch is not None:
        await asyncio.wait_for(asyncio.wrap_future(watch), 30)
    else:
        while not addon_holds(cluster):
            if pending.done() or time.monotonic() > deadline:
                raise RuntimeError(f"{path} did not hold the cold request: {pending.result()!r}")
            await asyncio.sleep(0.002)
    scaled = time.perf_counter()
    await kube.set_scale(DEPLOYMENTS, NS, "sleepy", 1)
    sent, first, status = await asyncio.wrap_future(pending)
    cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
    if status != 200:
        raise RuntimeError(f"{path}: cold request answered {status}")
    # An early probe can answer before the benchmark's watch sees the endpoint ready: wait for
    # it (bounded), so that share comes out negative instead of missing.
    for _ in range(2000):  # 10 s at most
        if "sleepy" in proxy.ready_at:
            break
        await asyncio.sleep(0.005)
    ready = proxy.ready_at.get("sleepy", first)
    return Cold(first - sent, first - scaled, first - ready, scaled - sent, cpu)


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Results:
    uncapped: dict[str, list[float]] = field(default_factory=dict)
    cpu_us: dict[str, list[float]] = field(default_factory=dict)
    fixed: dict[str, Latency] = field(default_factory=dict)
    profile: dict[str, Latency] = field(default_factory=dict)
    routes: dict[str, Latency] = field(default_factory=dict)
    many_routes: dict[str, Latency] = field(default_factory=dict)  # --many-routes
    cold: dict[str, list[Cold]] = field(default_factory=dict)
    h2_uncapped: dict[str, list[float]] = field(default_factory=dict)
    h2_cpu_us: dict[str, list[float]] = field(default_factory=dict)
    h2_fixed: dict[str, Latency] = field(default_factory=dict)
    grpc_fixed: dict[str, Latency] = field(default_factory=dict)
    h2_fixed_cpu_us: dict[str, float] = field(default_factory=dict)  # at RATE
    grpc_cpu_us: dict[str, float] = field(default_factory=dict)  # at RATE


async def measure(
    cluster: Cluster,
    procs: dict[str, Proc],
    proxy: KubeProxy,
    args: argparse.Namespace,
    r: Results,
) -> None:
    kube = await Kube.connect(str(cluster.kubeconfig))
    follower = asyncio.create_task(proxy.follow(kube, "sleepy"))
    try:
        if args.only != "cold":
            await measure_warm(cluster, procs, args, r)
        if args.only == "throughput":
            return
        pids = {p: procs[p].pid for p in COLD_PATHS}
        for i in range(args.cold):
            for path in COLD_PATHS:
                c = await cold_start(cluster, kube, proxy, path, pids)
                r.cold.setdefault(path, []).append(c)
                log(
                    f"cold start {i + 1}: {path:8s} TTFB {c.ttfb * 1000:7.1f} ms, "
                    f"from the scale call {c.from_scale * 1000:7.1f} ms, "
                    f"after ready {c.after_ready * 1000:6.1f} ms, "
                    f"its CPU {c.cpu[path] * 1000:5.1f} ms"
                )
        await at_zero(kube, NS, "sleepy")
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await kube.close()


async def measure_warm(
    cluster: Cluster, procs: dict[str, Proc], args: argparse.Namespace, r: Results
) -> None:
    """Throughput, fixed-rate latency, many routes and the add-on's CI profile."""
    log("warm-up")
    for path in PATHS:
        await asyncio.to_thread(run_wrk, cluster, path, 2, args.threads)
    for i in range(args.runs):
        for path in PATHS:
            # Every process of the proxy: wakeway's workers, nginx's, the add-on's one.
            group = os.getpgid(procs[path].pid) if path != "direct" else None
            cpu0 = group_cpu_seconds(group) if group else 0.0
            rps = await asyncio.to_thread(run_wrk, cluster, path, args.duration, args.threads)
            r.uncapped.setdefault(path, []).append(rps)
            if group:
                used = group_cpu_seconds(group) - cpu0
                r.cpu_us.setdefault(path, []).append(used / (rps * args.duration) * 1e6)
            log(f"uncapped run {i + 1}: {path:8s} {rps:10.0f} req/s")
    if args.only == "throughput":
        return
    for path in PATHS:
        hosts = [FAST_HOST]
        r.fixed[path] = await asyncio.to_thread(
            run_open_loop, cluster, path, args.latency_seconds, hosts
        )
        log(f"{RATE} req/s: {path:8s} {r.fixed[path]}")
    for path in ("wakeway", "addon"):
        r.routes[path] = await asyncio.to_thread(
            run_open_loop, cluster, path, args.latency_seconds, route_hosts()
        )
        log(f"{ROUTES} routes at {RATE} req/s: {path:8s} {r.routes[path]}")
    if args.many_routes:
        for path in ("wakeway", "addon"):
            r.many_routes[path] = await asyncio.to_thread(
                run_open_loop, cluster, path, args.latency_seconds, route_hosts(args.many_routes)
            )
            log(f"{args.many_routes} routes at {RATE} req/s: {path:8s} {r.many_routes[path]}")
    for path in ("wakeway", "addon"):
        r.profile[path] = await asyncio.to_thread(
            run_open_loop, cluster, path, args.profile_seconds, [FAST_HOST]
        )
        log(f"CI profile: {path:8s} {r.profile[path]}")


def report(r: Results, args: argparse.Namespace) -> tuple[str, bool]:
    med = {p: statistics.median(v) for p, v in r.uncapped.items()}
    cpu = {p: statistics.median(v) for p, v in r.cpu_us.items()}
    rows: list[tuple[str, dict[str, float], bool]] = [
        # (metric, value per path, higher is better)
        ("uncapped req/s", med, True),
        ("CPU µs per request", cpu, False),
        (f"p50 ms at {RATE} req/s", {p: v.p50_ms for p, v in r.fixed.items()}, False),
        (f"p99 ms at {RATE} req/s", {p: v.p99_ms for p, v in r.fixed.items()}, False),
        (f"p50 ms, {ROUTES} routes", {p: v.p50_ms for p, v in r.routes.items()}, False),
        (f"p99 ms, {ROUTES} routes", {p: v.p99_ms for p, v in r.routes.items()}, False),
    ]
    if r.many_routes:
        n = args.many_routes
        rows += [
            (f"p50 ms, {n} routes", {p: v.p50_ms for p, v in r.many_routes.items()}, False),
            (f"p99 ms, {n} routes", {p: v.p99_ms for p, v in r.many_routes.items()}, False),
        ]
    rows += [
        (
            f"p99 ms, {RATE} req/s for {args.profile_seconds:g} s",
            {p: v.p99_ms for p, v in r.profile.items()},
            False,
        ),
    ]
    lines = [
        "| metric | direct | nginx | wakeway | add-on | wakeway/add-on | wakeway/nginx"
        " | wakeway/direct |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def cell(values: dict[str, float], p: str) -> str:
        v = values.get(p)
        if v is None:
            return "—"
        return f"{v:.0f}" if v >= 100 else f"{v:.2f}"

    for name, values, _ in rows:
        w = values.get("wakeway", 0.0)
        ratios = [format_ratio(w, values.get(p)) for p in ("addon", "nginx", "direct")]
        lines.append(
            f"| {name} | {' | '.join(cell(values, p) for p in PATHS)} | {' | '.join(ratios)} |"
        )
    lines.append("")
    ok = True
    for path in ("wakeway", "addon"):
        prof = r.profile[path]
        passed = prof.p99_ms <= 100 and prof.errors == 0 and med[path] >= 3000
        ok = ok and (passed or path == "addon")
        lines.append(
            f"- add-on CI profile, {path}: p99 {prof.p99_ms:.2f} ms (≤ 100), errors "
            f"{prof.errors} of {prof.sent} (0), uncapped {med[path]:.0f} req/s (≥ 3000): "
            f"{'pass' if passed else 'FAIL'}"
        )
    errors = {p: v.errors for p, v in {**r.fixed}.items() if v.errors}
    errors.update({f"{p} ({ROUTES} routes)": v.errors for p, v in r.routes.items() if v.errors})
    n = args.many_routes
    errors.update({f"{p} ({n} routes)": v.errors for p, v in r.many_routes.items() if v.errors})
    if r.many_routes:
        many, few = r.many_routes["wakeway"].p99_ms, r.routes["wakeway"].p99_ms
        lines.append(
            f"- goal: wakeway's p99 across {n} routes {many:.2f} ms, across {ROUTES} "
            f"{few:.2f} ms ({many / few:.2f}×; no worse): {'met' if many <= few else 'missed'}"
        )
    lines.append(f"- errors at fixed rates: {errors or 'none'}")
    lines.append(
        f"- uncapped: wrk -t{args.threads} -c{CONNECTIONS} -d{args.duration:g}s, median of "
        f"{args.runs}; fixed rate: {args.latency_seconds:g} s open loop over {256} connections"
    )
    return "\n".join(lines), ok


def report_cold(cold: dict[str, list[Cold]]) -> str:
    """The cold-start table: each interceptor's figures, ratios to the add-on's, the spread
    and the goals (time to first byte p50 and p99 <= 0.9x the add-on's; endpoint ready ->
    first byte p99 <= 2 ms)."""

    def q(path: str, attr: str, at: float) -> float:
        return percentile([getattr(c, attr) for c in cold[path]], at) * 1000

    def spread(path: str) -> str:
        v = sorted(c.ttfb * 1000 for c in cold[path])
        return f"{v[0]:.0f}–{v[-1]:.0f} (IQR {q(path, 'ttfb', 0.75) - q(path, 'ttfb', 0.25):.0f})"

    def own_cpu(path: str) -> float:  # a mean: the kernel counts CPU time in 10 ms ticks
        return statistics.fmean(c.cpu[path] for c in cold[path]) * 1000

    rows: list[tuple[str, Callable[[str], float]]] = [
        ("TTFB p50 ms", lambda p: q(p, "ttfb", 0.5)),
        ("TTFB p90 ms", lambda p: q(p, "ttfb", 0.9)),
        ("TTFB p99 ms", lambda p: q(p, "ttfb", 0.99)),
        ("scale call → first byte p50 ms", lambda p: q(p, "from_scale", 0.5)),
        ("scale call → first byte p99 ms", lambda p: q(p, "from_scale", 0.99)),
        ("request → seen held p50 ms", lambda p: q(p, "hold_seen", 0.5)),
        ("endpoint ready → first byte p50 ms", lambda p: q(p, "after_ready", 0.5)),
        ("endpoint ready → first byte p99 ms", lambda p: q(p, "after_ready", 0.99)),
        ("its CPU per cold start, mean ms", own_cpu),
    ]
    paths = [p for p in COLD_PATHS if cold.get(p)]
    names = [COLD_NAMES[p] for p in paths]
    ours = [p for p in paths if p != "addon"]
    lines = [
        f"| cold start ({len(cold[paths[0]])} each, interleaved) | {' | '.join(names)} | "
        + " | ".join(f"{COLD_NAMES[p]} / add-on" for p in ours)
        + " |",
        "|---" * (1 + len(paths) + len(ours)) + "|",
    ]
    for name, value in rows:
        values = {p: value(p) for p in paths}
        cells = [f"{values[p]:.0f}" if abs(values[p]) >= 100 else f"{values[p]:.2f}" for p in paths]
        ratios = [format_ratio(values[p], values.get("addon")) for p in ours]
        lines.append(f"| {name} | {' | '.join(cells + ratios)} |")
    lines.append(f"| TTFB min–max ms (spread) | {' | '.join(spread(p) for p in paths)} |")
    lines.append("")
    for p in ours:
        if "addon" not in cold:
            break
        ratio50 = q(p, "ttfb", 0.5) / q("addon", "ttfb", 0.5)
        ratio99 = q(p, "ttfb", 0.99) / q("addon", "ttfb", 0.99)
        after = q(p, "after_ready", 0.99)
        verdict = "met" if ratio50 <= 0.9 and ratio99 <= 0.9 and after <= 2 else "missed"
        lines.append(
            f"- goal, {COLD_NAMES[p]}: TTFB p50 {ratio50:.2f}× and p99 {ratio99:.2f}× the "
            f"add-on's (≤ 0.9×), endpoint ready → first byte p99 {after:.2f} ms (≤ 2): "
            f"{verdict}"
        )
    return "\n".join(lines)


def report_throughput(r: Results, args: argparse.Namespace) -> str:
    """``--only throughput``: uncapped req/s and CPU per request, with the ratios the
    every-core goal reads (wakeway / nginx at the same workers, CPU / the add-on's)."""
    med = {p: statistics.median(v) for p, v in r.uncapped.items()}
    cpu = {p: statistics.median(v) for p, v in r.cpu_us.items()}
    n = args.workers
    lines = [
        f"| metric ({n} worker{'s' if n > 1 else ''}: wakeway, nginx) | direct | nginx | "
        "wakeway | add-on | wakeway/add-on | wakeway/nginx | wakeway/direct |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, values in (("uncapped req/s", med), ("CPU µs per request", cpu)):
        w = values.get("wakeway", 0.0)
        ratios = [format_ratio(w, values.get(p)) for p in ("addon", "nginx", "direct")]
        cells = " | ".join(_cell(values, p) for p in PATHS)
        lines.append(f"| {name} | {cells} | {' | '.join(ratios)} |")
    runs = {p: [round(x) for x in v] for p, v in r.uncapped.items()}
    lines += [
        "",
        f"- wrk -t{args.threads} -c{CONNECTIONS} -d{args.duration:g}s, interleaved, median of "
        f"{args.runs}: {runs}",
        f"- goals: wakeway/nginx throughput ≥ 0.9 "
        f"({format_ratio(med.get('wakeway', 0.0), med.get('nginx'))}); "
        f"CPU per request ≤ 0.4 × the add-on's "
        f"({format_ratio(cpu.get('wakeway', 0.0), cpu.get('addon'))})",
    ]
    return "\n".join(lines)


def report_h2(r: Results, args: argparse.Namespace) -> str:
    """The HTTP/2 table: h2c and gRPC, the backend direct, wakeway and the add-on."""
    rows: list[tuple[str, dict[str, float]]] = [
        ("h2c uncapped req/s", {p: statistics.median(v) for p, v in r.h2_uncapped.items()}),
        (
            "h2c CPU µs per request, uncapped",
            {p: statistics.median(v) for p, v in r.h2_cpu_us.items()},
        ),
        (f"h2c p50 ms at {RATE} req/s", {p: v.p50_ms for p, v in r.h2_fixed.items()}),
        (f"h2c p99 ms at {RATE} req/s", {p: v.p99_ms for p, v in r.h2_fixed.items()}),
        (f"h2c CPU µs per request at {RATE} req/s", r.h2_fixed_cpu_us),
        (f"gRPC unary p50 ms at {RATE} req/s", {p: v.p50_ms for p, v in r.grpc_fixed.items()}),
        (f"gRPC unary p99 ms at {RATE} req/s", {p: v.p99_ms for p, v in r.grpc_fixed.items()}),
        (f"gRPC CPU µs per call at {RATE} req/s", r.grpc_cpu_us),
    ]
    lines = [
        "| metric (HTTP/2) | direct | wakeway | add-on | wakeway/add-on | wakeway/direct |",
        "|---|---|---|---|---|---|",
    ]
    for name, values in rows:
        w = values.get("wakeway")
        cells = [_cell(values, p) for p in H2_PATHS]
        ratios = [format_ratio(w, values.get(p)) for p in ("addon", "direct")]
        lines.append(f"| {name} | {' | '.join(cells)} | {' | '.join(ratios)} |")
    lines.append("")
    errors = {f"h2c {p}": v.errors for p, v in r.h2_fixed.items() if v.errors}
    errors.update({f"gRPC {p}": v.errors for p, v in r.grpc_fixed.items() if v.errors})
    extra = {f"h2c {p}": v.reconnects for p, v in r.h2_fixed.items() if v.reconnects}
    extra.update({f"gRPC {p}": v.reconnects for p, v in r.grpc_fixed.items() if v.reconnects})
    lines.append(f"- errors at fixed rates: {errors or 'none'}")
    lines.append(f"- connections opened beyond the {h2gen.H2_CONNECTIONS}: {extra or 'none'}")
    lines.append(
        f"- h2bench over {h2gen.H2_CONNECTIONS} connections; uncapped: "
        f"{h2gen.H2_STREAMS} streams each, {args.duration:g} s, median of {args.runs}; "
        f"fixed rate: {args.latency_seconds:g} s open loop"
    )
    return "\n".join(lines)


def _cell(values: dict[str, float], p: str) -> str:
    v = values.get(p)
    if v is None:
        return "—"
    return f"{v:.0f}" if v >= 100 else f"{v:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--profile-seconds", type=float, default=60.0)
    parser.add_argument("--cold", type=int, default=20, help="cold starts per interceptor")
    parser.add_argument(
        "--only",
        choices=("http1", "h2", "cold", "throughput"),
        help="run one part: the HTTP/1.1 sections and cold starts, the h2c/gRPC ones, "
        "the cold starts alone, or the uncapped HTTP/1.1 throughput and CPU per request alone",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="wakeway's and nginx's worker processes"
    )
    parser.add_argument(
        "--many-routes",
        type=int,
        default=0,
        help="also measure at 1000 req/s across this many routes (e.g. 10000)",
    )
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    if not (1 <= args.runs <= 10 and args.duration <= 60 and args.latency_seconds <= 60):
        parser.error("keep it bounded: runs 1..10, durations up to 60 s")
    if not 0 <= args.many_routes <= 20000:
        parser.error("keep it bounded: up to 20000 routes")
    if not 1 <= args.workers <= 16:
        parser.error("--workers: 1..16")
    if not (1 <= args.cold <= 50 and args.profile_seconds <= 120):
        parser.error("keep it bounded: 1..50 cold starts, a profile of up to 120 s")
    if os.geteuid() != 0:
        parser.error("needs root (a network namespace, iptables inside it)")
    ensure_tools(("iptables", "iptables"))
    addon = binaries.addon(build=True, timeout=3600)
    h2bench = binaries.h2bench(build=True, timeout=600)
    cluster = Cluster(ensure(), log=log)
    proxy = KubeProxy(cluster, NS)
    work = Path(tempfile.mkdtemp(prefix="wakeway-peer-"))  # nginx's files, readable by its workers
    try:
        cluster.start()
        pick_ports(cluster)
        log("cluster up; creating objects")
        ips = asyncio.run(set_up_objects(cluster, addon.crds, max(ROUTES, args.many_routes)))
        proxy.install(
            {name: ServicePort(ip, BACKENDS[name][1]) for name, ip in ips.items()},
            dict.fromkeys(STATIC, FAST_IP),
        )
        kubeconfig = asyncio.run(
            cluster.service_account_kubeconfig("wakeway", "wakeway-interceptor", in_netns=True)
        )
        procs = start_servers(cluster, work, addon.interceptor, h2bench, kubeconfig, args.workers)
        for path in PATHS:
            t = TARGETS[path]
            host = FAST_HOST if path in ("wakeway", "addon") else "bench"

            def answers(port: int = t.port, host: str = host, addr: str = t.address) -> bool:
                return _get_from(cluster, addr, port, host) == 200

            wait_for(f"{path} to answer", answers, 60, procs)

        def probe_answers() -> bool:
            return _get_from(cluster, "127.0.0.1", PORTS.probe, FAST_HOST) == 200

        wait_for("wakeway with early probes to answer", probe_answers, 60, procs)
        for path in ("wakeway", "addon"):

            def routed(port: int = TARGETS[path].port) -> bool:
                last = route_hosts(max(ROUTES, args.many_routes))[-1]
                return _get_from(cluster, "127.0.0.1", port, last) == 200

            wait_for(f"{path} to route every route", routed, 300, procs)
        for path in H2_PATHS:

            def h2_ready(path: str = path) -> bool:
                return h2_answers(cluster, h2bench, path)

            wait_for(f"{path} to answer over h2c and gRPC", h2_ready, 60, procs)
        results = Results()
        if args.only != "h2":
            asyncio.run(measure(cluster, procs, proxy, args, results))
        if args.only in (None, "h2"):
            measure_h2(cluster, procs, h2bench, args, results)
    finally:
        cluster.stop()
        proxy.remove()
        shutil.rmtree(work, ignore_errors=True)
    ok = True
    if args.only == "throughput":
        print(report_throughput(results, args))
    if args.only in (None, "http1"):
        table, ok = report(results, args)
        print(table)
    if results.cold:
        print(("\n" if args.only != "cold" else "") + report_cold(results.cold))
    if args.only in (None, "h2"):
        print("\n" + report_h2(results, args))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "uncapped": results.uncapped,
                    "cpu_us": results.cpu_us,
                    "fixed": {p: v.__dict__ for p, v in results.fixed.items()},
                    "routes": {p: v.__dict__ for p, v in results.routes.items()},
                    "many_routes": {p: v.__dict__ for p, v in results.many_routes.items()},
                    "profile": {p: v.__dict__ for p, v in results.profile.items()},
                    "cold": {p: [c.__dict__ for c in v] for p, v in results.cold.items()},
                    "h2c_uncapped": results.h2_uncapped,
                    "h2c_cpu_us": results.h2_cpu_us,
                    "h2c_fixed": {p: v.__dict__ for p, v in results.h2_fixed.items()},
                    "grpc_fixed": {p: v.__dict__ for p, v in results.grpc_fixed.items()},
                    "h2c_fixed_cpu_us": results.h2_fixed_cpu_us,
                    "grpc_cpu_us": results.grpc_cpu_us,
                },
                indent=1,
            )
        )
    return 0 if ok else 1


def _get_from(cluster: Cluster, address: str, port: int, host: str) -> int:
    import http.client

    def get() -> int:
        conn = http.client.HTTPConnection(address, port, timeout=5)
        try:
            conn.request("GET", "/b", headers={"Host": host})
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()

    try:
        return cluster.netns.call(get)
    except (OSError, ValueError):
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
