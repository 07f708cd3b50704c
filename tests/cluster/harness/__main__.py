"""Brings a cluster up for a developer, prints where it is, and tears it down on Ctrl-C.

sudo .venv/bin/python -m tests.cluster.harness [--nodes N]
"""

from __future__ import annotations

import argparse
import signal
import sys

from .binaries import Unavailable, ensure
from .cluster import Cluster, ClusterError


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster.harness", description=__doc__)
    parser.add_argument("--nodes", type=int, default=1, help="fake nodes (default 1)")
    args = parser.parse_args()
    # A shell may start us with SIGINT ignored (background jobs); Ctrl-C must still tear down.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        binaries = ensure()
    except Unavailable as e:
        print(f"cannot run a cluster here: {e}", file=sys.stderr)
        return 2
    cluster = Cluster(binaries, nodes=args.nodes, log=lambda m: print(m, file=sys.stderr))
    try:
        cluster.start()
    except ClusterError as e:
        print(f"cluster did not come up: {e}", file=sys.stderr)
        return 1
    try:
        for line in cluster.describe():
            print(line)
        print(
            f"\nexport KUBECONFIG={cluster.kubeconfig}\nCtrl-C tears the cluster down.", flush=True
        )
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
