"""The pod runner: the harness's stand-in for a kubelet and its container runtime.

Runs inside the cluster's network namespace. For every pod bound to one of its (kwok) nodes it
gives the pod an IP from the node's pod range, starts one podserver process per container on
that IP and the container's ports, and owns the pod's status: the pod is Running once the
processes run and Ready only while every container's server accepts connections. A server that
exits is restarted (restartPolicy Always) with its restart count raised, as a kubelet would.
Deleting the pod stops its servers, then removes the pod object.

Behaviour comes from pod annotations (see the constants below).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import ipaddress
import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

STARTUP_DELAY = "wakeway.test/startup-delay"  # seconds before the server listens
RESPONSE_DELAY = "wakeway.test/response-delay"  # seconds before each response
CRASH_AFTER = "wakeway.test/crash-after"  # the server exits after this many responses
NEVER_READY = "wakeway.test/never-ready"  # "true": the process runs but never listens
SHUTDOWN_DELAY = "wakeway.test/shutdown-delay"  # seconds it serves on after SIGTERM (else 0)
# Seconds the runner still reports a container not ready after its ports first accept (a
# readiness probe's initial delay or period, as a kubelet's would be).
READY_DELAY = "wakeway.test/ready-delay"

RESTART_BACKOFF = 1.0  # seconds; a kubelet's is 10 s and grows, too slow for tests
PROBE_PERIOD_STARTING = 0.05
PROBE_PERIOD_READY = 0.5
PROBE_TIMEOUT = 1.0
STOP_GRACE_MAX = 5.0

log = logging.getLogger("podrunner")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class IpPool:
    """Hands out pod IPs round-robin, so a freed IP is not reused while stale endpoints may
    still name it."""

    def __init__(self, cidr: str, first_host: int) -> None:
        hosts = list(ipaddress.ip_network(cidr).hosts())
        self._free_order = [str(ip) for ip in hosts[first_host - 1 :]]
        self._owner: dict[str, str] = {}
        self._next = 0

    def allocate(self, uid: str, preferred: str | None) -> str:
        if preferred in self._free_order and preferred not in self._owner:
            self._owner[preferred] = uid
            return preferred
        for _ in range(len(self._free_order)):
            ip = self._free_order[self._next]
            self._next = (self._next + 1) % len(self._free_order)
            if ip not in self._owner:
                self._owner[ip] = uid
                return ip
        raise RuntimeError("pod IP range exhausted")

    def release(self, ip: str) -> None:
        self._owner.pop(ip, None)


@dataclass
class Container:
    name: str
    image: str
    ports: list[int]
    proc: asyncio.subprocess.Process | None = None
    ready: bool = False
    restart_count: int = 0
    state: dict[str, Any] = field(default_factory=lambda: {"waiting": {"reason": "Creating"}})
    last_state: dict[str, Any] = field(default_factory=dict)

    def status(self, uid: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "containerID": f"wakeway://{uid}/{self.name}",
            "ready": self.ready,
            "started": "running" in self.state,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }


class PodWorker:
    def __init__(self, runner: Runner, pod: Any, ip: str) -> None:
        self.runner = runner
        self.namespace: str = pod.metadata.namespace
        self.name: str = pod.metadata.name
        self.uid: str = pod.metadata.uid
        self.ip = ip
        self.annotations: dict[str, str] = dict(pod.metadata.annotations or {})
        self.restart_policy: str = pod.spec.restart_policy or "Always"
        self.grace = float(
            pod.spec.termination_grace_period_seconds
            if pod.spec.termination_grace_period_seconds is not None
            else 30
        )
        self.start_time = _now()
        self.phase = "Pending"
        self.containers = [
            Container(
                name=c.name,
                image=c.image or "",
                ports=[p.container_port for p in (c.ports or []) if (p.protocol or "TCP") == "TCP"],
            )
            for c in pod.spec.containers
        ]
        self.transitions: dict[str, tuple[str, str]] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.dirty = asyncio.Event()
        self.deleting = False

    # -- status ----------------------------------------------------------------------------

    def _condition(self, kind: str, ok: bool) -> dict[str, str]:
        value = "True" if ok else "False"
        previous = self.transitions.get(kind)
        if previous is None or previous[0] != value:
            self.transitions[kind] = (value, _now())
        return {"type": kind, "status": value, "lastTransitionTime": self.transitions[kind][1]}

    def status(self) -> dict[str, Any]:
        ready = bool(self.containers) and all(c.ready for c in self.containers)
        node_ip = self.runner.node_ip
        return {
            "phase": self.phase,
            "hostIP": node_ip,
            "hostIPs": [{"ip": node_ip}],
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}],
            "startTime": self.start_time,
            "conditions": [
                self._condition("PodReadyToStartContainers", True),
                self._condition("Initialized", True),
                self._condition("ContainersReady", ready),
                self._condition("Ready", ready),
                self._condition("PodScheduled", True),
            ],
            "containerStatuses": [c.status(self.uid) for c in self.containers],
        }

    async def _status_writer(self) -> None:
        """One writer per pod; changes that arrive while a write is in flight coalesce."""
        api = self.runner.api
        while True:
            await self.dirty.wait()
            self.dirty.clear()
            for attempt in range(5):
                try:
                    await api.patch_namespaced_pod_status(
                        self.name, self.namespace, {"status": self.status()}
                    )
                    break
                except ApiException as e:
                    if e.status == 404 or (e.status == 409 and self.deleting):
                        return  # the pod is gone or going: nothing left to report
                    log.warning("status of %s/%s: %s", self.namespace, self.name, e.reason)
                except (aiohttp.ClientError, OSError, TimeoutError) as e:
                    log.warning("status of %s/%s: %r", self.namespace, self.name, e)
                await asyncio.sleep(0.2 * (attempt + 1))

    def changed(self) -> None:
        self.dirty.set()

    # -- containers ------------------------------------------------------------------------

    def _argv(self, c: Container) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "tests.cluster.harness.podserver",
            "--name",
            self.name,
            "--ip",
            self.ip,
        ]
        for port in c.ports:
            argv += ["--port", str(port)]
        a = self.annotations
        for flag, key in (
            ("--startup-delay", STARTUP_DELAY),
            ("--response-delay", RESPONSE_DELAY),
            ("--crash-after", CRASH_AFTER),
            ("--shutdown-delay", SHUTDOWN_DELAY),
        ):
            if key in a:
                argv += [flag, a[key]]
        if a.get(NEVER_READY, "").lower() == "true":
            argv.append("--never-ready")
        return argv

    async def _probe(self, c: Container) -> bool:
        for port in c.ports:
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.ip, port), PROBE_TIMEOUT
                )
            except (OSError, TimeoutError):
                return False
            writer.close()
        return True

    async def _run_container(self, c: Container) -> None:
        log_path = self.runner.log_dir / f"{self.namespace}_{self.name}_{c.name}.log"
        while True:
            with log_path.open("ab") as out:
                c.proc = await asyncio.create_subprocess_exec(
                    *self._argv(c), stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out
                )
            # Beside its log: a fault test kills the "container" (its server) by this PID.
            log_path.with_suffix(".pid").write_text(str(c.proc.pid))
            started = _now()
            c.state = {"running": {"startedAt": started}}
            c.ready = False
            self.phase = "Running"
            self.changed()
            exited = asyncio.ensure_future(c.proc.wait())
            ready_delay = float(self.annotations.get(READY_DELAY, "0"))
            accepting_since: float | None = None
            while not exited.done():
                ready = await self._probe(c)
                if ready and ready_delay:
                    now = time.monotonic()
                    accepting_since = accepting_since or now
                    ready = now - accepting_since >= ready_delay
                if ready != c.ready:
                    c.ready = ready
                    self.changed()
                period = PROBE_PERIOD_READY if ready else PROBE_PERIOD_STARTING
                await asyncio.wait([exited], timeout=period)
            code = exited.result()
            c.ready = False
            terminated = {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": started,
                "finishedAt": _now(),
                "containerID": f"wakeway://{self.uid}/{c.name}",
            }
            restart = self.restart_policy == "Always" or (
                self.restart_policy == "OnFailure" and code != 0
            )
            if not restart:
                c.state = {"terminated": terminated}
                if all("terminated" in x.state for x in self.containers):
                    failed = any(x.state["terminated"]["exitCode"] for x in self.containers)
                    self.phase = "Failed" if failed else "Succeeded"
                self.changed()
                return
            c.last_state = {"terminated": terminated}
            c.restart_count += 1
            c.state = {"waiting": {"reason": "CrashLoopBackOff"}}
            self.changed()
            await asyncio.sleep(RESTART_BACKOFF)

    def start(self) -> None:
        self.changed()
        self.tasks.append(asyncio.create_task(self._status_writer()))
        for c in self.containers:
            self.tasks.append(asyncio.create_task(self._run_container(c)))

    async def stop(self) -> None:
        """Stops the servers: TERM, then KILL after the pod's grace period (capped)."""
        self.deleting = True
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        procs = [c.proc for c in self.containers if c.proc and c.proc.returncode is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        grace = min(self.grace, STOP_GRACE_MAX)
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()

    async def delete(self) -> None:
        """What a kubelet does once a pod's containers are gone: remove the object for good."""
        await self.stop()
        with contextlib.suppress(ApiException):
            await self.runner.api.delete_namespaced_pod(
                self.name,
                self.namespace,
                body=client.V1DeleteOptions(
                    grace_period_seconds=0, preconditions=client.V1Preconditions(uid=self.uid)
                ),
            )


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.nodes: set[str] = set(args.node)
        self.node_ip: str = args.node_ip
        self.pool = IpPool(args.cidr, args.first_host)
        self.log_dir = Path(args.log_dir)
        self.ready_file = Path(args.ready_file)
        self.kubeconfig: str = args.kubeconfig
        self.workers: dict[str, PodWorker] = {}
        self.deleting: dict[str, asyncio.Task[None]] = {}
        self.api: Any = None

    def _on_pod(self, pod: Any) -> None:
        if pod.spec.node_name not in self.nodes:
            return
        uid = pod.metadata.uid
        worker = self.workers.get(uid)
        if pod.metadata.deletion_timestamp is not None:
            if worker is not None and uid not in self.deleting:
                self.deleting[uid] = asyncio.create_task(self._delete(worker))
            elif worker is None and uid not in self.deleting:
                # Not ours to run (e.g. listed after our restart): just finish the deletion.
                ghost = PodWorker(self, pod, pod.status.pod_ip or "")
                self.deleting[uid] = asyncio.create_task(self._delete(ghost))
            return
        if worker is None and (pod.status.phase or "Pending") not in ("Succeeded", "Failed"):
            ip = self.pool.allocate(uid, pod.status.pod_ip)
            worker = PodWorker(self, pod, ip)
            self.workers[uid] = worker
            worker.start()
            log.info("started %s/%s on %s", worker.namespace, worker.name, ip)

    async def _delete(self, worker: PodWorker) -> None:
        await worker.delete()
        self._forget(worker.uid)
        log.info("deleted %s/%s", worker.namespace, worker.name)

    def _forget(self, uid: str) -> None:
        worker = self.workers.pop(uid, None)
        if worker is not None:
            self.pool.release(worker.ip)
        self.deleting.pop(uid, None)

    async def _on_gone(self, uid: str) -> None:
        worker = self.workers.get(uid)
        if worker is not None and uid not in self.deleting:
            await worker.stop()
            self._forget(uid)

    async def run(self) -> None:
        await config.load_kube_config(config_file=self.kubeconfig)
        async with client.ApiClient() as api_client:
            self.api = client.CoreV1Api(api_client)
            while True:
                try:
                    await self._list_and_watch()
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # relist on anything: level-triggered
                    log.warning("pod watch: %r; relisting", e)
                    await asyncio.sleep(0.5)

    async def _list_and_watch(self) -> None:
        pods = await self.api.list_pod_for_all_namespaces()
        listed = set()
        for pod in pods.items:
            listed.add(pod.metadata.uid)
            self._on_pod(pod)
        for uid in set(self.workers) - listed:
            await self._on_gone(uid)
        self.ready_file.touch()
        async with watch.Watch().stream(
            self.api.list_pod_for_all_namespaces,
            resource_version=pods.metadata.resource_version,
            timeout_seconds=120,
        ) as stream:
            async for event in stream:
                pod = event["object"]
                if event["type"] == "DELETED":
                    await self._on_gone(pod.metadata.uid)
                else:
                    self._on_pod(pod)

    async def shutdown(self) -> None:
        await asyncio.gather(*(w.stop() for w in self.workers.values()), return_exceptions=True)


async def _main(args: argparse.Namespace) -> None:
    runner = Runner(args)
    loop = asyncio.get_running_loop()
    main_task = asyncio.create_task(runner.run())
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, main_task.cancel)
    try:
        await main_task
    except asyncio.CancelledError:
        pass
    finally:
        await runner.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node", action="append", required=True)
    parser.add_argument("--node-ip", required=True)
    parser.add_argument("--cidr", required=True)
    parser.add_argument("--first-host", type=int, default=10)
    parser.add_argument("--log-dir", required=True)
    parser.add_argument("--ready-file", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
