"""Full-chain cold start: request -> first byte from zero, through each product's own wake chain.

    sudo .venv/bin/python -m loadtest.bench_chain [--runs 10] [--request-timeout 60]
        [--max-minutes 30] [--json FILE]

Brings up the harness cluster (tests/cluster: a real control plane in a network namespace) and,
inside that namespace, three wake chains side by side, each in front of its own Deployment of
the same harness pod at zero (same spec, its own namespace, one HTTPScaledObject each):

- **add-on**: the KEDA HTTP add-on's interceptor and scaler (built from its module, like the
  peer benchmark's interceptor: scripts/interop-binaries addon) and the KEDA operator, with the
  ScaledObject the add-on's operator writes (an ``external-push`` trigger naming the add-on's
  scaler; loadtest/addon.py). The scaler polls the interceptor's ``/queue`` every 500 ms and
  answers KEDA's StreamIsActive every 200 ms (the add-on's defaults, read from its source).
- **wakeway KEDA mode**: wakeway's interceptor and scaler and the KEDA operator, with the
  ScaledObject ``wakeway operator --mode keda`` writes (its ``external-push`` trigger names
  wakeway's scaler, which pushes a change of activity the moment a count line shows it).
- **wakeway standalone**: wakeway's interceptor, scaler and operator in standalone mode (no
  KEDA); the operator writes ``/scale`` when the scaler's stream says active.

wakeway's two chains share one interceptor and one scaler (one operator per mode, each watching
its own namespace). KEDA's metrics API server is not started: it serves 1 -> N, not the wake.

Each run sends one request to the chain's interceptor (inside the namespace, on loopback) and
takes the time to its first response byte. The benchmark's own watch of Deployments and pods
(all namespaces) splits it: request -> the Deployment seen scaled up (the wake chain) -> its pod
seen created -> the pod seen Ready (the pod's own start, printed beside every chain) -> the first
byte. Runs are interleaved (add-on, wakeway KEDA, wakeway standalone, add-on, ...), after one
unmeasured warm-up each (it also waits until each interceptor routes its host). Between runs
each workload goes back to zero: wakeway standalone's operator does it (``scaledownPeriod`` 1 s);
for the KEDA chains, once KEDA has marked the ScaledObject inactive, the benchmark scales the
Deployment to zero itself (KEDA's own cool-down is 5 min) - KEDA reads the current scale on
every push, so this does not change its wake path.

Bounded: every request has ``--request-timeout``; the whole measurement ``--max-minutes``; a run
that fails stops the benchmark with the logs' tails. Goal: wakeway standalone's TTFB p50 at most
0.5x the add-on's full chain in the same run; the exit status is 1 when it is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.cluster.harness.binaries import ensure
from tests.cluster.harness.cluster import SPARE_IPS, Cluster
from tests.cluster.harness.processes import Proc
from tests.cluster.standalone import JSON_LOGS, start_standalone
from tests.cluster.wakeway_setup import apply, documents, install_crd, start_component
from tests.interop import binaries
from tests.interop.keda import condition, crd_documents, healthy, install_crds, start_operator
from tests.interop.stack import deployment_at_zero

from loadtest import addon as addon_peer
from loadtest.addon import KubeProxy, ServicePort
from loadtest.cluster_cold import PODS, at_zero, cold_request, wait_for
from loadtest.common import format_ratio, free_ports, percentile
from loadtest.loadgen import ensure_tools
from wakeway.kube import Kube
from wakeway.kube.resources import (
    DEPLOYMENTS,
    HTTPSCALEDOBJECTS,
    NAMESPACES,
    SCALEDOBJECTS,
    SERVICES,
    Resource,
)

ADDON, KEDA, STANDALONE = "addon", "wakeway-keda", "wakeway"
CHAINS = (ADDON, KEDA, STANDALONE)
LABELS = {
    ADDON: "add-on (interceptor + scaler + KEDA)",
    KEDA: "wakeway KEDA mode (interceptor + scaler + KEDA)",
    STANDALONE: "wakeway standalone (interceptor + scaler + operator)",
}
NAMESPACE = {ADDON: "chain-addon", KEDA: "chain-keda", STANDALONE: "chain-alone"}
APP = "app"
GOAL = 0.5  # wakeway standalone's TTFB p50 over the add-on chain's
KEDA_NS = "keda"  # KEDA's namespace; the add-on's own install puts its interceptor there too
ADMIN_IP = SPARE_IPS[1]  # the address the add-on's scaler dials for its interceptor's /queue


def log(message: str) -> None:
    print(f"[bench_chain {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def host(chain: str) -> str:
    return f"{APP}.{NAMESPACE[chain]}.test"


# -- the pure part: runs, statistics, the report ---------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One cold start, every figure in seconds after the request was written."""

    scaled: float  # the Deployment seen scaled up (the benchmark's watch)
    created: float  # its pod seen created
    ready: float  # its pod seen Ready
    first: float  # the first response byte

    @property
    def pod_start(self) -> float:
        """The pod's own start: seen created -> seen Ready."""
        return self.ready - self.created


