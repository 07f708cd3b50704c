"""An address already in use stops a component with one line naming the address and the flag
or setting that changes it (exit 2), never a traceback. Each case holds a real listening socket
on the address the component is told to use."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.component

ROOT = Path(__file__).resolve().parents[2]
# A kubeconfig naming an API server nobody serves: components load it, then listen first.
KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""


@pytest.fixture
def busy() -> Iterator[int]:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("WAKEWAY_", "KUBE"))}
    return subprocess.run(
        [sys.executable, "-m", "wakeway.cli", "--log-level", "WARNING", *args],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("component", "change"),
    [
        ("local --listen", "--listen"),
        ("local --admin", "--admin"),
        ("interceptor --admin", "--admin (or WAKEWAY_INTERCEPTOR_ADMIN_HOST/_PORT)"),
        ("scaler --listen", "--listen (or WAKEWAY_SCALER_LISTEN_HOST/_PORT)"),
        ("scaler metrics", "WAKEWAY_SCALER_METRICS_HOST/_PORT (port 0: no metrics server)"),
        (
            "operator health",
            "WAKEWAY_OPERATOR_HEALTH_HOST/_PORT (port 0: no health server)",
        ),
    ],
)
def test_a_busy_address_is_one_line_naming_it_and_the_way_to_change_it(
    busy: int, tmp_path: Path, component: str, change: str
) -> None:
    taken, free = f"127.0.0.1:{busy}", "127.0.0.1:0"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    demo = str(ROOT / "examples" / "local")
    env: dict[str, str] = {}
    if component == "local --listen":
        args = ["local", demo, "--listen", taken, "--admin", free]
    elif component == "local --admin":
        args = ["local", demo, "--listen", free, "--admin", taken]
    elif component == "interceptor --admin":
        args = ["interceptor", "--listen", free, "--admin", taken]
        env = {"WAKEWAY_KUBECONFIG": str(kubeconfig)}
    elif component == "scaler --listen":
        args = ["scaler", "--listen", taken, "--interceptors", "127.0.0.1:1"]
        env = {"WAKEWAY_SCALER_METRICS_PORT": "0"}  # not the default 9092, which may be taken
    elif component == "scaler metrics":
        args = ["scaler", "--listen", free, "--interceptors", "127.0.0.1:1"]
        env = {"WAKEWAY_SCALER_METRICS_HOST": "127.0.0.1", "WAKEWAY_SCALER_METRICS_PORT": str(busy)}
    else:
        args = ["operator", "--mode", "standalone", "--kubeconfig", str(kubeconfig)]
        env = {
            "WAKEWAY_OPERATOR_HEALTH_HOST": "127.0.0.1",
            "WAKEWAY_OPERATOR_HEALTH_PORT": str(busy),
        }
    proc = run(args, env)
    line = f"wakeway: cannot listen on {taken}: address already in use; change it with {change}"
    assert (proc.returncode, proc.stderr) == (2, line + "\n")
