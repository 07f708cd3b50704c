"""One running instance of a LocalWorkload: spawn, readiness check, stop (SIGTERM, then SIGKILL).

The process gets its own process group so that stopping it also stops whatever it spawned.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from dataclasses import dataclass

from wakeway.model.local import LocalWorkload

READINESS_INTERVAL = 0.02  # between readiness probes of a starting process
PROBE_TIMEOUT = 1.0


class StartFailed(Exception):
    """The workload exited or did not become ready in time; the message says which."""


@dataclass(frozen=True, slots=True)
class Started:
    pid: int
    port: int
    seconds: float  # spawn to ready


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class WorkloadProcess:
    """Owns one child process; not reused after it stopped."""

    def __init__(self, workload: LocalWorkload, host: str = "127.0.0.1") -> None:
        self.workload = workload
        self.host = host
        self.port = workload.port or free_port(host)
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def exited(self) -> bool:
        return self._proc is not None and self._proc.returncode is not None

    async def start(self) -> Started:
        """Spawn and wait until ready; on failure the process is stopped and StartFailed raised."""
        w = self.workload
        began = time.monotonic()
        env = {**os.environ, **w.env, "PORT": str(self.port)}
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *w.argv(self.port),
                env=env,
                cwd=w.working_dir,
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            raise StartFailed(f"cannot run {w.command[0]!r}: {exc.strerror or exc}") from None
        deadline = began + w.startup_timeout
        try:
            while True:
                if self._proc.returncode is not None:
                    self._signal(signal.SIGKILL)  # whatever it left behind in its group
                    raise StartFailed(
                        f"exited with code {self._proc.returncode} before it was ready"
                    )
                if await self._probe():
                    return Started(self._proc.pid, self.port, time.monotonic() - began)
                if time.monotonic() >= deadline:
                    await self.stop()
                    raise StartFailed(
                        f"not ready within its startupTimeout of {w.startup_timeout:g}s"
                    )
                await asyncio.sleep(READINESS_INTERVAL)
        except asyncio.CancelledError:
            # Local mode is stopping mid-start: the process must not outlive it.
            self.kill_now()
            raise

    async def wait(self) -> int:
        """Until the process exits; its return code."""
        assert self._proc is not None
        return await self._proc.wait()

    async def stop(self) -> str:
        """SIGTERM the process group, SIGKILL after the grace period; how it ended."""
        proc = self._proc
        if proc is None:
            return "never started"
        if proc.returncode is not None:
            self._signal(signal.SIGKILL)  # its group may still hold children
            return "already exited"
        self._signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.workload.stop_grace_period)
            return "SIGTERM"
        except TimeoutError:
            self._signal(signal.SIGKILL)
            await proc.wait()
            return f"SIGKILL after {self.workload.stop_grace_period:g}s"

    def kill_now(self) -> None:
        """Last resort at exit: SIGKILL the process group without waiting."""
        if self._proc is not None:
            self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, sig)

    async def _probe(self) -> bool:
        readiness = self.workload.readiness
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), PROBE_TIMEOUT
            )
        except (OSError, TimeoutError):
            return False
        try:
            if readiness.type == "TCP":
                return True
            request = (
                f"GET {readiness.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                "User-Agent: wakeway-readiness\r\nConnection: close\r\n\r\n"
            )
            writer.write(request.encode())
            status_line = await asyncio.wait_for(reader.readline(), PROBE_TIMEOUT)
            parts = status_line.split()
            return len(parts) >= 2 and parts[1].isdigit() and 200 <= int(parts[1]) < 500
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
