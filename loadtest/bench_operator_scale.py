"""The operator with thousands of HTTPScaledObjects, on a real API server (standalone mode).

    sudo .venv/bin/python loadtest/bench_operator_scale.py --objects 500 [--objects 2000]
        [--baseline-src DIR] [--idle 60] [--json FILE]

Brings up the harness cluster (tests/cluster: a real control plane and kwok nodes in a network
namespace) and creates, in bulk and before any wakeway process runs, N apps in one namespace:
a Deployment at zero, its (headless) Service and its HTTPScaledObject. Then, inside that
network namespace, the scaler, one interceptor and the operator in standalone mode (default
settings, except a 30 s ``resync`` so an idle window holds one), and measures:

- initial sync: operator start -> every object's Ready condition True (read through a watch);
- idle: CPU (% of one core) and RSS of the operator, the scaler and the interceptor over
  ``--idle`` seconds in which nothing changes (it spans at least one resync);
- full pass: the operator restarted over objects that are all Ready already: start -> its
  ``pass`` event (every object reconciled once, /scale read, nothing to write), and the
  periodic ``pass`` events (resync) seen while idle.

``--baseline-src DIR`` also runs the same measurements, first and on a namespace of its own,
with the operator from another source tree (e.g. ``git archive <commit> src | tar -x -C DIR``),
so before/after ratios come from one run; a baseline that is not all Ready within
``--ready-within`` seconds is reported as the fraction Ready by then.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tests.cluster.harness.binaries import ensure  # noqa: E402
from tests.cluster.harness.cluster import Cluster  # noqa: E402
from tests.cluster.harness.processes import Proc, stop  # noqa: E402
from tests.cluster.helpers import deployment, service  # noqa: E402
from tests.cluster.standalone import JSON_LOGS, LO  # noqa: E402
from tests.cluster.wakeway_setup import IDENTITY_KEY, component_kubeconfigs  # noqa: E402

from wakeway.kube import AlreadyExists, Informer, Kube, NotFound  # noqa: E402
from wakeway.kube.resources import (  # noqa: E402
    DEPLOYMENTS,
    HTTPSCALEDOBJECTS,
    NAMESPACES,
    SERVICES,
)

PROXY, ADMIN, SCALER = 18881, 19881, 19882
CREATES_IN_FLIGHT = 32
RESYNC = 30


def log(message: str) -> None:
    print(
        f"[bench_operator_scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True
    )


@dataclass
class Figures:
    label: str
    objects: int
    ready_s: float | None = None  # operator start -> all Ready (None: not within the bound)
    ready_fraction: float = 0.0
    sync_cpu_s: float | None = None  # operator CPU seconds from its start to all Ready
    full_pass_s: float | None = None  # restart over all-Ready objects -> its "pass" event
    resync_passes_s: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core while idle
    rss_mb: dict[str, float] = field(default_factory=dict)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def create_apps(kube: Kube, ns: str, count: int) -> None:
    """``count`` apps (Deployment at zero, Service, HTTPScaledObject) in ``ns``, created with a
    bounded number in flight; already existing ones are kept."""
    await kube.create(NAMESPACES, None, {"metadata": {"name": ns}})
    limit = asyncio.Semaphore(CREATES_IN_FLIGHT)

    async def one(i: int) -> None:
        name = f"app-{i:05d}"
        svc = service(name, port=80)
        svc["spec"]["ports"][0]["targetPort"] = 8080
        svc["spec"]["clusterIP"] = "None"  # headless: the harness's Service range is a /24
        httpso = {
            "apiVersion": "http.keda.sh/v1alpha1",
            "kind": "HTTPScaledObject",
            "metadata": {"name": name},
            "spec": {
                "hosts": [f"{name}.{ns}.test"],
                "scaleTargetRef": {"name": name, "service": name, "port": 80},
            },
        }
        for resource, body in (
            (DEPLOYMENTS, deployment(name, replicas=0, port=8080)),
            (SERVICES, svc),
            (HTTPSCALEDOBJECTS, httpso),
        ):
            async with limit:
                with contextlib.suppress(AlreadyExists):
                    await kube.create(resource, ns, body)

    began = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(count)))
    log(f"{ns}: {count} apps created in {time.monotonic() - began:.1f} s")


class ReadyCount:
    """How many HTTPScaledObjects of a namespace carry Ready=True, from a watch."""

    def __init__(self, kube: Kube, ns: str) -> None:
        self.informer: Informer[bool] = Informer(
            kube, HTTPSCALEDOBJECTS, lambda _doc: True, namespace=ns
        )

    def start(self) -> None:
        self.informer.start()

    def count(self) -> int:
        return sum(
            1
            for c in self.informer.items().values()
            if any(x.type == "Ready" and x.status == "True" for x in c.conditions)
        )

    async def until(self, want: int, within: float) -> float | None:
        """Seconds until ``want`` are Ready, or None when not within ``within``."""
        began = time.monotonic()
        while self.count() < want:
            if time.monotonic() - began > within:
                return None
            await asyncio.sleep(0.2)
        return time.monotonic() - began


def component_env(src: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "WAKEWAY_"))}
    environ.update(
        PYTHONPATH=str(src),
        WAKEWAY_INTERCEPTOR_SERVICE="wakeway/wakeway-interceptor:8080",
        WAKEWAY_ROUTE_IDENTITY_KEY=base64.b64encode(IDENTITY_KEY).decode(),
    )
    return environ


def start(
    cluster: Cluster,
    name: str,
    src: Path,
    args: list[str],
    kubeconfig: Path | None,
    env: Mapping[str, str],
) -> Proc:
    environ = {**component_env(src), **env}
    if kubeconfig is not None:
        environ["WAKEWAY_KUBECONFIG"] = str(kubeconfig)
    argv = [sys.executable, "-m", "wakeway.cli", *JSON_LOGS, *args]
    return cluster.popen_in_netns(name, argv, env=environ)


def pass_events(proc: Proc, since: int = 0) -> list[dict[str, Any]]:
    """The operator's ``pass`` events (a whole pass over its objects), from its log."""
    found = []
    text = proc.log.read_text(errors="replace")
    for line in text.splitlines()[since:]:
        if line.startswith("{") and '"pass"' in line:
            doc = json.loads(line)
            if doc.get("event") == "pass":
                found.append(doc)
    return found


