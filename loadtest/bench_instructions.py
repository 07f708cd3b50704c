"""Instructions per request of the interceptor at two commits, counted by callgrind.

CPU time per request on a shared machine moves by several per cent between identical runs;
the instruction count does not. Each commit is checked out in a temporary git worktree, run as
``loadtest.bench_proxy_server`` under ``valgrind --tool=callgrind`` in front of nginx, and sent
N1 and then (in a fresh process) N2 sequential keep-alive GETs; (Ir(N2) - Ir(N1)) / (N2 - N1)
is what one request costs, start-up cancelled out.

Usage: python -m loadtest.bench_instructions BASE [HEAD] [--requests 100 600]
Needs valgrind and nginx (apt-get install valgrind nginx). Each run takes about a minute.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from loadtest.common import free_ports
from loadtest.loadgen import BACKEND_BODY, start_nginx, wait_port

REPO = Path(__file__).resolve().parents[1]


def instructions(tree: Path, backend_port: int, requests: int, out: Path) -> int:
    """Instructions callgrind counted in one proxy process that answered ``requests``."""
    env = dict(os.environ, PYTHONPATH=f"{tree}/src:{tree}")
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]
    proc = subprocess.Popen(
        [*argv, "-m", "loadtest.bench_proxy_server", str(backend_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tree,
        env=env,
    )
    assert proc.stdout is not None
    port = json.loads(proc.stdout.readline())["proxy"]
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for _ in range(requests):
        client.request("GET", "/", headers={"Host": "bench.example"})
        client.getresponse().read()
    client.close()
    proc.send_signal(signal.SIGTERM)
    proc.wait(300)
    found = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
    assert found, f"no totals in {out}"
    return int(found.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("base", help="the commit to compare against")
    ap.add_argument("head", nargs="?", default="HEAD")
    ap.add_argument("--requests", nargs=2, type=int, default=[100, 600], metavar=("N1", "N2"))
    args = ap.parse_args()
    n1, n2 = args.requests
    work = Path(tempfile.mkdtemp(prefix="wakeway-instructions-"))
    (backend_port,) = free_ports(1)
    body = BACKEND_BODY.format(address="127.0.0.1", port=backend_port, dir=work)
    nginx = start_nginx(work, "backend", body)
    trees: list[Path] = []
    try:
        wait_port(backend_port)
        per: dict[str, float] = {}
        for name, commit in (("base", args.base), ("head", args.head)):
            tree = work / name
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(tree), commit],
                check=True,
            )
            trees.append(tree)
            low = instructions(tree, backend_port, n1, work / f"{name}-{n1}.out")
            high = instructions(tree, backend_port, n2, work / f"{name}-{n2}.out")
            per[name] = (high - low) / (n2 - n1)
            print(f"{name} ({commit}): {per[name]:.0f} instructions per request", flush=True)
        print(f"head/base: {per['head'] / per['base']:.4f}")
    finally:
        nginx.terminate()
        nginx.wait()
        for tree in trees:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False
            )


if __name__ == "__main__":
    main()
