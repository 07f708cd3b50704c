"""One running instance of a LocalWorkload: spawn, readiness check, stop (SIGTERM, then SIGKILL).

The process runs in a process group of its own, so stopping it also stops whatever it spawned.
The group is led by a tiny ``sh`` that holds the read end of a pipe whose write end only local
mode has: when local mode dies, however (even SIGKILL), the pipe reports end of file and the
shell kills its whole group. So a workload never outlives local mode, and the group id stays
valid for as long as the shell lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import BinaryIO

from wakeway.model.local import LocalWorkload

# The group leader: ignores the signals meant for the workload; at end of file on its stdin
# (local mode closed the pipe, or died) it kills its own process group, itself included.
GROUP_LEADER = ("/bin/sh", "-c", "trap '' TERM INT HUP; read -r _; kill -s KILL 0")
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


def port_in_use(host: str, port: int) -> bool:
    """Something listens on ``port`` (on ``host`` or on every address): a readiness check there
    would pass for it, not for the workload."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


class WorkloadProcess:
    """Owns one child process; not reused after it stopped."""

    def __init__(self, workload: LocalWorkload, host: str = "127.0.0.1") -> None:
        self.workload = workload
        self.host = host
        self.port = workload.port or free_port(host)
        self._proc: asyncio.subprocess.Process | None = None
        self._leader: asyncio.subprocess.Process | None = None
        self._lifeline: int | None = None  # write end of the group leader's pipe
        self._output: asyncio.Task[None] | None = None  # relays its output, prefixed

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
        if w.port is not None and port_in_use(self.host, self.port):
            raise StartFailed(
                f"port {self.host}:{self.port} is already in use by another process "
                "(a workload left over from an earlier run?)"
            )
        env = {**os.environ, **w.env, "PORT": str(self.port)}
        leader = await self._start_group()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *w.argv(self.port),
                env=env,
                cwd=w.working_dir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=functools.partial(os.setpgid, 0, leader),  # uvloop: no process_group
            )
        except OSError as exc:
            await self._end_group()
            raise StartFailed(f"cannot run {w.command[0]!r}: {exc.strerror or exc}") from None
        assert self._proc.stdout is not None
        self._output = asyncio.create_task(
            relay_lines(self._proc.stdout, f"{w.meta.name} | ".encode(), sys.stdout.buffer)
        )
        deadline = began + w.startup_timeout
        try:
            while True:
                if self._proc.returncode is not None:
                    await self._end_group()  # whatever it left behind in its group
                    raise StartFailed(
                        f"exited with code {self._proc.returncode} before it was ready"
                    )
                if await self._probe() and self._proc.returncode is None:
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
            await self._end_group()
            return "never started"
        if proc.returncode is not None:
            await self._end_group()  # its group may still hold children
            return "already exited"
        self._signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.workload.stop_grace_period)
            how = "SIGTERM"
        except TimeoutError:
            self._signal(signal.SIGKILL)
            await proc.wait()
            how = f"SIGKILL after {self.workload.stop_grace_period:g}s"
        await self._end_group()  # children that outlived it
        return how

    def kill_now(self) -> None:
        """Last resort at exit: SIGKILL the process group without waiting."""
        self._signal(signal.SIGKILL)
        self._close_lifeline()

    async def _start_group(self) -> int:
        """Spawn the group leader; its pid is the group id."""
        read_end, self._lifeline = os.pipe()
        try:
            self._leader = await asyncio.create_subprocess_exec(
                *GROUP_LEADER, stdin=read_end, preexec_fn=functools.partial(os.setpgid, 0, 0)
            )
        except OSError as exc:
            self._close_lifeline()
            raise StartFailed(f"cannot run {GROUP_LEADER[0]}: {exc.strerror or exc}") from None
        finally:
            os.close(read_end)
        return self._leader.pid

    async def _end_group(self) -> None:
        """SIGKILL what is left of the group, the leader included, and reap the leader."""
        self._signal(signal.SIGKILL)
        self._close_lifeline()
        if self._leader is not None:
            await self._leader.wait()
        output, self._output = self._output, None
        if output is not None:  # the group is gone: its output ends (or is cut off) now
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(output, 1.0)

    def _close_lifeline(self) -> None:
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None

    def _signal(self, sig: signal.Signals) -> None:
        leader = self._leader
        if leader is None or leader.returncode is not None:
            return  # no group left (the leader lives as long as the group has a use)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, sig)

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


async def relay_lines(source: asyncio.StreamReader, prefix: bytes, sink: BinaryIO) -> None:
    """Copy ``source`` to ``sink`` line by line, each line after ``prefix``, until its end."""
    while True:
        try:
            line = await source.readline()
        except ValueError:  # a line over the reader's limit, which drops it: go on
            continue
        if not line:
            return
        sink.write(prefix + (line if line.endswith(b"\n") else line + b"\n"))
        sink.flush()