async def idle_usage(procs: Mapping[str, Proc], seconds: float) -> tuple[dict[str, float], ...]:
    before = {n: cpu_seconds(p.pid) for n, p in procs.items()}
    began = time.monotonic()
    peak = {n: rss_mb(p.pid) for n, p in procs.items()}
    while time.monotonic() - began < seconds:
        await asyncio.sleep(1.0)
        for n, p in procs.items():
            peak[n] = max(peak[n], rss_mb(p.pid))
    took = time.monotonic() - began
    cpu = {n: 100 * (cpu_seconds(p.pid) - before[n]) / took for n, p in procs.items()}
    return cpu, peak


async def measure(
    cluster: Cluster,
    kube: Kube,
    label: str,
    src: Path,
    count: int,
    idle: float,
    ready_within: float,
    extra_env: Mapping[str, str],
) -> Figures:
    figures = Figures(label, count)
    ns = f"scale-{label}-{count}"
    configs = await component_kubeconfigs(cluster, "interceptor", "scaler", "operator")  # + CRD
    await create_apps(kube, ns, count)
    ready = ReadyCount(kube, ns)
    ready.start()
    procs: dict[str, Proc] = {}
    tag = f"{label}-{count}"
    operator_env = {
        "WAKEWAY_OPERATOR_MODE": "standalone",
        "WAKEWAY_OPERATOR_NAMESPACE": ns,
        "WAKEWAY_OPERATOR_SCALER_ADDRESS": f"{LO}:{SCALER}",
        "WAKEWAY_OPERATOR_HEALTH_PORT": "0",
        "WAKEWAY_OPERATOR_RESYNC": str(RESYNC),
        **extra_env,
    }
    try:
        procs["scaler"] = start(
            cluster,
            f"scale-{tag}-scaler",
            src,
            ["scaler", "--listen", f"{LO}:{SCALER}", "--interceptors", f"{LO}:{ADMIN}"],
            None,
            {"WAKEWAY_SCALER_METRICS_PORT": "0"},
        )
        procs["interceptor"] = start(
            cluster,
            f"scale-{tag}-interceptor",
            src,
            ["interceptor", "--listen", f"{LO}:{PROXY}", "--admin", f"{LO}:{ADMIN}"],
            configs["interceptor"],
            {},
        )
        procs["operator"] = start(
            cluster, f"scale-{tag}-operator", src, ["operator"], configs["operator"], operator_env
        )
        figures.ready_s = await ready.until(count, ready_within)
        figures.ready_fraction = ready.count() / count
        figures.sync_cpu_s = cpu_seconds(procs["operator"].pid)
        log(f"{tag}: ready in {figures.ready_s} s ({figures.ready_fraction:.0%})")
        if figures.ready_s is None:
            cpu, peak = await idle_usage(procs, 10)
            figures.cpu, figures.rss_mb = cpu, peak
            return figures
        # Let the first pass's own status writes come back through the watch first.
        await asyncio.sleep(5)
        lines = len(procs["operator"].log.read_text(errors="replace").splitlines())
        figures.cpu, figures.rss_mb = await idle_usage(procs, idle)
        figures.resync_passes_s = [
            float(e["seconds"])
            for e in pass_events(procs["operator"], lines)
            if e.get("reason") == "resync"
        ]
        log(f"{tag}: idle CPU {figures.cpu}, RSS {figures.rss_mb}")
        if 'event("pass"' not in (src / "wakeway/operator/controller.py").read_text():
            return figures  # an operator that does not say when a pass is over
        # A full pass: the operator again over objects that are all Ready already.
        stop(procs["operator"], 10.0)
        began = time.monotonic()
        procs["operator"] = start(
            cluster, f"scale-{tag}-operator2", src, ["operator"], configs["operator"], operator_env
        )
        while time.monotonic() - began < ready_within:
            starts = [e for e in pass_events(procs["operator"]) if e.get("reason") == "start"]
            if starts:
                figures.full_pass_s = time.monotonic() - began
                break
            await asyncio.sleep(0.2)
        log(f"{tag}: full pass after a restart: {figures.full_pass_s} s")
    finally:
        for proc in reversed(list(procs.values())):
            stop(proc, 10.0)
        await ready.informer.stop()
    return figures


