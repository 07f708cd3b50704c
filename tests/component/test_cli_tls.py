"""``wakeway local --tls-cert/--tls-key``: a real process serving TLS with certificates the
test makes, and the one-line errors for flags or files it cannot use."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.certs import TestCA, peer_names
from tests.component.test_cli_local import CONFIG, launch, run_cli

pytestmark = pytest.mark.component


def test_local_serves_tls_with_the_certificate_for_each_name(tmp_path: Path) -> None:
    ca = TestCA.make()
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    log = tmp_path / "local.log"
    tls: list[str] = []
    for stem, name in [("default", "default.localhost"), ("app", "app.localhost")]:
        cert, key, _ = ca.write(tmp_path, stem, name)
        tls += ["--tls-cert", cert, "--tls-key", key]
    args = ["local", str(config), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", *tls]
    with launch(args, log) as (_, listening):
        port = int(listening["port"])
        client = ca.client()
        for name, names in [("app.localhost", ["app.localhost"]), ("x", ["default.localhost"])]:
            client.check_hostname = name == "app.localhost"
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                client.wrap_socket(raw, server_hostname=name) as conn,
            ):
                assert peer_names(conn.getpeercert(binary_form=True)) == names
                conn.sendall(b"GET / HTTP/1.1\r\nHost: nowhere.localhost\r\n\r\n")
                assert conn.recv(100).startswith(b"HTTP/1.1 404 ")


def test_tls_flags_and_files_it_cannot_use_are_one_line_errors(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    base = ["local", str(config), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]
    unpaired = run_cli(*base, "--tls-cert", "a.crt")
    assert unpaired.returncode == 2
    assert unpaired.stderr.strip().splitlines() == [
        "wakeway: 1 --tls-cert but 0 --tls-key: each certificate needs its key"
    ]
    missing = str(tmp_path / "missing.crt")
    absent = run_cli(*base, "--tls-cert", missing, "--tls-key", str(tmp_path / "k"))
    assert absent.returncode == 2
    assert absent.stderr.strip().splitlines()[-1].startswith(f"wakeway: TLS: {missing}: ")
