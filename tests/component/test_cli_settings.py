"""A bad setting stops a component before it starts: one line naming the variable, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.component


@pytest.mark.parametrize(
    ("command", "variable", "value", "line"),
    [
        (
            "interceptor",
            "WAKEWAY_INTERCEPTOR_CONDITON_WAIT",
            "30",
            "wakeway: WAKEWAY_INTERCEPTOR_CONDITON_WAIT: unknown variable; "
            "did you mean WAKEWAY_INTERCEPTOR_CONDITION_WAIT?",
        ),
        (
            "interceptor",
            "WAKEWAY_INTERCEPTOR_LISTEN_PORT",
            "99999",
            "wakeway: WAKEWAY_INTERCEPTOR_LISTEN_PORT: must be in 0..65535, got 99999",
        ),
        (
            "interceptor",
            "WAKEWAY_INTERCEPTOR_SERVICE",
            "wakeway",
            "wakeway: WAKEWAY_INTERCEPTOR_SERVICE: 'wakeway' is not namespace/name[:port]",
        ),
        (
            "local",
            "WAKEWAY_INTERCEPTOR_ADMIN_PORT",
            "70000",
            "wakeway: WAKEWAY_INTERCEPTOR_ADMIN_PORT: must be in 0..65535, got 70000",
        ),
        (
            "scaler",
            "WAKEWAY_SCALER_STALE_AFTR",
            "3",
            "wakeway: WAKEWAY_SCALER_STALE_AFTR: unknown variable; "
            "did you mean WAKEWAY_SCALER_STALE_AFTER?",
        ),
        (
            "operator",
            "WAKEWAY_OPERATOR_HEALTH_PORT",
            "99999",
            "wakeway: WAKEWAY_OPERATOR_HEALTH_PORT: must be in 0..65535, got 99999",
        ),
    ],
)
def test_a_bad_variable_is_one_line_and_exit_2(
    command: str, variable: str, value: str, line: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAKEWAY_", "KUBE"))}
    env[variable] = value
    args = [sys.executable, "-m", "wakeway.cli", command]
    if command == "local":
        args.append(os.devnull)
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert (proc.returncode, proc.stderr) == (2, line + "\n")