async def delete_namespace(kube: Kube, ns: str, within: float = 600.0) -> None:
    await kube.delete(NAMESPACES, None, ns)
    began = time.monotonic()
    while time.monotonic() - began < within:
        try:
            await kube.get(NAMESPACES, None, ns)
        except NotFound:
            log(f"{ns}: deleted in {time.monotonic() - began:.0f} s")
            return
        await asyncio.sleep(1.0)
    log(f"{ns}: still there after {within:.0f} s; going on")


def report(rows: list[Figures]) -> str:
    def num(value: float | None, fmt: str = "{:.1f}") -> str:
        return "-" if value is None else fmt.format(value)

    head = (
        "| operator | objects | all Ready (s) | operator CPU to Ready (s) | full pass (s)"
        " | resync pass (s) | operator CPU idle"
        " (%) | operator RSS (MB) | scaler CPU idle (%) | scaler RSS (MB) | interceptor CPU idle"
        " (%) | interceptor RSS (MB) |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        ready = num(r.ready_s) if r.ready_s is not None else f"> bound ({r.ready_fraction:.0%})"
        resync = max(r.resync_passes_s) if r.resync_passes_s else None
        lines.append(
            f"| {r.label} | {r.objects} | {ready} | {num(r.sync_cpu_s)} | {num(r.full_pass_s)}"
            f" | {num(resync, '{:.2f}')}"
            f" | {num(r.cpu.get('operator'))} | {num(r.rss_mb.get('operator'), '{:.0f}')}"
            f" | {num(r.cpu.get('scaler'))} | {num(r.rss_mb.get('scaler'), '{:.0f}')}"
            f" | {num(r.cpu.get('interceptor'))} | {num(r.rss_mb.get('interceptor'), '{:.0f}')} |"
        )
    return "\n".join(lines)


async def run(cluster: Cluster, args: argparse.Namespace) -> list[Figures]:
    kube = await Kube.connect(str(cluster.kubeconfig))
    rows: list[Figures] = []
    try:
        for count in args.objects:
            if args.baseline_src is not None:
                rows.append(
                    await measure(
                        cluster,
                        kube,
                        "baseline",
                        args.baseline_src,
                        count,
                        args.idle,
                        args.ready_within,
                        {},
                    )
                )
                # The interceptor watches every namespace: leave it only the measured objects.
                await delete_namespace(kube, f"scale-baseline-{count}")
            rows.append(
                await measure(
                    cluster,
                    kube,
                    "current",
                    REPO / "src",
                    count,
                    args.idle,
                    args.ready_within,
                    dict(args.operator_env),
                )
            )
            print(report(rows), flush=True)
    finally:
        await kube.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, action="append", help="repeat: 500, 2000, ...")
    parser.add_argument("--baseline-src", type=Path, help="another tree's src/ to compare with")
    parser.add_argument("--idle", type=float, default=60.0, help="idle window (s)")
    parser.add_argument("--ready-within", type=float, default=600.0, help="bound per sync (s)")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument(
        "--operator-env",
        action="append",
        default=[],
        type=lambda kv: tuple(kv.split("=", 1)),
        metavar="NAME=VALUE",
        help="an operator setting for the current tree (e.g. WAKEWAY_OPERATOR_WORKERS=64)",
    )
    args = parser.parse_args()
    args.objects = args.objects or [500]
    if not all(1 <= n <= 10000 for n in args.objects):
        parser.error("keep it bounded: 1..10000 objects")
    if not RESYNC <= args.idle <= 600:
        parser.error(f"--idle: {RESYNC}..600 s (the window must hold a resync)")
    if os.geteuid() != 0:
        parser.error("needs root (the harness makes a network namespace)")
    cluster = Cluster(ensure(), log=log)
    try:
        cluster.start()
        log("cluster up")
        rows = asyncio.run(run(cluster, args))
    finally:
        cluster.stop()
    print(report(rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
