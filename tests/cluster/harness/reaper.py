"""Cleans up after a harness process that died without tearing down (e.g. SIGKILL).

The harness starts one reaper per cluster, outside the namespace and in its own session. It
waits for the harness to exit; if the namespace is still there by then, it ends every process
in it, deletes it and removes the cluster's temp directory. A harness that tears down normally
stops its reaper itself.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import subprocess
from pathlib import Path

from .netns import kill_all_in


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--netns", required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the harness's to handle
    try:
        fd = os.pidfd_open(args.pid)
    except ProcessLookupError:
        pass  # already gone: clean up now
    else:
        select.select([fd], [], [])  # readable once the process has exited
    if Path("/var/run/netns", args.netns).exists():
        kill_all_in(args.netns)
        subprocess.run(["ip", "netns", "del", args.netns], check=False, timeout=30)
    shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