@dataclass(frozen=True)
class Summary:
    n: int
    p50: float
    p90: float
    max: float
    min: float

    @property
    def spread(self) -> float:
        return self.max - self.min


def summarize(values: Sequence[float]) -> Summary:
    """Nearest-rank p50 and p90 (loadtest.common), maximum and minimum; NaN without samples."""
    if not values:
        nan = float("nan")
        return Summary(0, nan, nan, nan, nan)
    return Summary(
        len(values), percentile(values, 0.5), percentile(values, 0.9), max(values), min(values)
    )


def _ms(v: float) -> str:
    """Seconds as whole milliseconds (no "-0"); "-" for NaN."""
    return "-" if math.isnan(v) else f"{round(v * 1000) + 0:d}"


HOPS: tuple[tuple[str, Any], ...] = (
    ("request -> scaled up", lambda r: r.scaled),
    ("scaled up -> pod created", lambda r: r.created - r.scaled),
    ("pod created -> Ready (pod start)", lambda r: r.pod_start),
    # Negative when the interceptor forwarded before the benchmark's watch saw the pod Ready.
    ("Ready -> first byte", lambda r: r.first - r.ready),
)


def table(runs: Mapping[str, Sequence[Run]]) -> str:
    """The time to first byte of each chain beside its pod's start, and the ratios against the
    add-on's chain; then where the time goes (p50 of each hop, ms)."""
    ttfb = {c: summarize([r.first for r in runs.get(c, ())]) for c in CHAINS}
    pod = {c: summarize([r.pod_start for r in runs.get(c, ())]) for c in CHAINS}
    base = ttfb[ADDON]
    lines = [
        "| chain | n | TTFB p50 ms | p90 ms | max ms | spread ms (max - min) | pod start p50 ms "
        "| TTFB p50 / add-on | TTFB p90 / add-on |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in CHAINS:
        t = ttfb[c]
        lines.append(
            f"| {LABELS[c]} | {t.n} | {_ms(t.p50)} | {_ms(t.p90)} | {_ms(t.max)} "
            f"| {_ms(t.spread)} | {_ms(pod[c].p50)} | {format_ratio(t.p50, base.p50)} "
            f"| {format_ratio(t.p90, base.p90)} |"
        )
    lines += [
        "",
        "| p50 ms | " + " | ".join(LABELS[c].split(" (")[0] for c in CHAINS) + " |",
        "|---|" + "---|" * len(CHAINS),
    ]
    for label, of in HOPS:
        cells = [_ms(summarize([of(r) for r in runs.get(c, ())]).p50) for c in CHAINS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(runs: Mapping[str, Sequence[Run]], goal: float = GOAL) -> tuple[bool, str]:
    """Whether wakeway standalone's TTFB p50 is within ``goal`` times the add-on chain's, and
    the lines saying so (with wakeway KEDA mode's ratio beside it)."""
    p50 = {c: summarize([r.first for r in runs.get(c, ())]).p50 for c in CHAINS}
    ratio = p50[STANDALONE] / p50[ADDON] if p50[ADDON] > 0 else float("nan")
    ok = ratio <= goal  # NaN (a chain without a run) is not met
    line = (
        f"goal {'met' if ok else 'NOT met'}: wakeway standalone / add-on chain, TTFB p50: "
        f"{format_ratio(p50[STANDALONE], p50[ADDON])} (goal <= {goal:g}); "
        f"wakeway KEDA mode / add-on chain: {format_ratio(p50[KEDA], p50[ADDON])}"
    )
    if not ok and not math.isnan(ratio):
        over = (p50[STANDALONE] - goal * p50[ADDON]) * 1000
        line += f"\nmissed by {over:.0f} ms at p50 (goal: <= {goal * p50[ADDON] * 1000:.0f} ms)"
    return ok, line


def load_line(before: tuple[float, ...], after: tuple[float, ...]) -> str:
    """The machine's load averages (1, 5, 15 min) at the start and at the end of the runs."""
    b, a = ("/".join(f"{x:.2f}" for x in v) for v in (before, after))
    return f"machine: {os.cpu_count()} cores; load average {b} before the runs, {a} after"


# -- the benchmark's own watch ---------------------------------------------------------------------


class Watcher:
    """When each chain's Deployment was seen scaled up and its pod seen created and Ready
    (perf_counter, the clock of the cold requests), from watches of every namespace."""

    def __init__(self) -> None:
        self.seen: dict[str, dict[str, float]] = {ns: {} for ns in NAMESPACE.values()}

    def reset(self, ns: str) -> None:
        self.seen[ns] = {}

    async def follow(self, kube: Kube, resource: Resource) -> None:
        while True:
            listed = await kube.list(resource, None)
            try:
                async for event in kube.watch(resource, None, listed.resource_version):
                    if event.type in ("ADDED", "MODIFIED"):
                        self._saw(resource, event.object, time.perf_counter())
            except Exception as e:  # a dropped watch: list again
                log(f"watch of {resource.plural} ended ({e!r}), relisting")
                await asyncio.sleep(0.2)

    def _saw(self, resource: Resource, obj: dict[str, Any], now: float) -> None:
        meta = obj.get("metadata") or {}
        seen = self.seen.get(str(meta.get("namespace")))
        if seen is None or meta.get("deletionTimestamp"):
            return
        if resource == DEPLOYMENTS:
            if meta.get("name") == APP and (obj.get("spec") or {}).get("replicas", 0) >= 1:
                seen.setdefault("scaled", now)
            return
        if not str(meta.get("name", "")).startswith(f"{APP}-"):
            return
        seen.setdefault("created", now)
        conditions = (obj.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            seen.setdefault("ready", now)

    async def complete(self, ns: str, within: float = 10.0) -> dict[str, float]:
        """The three moments of ``ns``'s wake, once all are seen (the watch may trail the
        request's first byte by a little)."""
        deadline = time.monotonic() + within
        while not {"scaled", "created", "ready"} <= self.seen[ns].keys():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ns}: the watch saw only {sorted(self.seen[ns])}")
            await asyncio.sleep(0.01)
        return dict(self.seen[ns])


# -- set-up ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ports:
    """Loopback ports inside the network namespace, picked there by the OS."""

    wakeway: int
    wakeway_admin: int
    wakeway_scaler: int
    addon: int
    addon_admin: int
    addon_scaler: int
    keda_probe: int
    keda_metrics: int

    @property
    def proxy(self) -> dict[str, int]:
        return {ADDON: self.addon, KEDA: self.wakeway, STANDALONE: self.wakeway}


def httpso(chain: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "http.keda.sh/v1alpha1",
        "kind": "HTTPScaledObject",
        "metadata": {"name": APP},
        "spec": {
            "hosts": [host(chain)],
            "scaleTargetRef": {"name": APP, "service": APP, "port": 80},
            "timeouts": {"conditionWait": "60s"},
            **spec,
        },
    }


async def set_up_objects(
    cluster: Cluster, addon: binaries.Addon, keda: binaries.Keda, ports: Ports
) -> str:
    """CRDs, namespaces, the three apps, the add-on's ScaledObject and its interceptor's admin
    Service; returns the add-on app's ClusterIP."""
    kube = await Kube.connect(str(cluster.kubeconfig))
    try:
        # wakeway's CRDs (their HTTPScaledObject is a compatible superset of the add-on's, of
        # the same name: only one can be installed) and the add-on's InterceptorRoute, as
        # bench_peer installs them.
        await install_crd(kube)
        await apply(kube, documents(addon.crds / "http.keda.sh_interceptorroutes.yaml"))
        await install_crds(kube, crd_documents(keda.crds))
        await apply(kube, addon_peer.admin_endpoints(KEDA_NS, ADMIN_IP, ports.addon_admin))
        for chain in CHAINS:
            ns = NAMESPACE[chain]
            await kube.create(NAMESPACES, None, {"metadata": {"name": ns}})
            await deployment_at_zero(kube, ns, APP)
        await kube.create(HTTPSCALEDOBJECTS, NAMESPACE[ADDON], httpso(ADDON))
        scaler = f"127.0.0.1:{ports.addon_scaler}"
        await kube.create(
            SCALEDOBJECTS, NAMESPACE[ADDON], addon_peer.scaled_object(NAMESPACE[ADDON], APP, scaler)
        )
        await kube.create(HTTPSCALEDOBJECTS, NAMESPACE[KEDA], httpso(KEDA))
        await kube.create(
            HTTPSCALEDOBJECTS, NAMESPACE[STANDALONE], httpso(STANDALONE, scaledownPeriod=1)
        )
        svc = await kube.get(SERVICES, NAMESPACE[ADDON], APP)
        return str(svc["spec"]["clusterIP"])
    finally:
        await kube.close()


async def start_wakeway(cluster: Cluster, ports: Ports) -> dict[str, Proc]:
    """Interceptor, scaler and the standalone operator (its namespace only), then the KEDA-mode
    operator (its namespace only) against the same scaler."""
    stack = await start_standalone(
        cluster,
        "chain",
        ports.wakeway,
        ports.wakeway_admin,
        ports.wakeway_scaler,
        WAKEWAY_OPERATOR_NAMESPACE=NAMESPACE[STANDALONE],
        WAKEWAY_OPERATOR_SCALE_DOWN_STABILIZATION="0",
    )
    operator = await cluster.service_account_kubeconfig(
        "wakeway", "wakeway-operator", in_netns=True
    )
    stack.procs["keda-operator-mode"] = start_component(
        cluster,
        "chain-keda-mode-operator",
        [*JSON_LOGS, "operator"],
        operator,
        WAKEWAY_OPERATOR_MODE="keda",
        WAKEWAY_OPERATOR_NAMESPACE=NAMESPACE[KEDA],
        WAKEWAY_OPERATOR_SCALER_ADDRESS=f"127.0.0.1:{ports.wakeway_scaler}",
        WAKEWAY_OPERATOR_HEALTH_PORT="0",
    )
    return stack.procs


def listening(cluster: Cluster, port: int) -> bool:
    def connect() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    return cluster.netns.call(connect)


# -- the runs --------------------------------------------------------------------------------------


async def one_run(
    cluster: Cluster, watcher: Watcher, chain: str, port: int, request_timeout: float
) -> Run:
    ns = NAMESPACE[chain]
    watcher.reset(ns)
    sent, first, status = await asyncio.wrap_future(
        cluster.netns.submit(lambda: cold_request(port, host(chain), request_timeout))
    )
    if status != 200:
        raise RuntimeError(f"{LABELS[chain]}: the cold request was answered {status}")
    seen = await watcher.complete(ns)
    return Run(seen["scaled"] - sent, seen["created"] - sent, seen["ready"] - sent, first - sent)


async def routed(cluster: Cluster, chain: str, port: int, request_timeout: float) -> None:
    """The warm-up: until the interceptor routes the chain's host (404: not yet, and nothing is
    woken), then that request's whole cold start, unmeasured."""
    deadline = time.monotonic() + 60
    while True:
        _, _, status = await asyncio.wrap_future(
            cluster.netns.submit(lambda: cold_request(port, host(chain), request_timeout))
        )
        if status == 200:
            return
        if status != 404 or time.monotonic() > deadline:
            raise RuntimeError(f"{LABELS[chain]}: the warm-up request was answered {status}")
        await asyncio.sleep(0.1)


async def back_to_zero(kube: Kube, chain: str) -> None:
    ns = NAMESPACE[chain]
    if chain == STANDALONE:  # its operator scales it down after scaledownPeriod
        await at_zero(kube, ns, APP, scale=False)
        return
    deadline = time.monotonic() + 30
    while condition(await kube.get(SCALEDOBJECTS, ns, APP), "Active") == "True":
        if time.monotonic() > deadline:
            raise RuntimeError(f"{ns}: KEDA still saw {APP} active 30 s after its request")
        await asyncio.sleep(0.05)
    await at_zero(kube, ns, APP)


async def measure(
    cluster: Cluster, ports: Ports, proxy: KubeProxy, args: argparse.Namespace
) -> dict[str, list[Run]]:
    kube = await Kube.connect(str(cluster.kubeconfig))
    watcher = Watcher()
    tasks = [
        asyncio.create_task(proxy.follow(kube, APP)),
        asyncio.create_task(watcher.follow(kube, DEPLOYMENTS)),
        asyncio.create_task(watcher.follow(kube, PODS)),
    ]
    runs: dict[str, list[Run]] = {c: [] for c in CHAINS}
    stop_at = time.monotonic() + args.max_minutes * 60
    try:
        for chain in CHAINS:
            log(f"warm-up: {LABELS[chain]}")
            await routed(cluster, chain, ports.proxy[chain], args.request_timeout)
            await back_to_zero(kube, chain)
        for i in range(args.runs):
            for chain in CHAINS:
                if time.monotonic() > stop_at:
                    log(f"stopping: the {args.max_minutes:g}-minute cap is reached")
                    return runs
                run = await one_run(
                    cluster, watcher, chain, ports.proxy[chain], args.request_timeout
                )
                runs[chain].append(run)
                log(
                    f"run {i + 1}: {chain:13s} TTFB {run.first * 1000:6.0f} ms, scaled up at "
                    f"{run.scaled * 1000:5.0f} ms, pod start {run.pod_start * 1000:4.0f} ms"
                )
                began = time.monotonic()
                await back_to_zero(kube, chain)
                log(f"{chain}: back at zero {time.monotonic() - began:.1f} s after its answer")
        return runs
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await kube.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="cold starts per chain")
    parser.add_argument("--request-timeout", type=float, default=60.0, help="seconds")
    parser.add_argument("--max-minutes", type=float, default=30.0, help="cap on all the runs")
    parser.add_argument("--json", type=Path, help="also write the raw runs here")
    args = parser.parse_args()
    if not (1 <= args.runs <= 50 and 0 < args.request_timeout <= 120 and args.max_minutes <= 120):
        parser.error("keep it bounded: 1..50 runs, requests up to 120 s, up to 120 minutes")
    if os.geteuid() != 0:
        parser.error("needs root (a network namespace, iptables inside it)")
    ensure_tools(("iptables", "iptables"))
    addon = binaries.addon(build=True, timeout=3600)
    keda = binaries.keda(build=True, timeout=3600)
    cluster = Cluster(ensure(), log=log)
    proxy = KubeProxy(cluster, NAMESPACE[ADDON])
    try:
        cluster.start()
        ports = Ports(*cluster.netns.call(lambda: free_ports(8)))
        log("cluster up; creating objects")
        cluster_ip = asyncio.run(set_up_objects(cluster, addon, keda, ports))
        proxy.install({APP: ServicePort(cluster_ip, 8080)}, {})
        procs = asyncio.run(start_wakeway(cluster, ports))
        procs["keda"] = start_operator(
            cluster,
            keda.operator,
            watch_namespace="",
            probe_port=ports.keda_probe,
            metrics_service_port=ports.keda_metrics,
        )
        procs["addon-interceptor"] = addon_peer.start_interceptor(
            cluster, addon.interceptor, ports.addon, ports.addon_admin
        )
        procs["addon-scaler"] = addon_peer.start_scaler(
            cluster, addon.scaler, ports.addon_scaler, KEDA_NS, ports.addon_admin
        )
        wait_for("KEDA's operator", lambda: healthy(cluster, ports.keda_probe), 60, procs)
        wait_for("the add-on's scaler", lambda: listening(cluster, ports.addon_scaler), 60, procs)
        before = os.getloadavg()
        try:
            runs = asyncio.run(measure(cluster, ports, proxy, args))
        except Exception:
            for name, proc in procs.items():
                log(f"--- {name}\n{proc.tail(15)}")
            raise
        after = os.getloadavg()
    finally:
        cluster.stop()
        proxy.remove()
    print(table(runs))
    print()
    print(load_line(before, after))
    ok, line = verdict(runs)
    print(line)
    if args.json:
        args.json.write_text(json.dumps({c: [asdict(r) for r in v] for c, v in runs.items()}))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
