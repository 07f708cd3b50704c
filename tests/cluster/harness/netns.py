"""The network namespace a cluster lives in, and a thread that works inside it.

Python 3.11 has no os.setns, so a dedicated thread calls libc's setns once and then runs
whatever it is given there: a socket created on that thread belongs to the namespace for its
whole life, whichever thread later uses it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_CLONE_NEWNET = 0x40000000
_NETNS_DIR = Path("/var/run/netns")
PREFIX = "wakeway-"


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def pids_in(name: str) -> list[int]:
    """The processes living in a namespace: only ever ones this harness started there."""
    out = subprocess.run(
        ["ip", "netns", "pids", name], capture_output=True, text=True, timeout=30, check=False
    )
    return [int(p) for p in out.stdout.split()]


def kill_all_in(name: str, *, grace: float = 3.0) -> None:
    """TERM, then KILL, every process left in the namespace (by PID)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = pids_in(name)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and pids_in(name):
            time.sleep(0.05)


def owner_alive(name: str) -> bool:
    """Namespaces are named after the PID that made them; is that process still there?"""
    try:
        pid = int(name.removeprefix(PREFIX).split("-", 1)[0])
    except ValueError:
        return True  # not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> list[str]:
    """Deletes namespaces left by harness processes that died without tearing down."""
    removed: list[str] = []
    if not _NETNS_DIR.is_dir():
        return removed
    for entry in _NETNS_DIR.iterdir():
        if entry.name.startswith(PREFIX) and not owner_alive(entry.name):
            kill_all_in(entry.name)
            subprocess.run(["ip", "netns", "del", entry.name], check=False, timeout=30)
            removed.append(entry.name)
    return removed


class NetNs:
    """A named network namespace with `lo` up and `cidr` local on it."""

    def __init__(self, name: str, local_address: str) -> None:
        self.name = name
        self.local_address = local_address
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def create(self) -> None:
        _ip("netns", "add", self.name)
        _ip("-n", self.name, "link", "set", "lo", "up")
        # An address with a prefix on `lo` makes the whole prefix local: every pod IP in it can
        # be bound without adding one address per pod.
        _ip("-n", self.name, "addr", "add", self.local_address, "dev", "lo")
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=4,
            thread_name_prefix=f"netns-{self.name}",
            initializer=self.enter_on_this_thread,
        )

    def enter_on_this_thread(self) -> None:
        """Moves the calling thread (only) into the namespace."""
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        fd = os.open(_NETNS_DIR / self.name, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(fd, _CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns into {self.name}: {os.strerror(err)}")
        finally:
            os.close(fd)

    def call(self, fn: Callable[[], T]) -> T:
        """Runs `fn` on a thread inside the namespace and returns its result."""
        return self.submit(fn).result()

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        if self._executor is None:
            raise RuntimeError(f"namespace {self.name} is not up")
        return self._executor.submit(fn)

    def socket(self) -> socket.socket:
        """A fresh non-blocking TCP socket that belongs to the namespace."""

        def make() -> socket.socket:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            return s

        return self.call(make)

    def command(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def delete(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if (_NETNS_DIR / self.name).exists():
            kill_all_in(self.name)
            subprocess.run(["ip", "netns", "del", self.name], check=False, timeout=30)
