"""Run one wakeway interceptor for the load tests: every host routed to one backend address.

Usage: python -m loadtest.bench_proxy_server [BACKEND_PORT [h2c]]
``WAKEWAY_INTERCEPTOR_*`` variables apply (``..._WORKERS=2``: two worker processes).
With ``h2c`` the backend is spoken to over HTTP/2 without TLS (bench_h2_ab.py). Without
BACKEND_PORT the target stays cold (no endpoint), so every request is held: that is how
held_rss.py measures memory per held request and bench_scaler.py times wakes. Listens on
loopback ports the OS picks and prints them once listening, as one JSON line:
``{"proxy": PORT, "admin": PORT}``. :func:`spawn` runs it as a child process.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import select
import signal
import subprocess
import sys
from pathlib import Path

import uvloop

from loadtest.common import OneTarget
from wakeway.interceptor import Interceptor, InterceptorSettings
from wakeway.interceptor.settings import settings_from_env
from wakeway.model.httpso import parse_httpscaledobject

REPO = Path(__file__).resolve().parents[1]
TARGET = parse_httpscaledobject(
    {
        "apiVersion": "http.keda.sh/v1alpha1",
        "kind": "HTTPScaledObject",
        "metadata": {"name": "bench", "namespace": "bench"},
        "spec": {
            "scaleTargetRef": {"name": "bench", "service": "backend", "port": 80},
            "timeouts": {"conditionWait": "10m"},
            "coldStart": {"maxHeldRequests": 1000000},
        },
    }
)


async def serve(backend_port: int | None, h2c: bool = False) -> None:
    settings = InterceptorSettings(
        listen_host="127.0.0.1",
        listen_port=0,
        admin_host="127.0.0.1",
        admin_port=0,
        max_held_total=1000000,
        header_read_timeout=600.0,
    )
    interceptor = Interceptor(settings_from_env(base=settings))
    await interceptor.start()
    interceptor.set_router(OneTarget(TARGET))
    if backend_port is not None:
        key = TARGET.backend.key(TARGET.namespace)
        interceptor.set_endpoints({key: [("127.0.0.1", backend_port)]}, h2c=[key] if h2c else [])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    ports = {"proxy": interceptor.proxy_port, "admin": interceptor.admin_port}
    print(json.dumps(ports), flush=True)
    await stop.wait()
    await interceptor.drain_and_stop(drain_timeout=1.0)


def spawn(
    module: str, *args: str, within: float = 30.0, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], dict[str, int]]:
    """``python -m module args`` whose first stdout line is a JSON object of the ports it
    listens on (within ``within`` seconds); the process and those ports. The caller stops it.
    ``env``: variables added to this process's environment."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=None if env is None else {**os.environ, **env},
    )
    assert proc.stdout is not None
    line = ""
    if select.select([proc.stdout], [], [], within)[0]:
        line = proc.stdout.readline()
    try:
        ports: dict[str, int] = json.loads(line)
    except ValueError:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{module} did not start within {within:g}s: {line!r}") from None
    return proc, ports


def spawn_interceptor(
    backend_port: int | None = None,
    *,
    h2c: bool = False,
    workers: int = 1,
    listener: str = "reuseport",
) -> tuple[subprocess.Popen[str], int, int]:
    """This interceptor as a child process; it, its proxy port and its admin port. ``h2c``:
    the backend speaks HTTP/2 without TLS; ``workers``: its worker processes, listening as
    ``listener`` says (the ``workers_listener`` setting)."""
    args = [] if backend_port is None else [str(backend_port)]
    if h2c:
        args.append("h2c")
    env = {
        "WAKEWAY_INTERCEPTOR_WORKERS": str(workers),
        "WAKEWAY_INTERCEPTOR_WORKERS_LISTENER": listener,
    }
    proc, ports = spawn("loadtest.bench_proxy_server", *args, env=env)
    return proc, ports["proxy"], ports["admin"]


def main() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    backend = int(sys.argv[1]) if len(sys.argv) > 1 else None
    uvloop.run(serve(backend, h2c=sys.argv[2:3] == ["h2c"]))


if __name__ == "__main__":
    main()
