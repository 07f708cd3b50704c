"""TLS settings and the choice of certificate by server name (no sockets)."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path
from typing import Any

import pytest

from tests.certs import TestCA
from wakeway.interceptor.settings import settings_from_env
from wakeway.interceptor.tls import Certificate, CertificateSet, TlsError, load_files, load_pem
from wakeway.model.errors import ModelError
from wakeway.model.settings import SettingsError
from wakeway.model.tlssecret import parse_tls_secret

pytestmark = pytest.mark.unit

VARIABLE = "WAKEWAY_INTERCEPTOR_TLS_CERTIFICATES"


def test_certificate_pairs_read_from_the_environment() -> None:
    assert settings_from_env({}).tls_certificates == ()
    settings = settings_from_env({VARIABLE: "/a.crt:/a.key, /b.crt:/b.key,"})
    assert settings.tls_certificates == (("/a.crt", "/a.key"), ("/b.crt", "/b.key"))


@pytest.mark.parametrize("value", ["/a.crt", "/a.crt:", ":/a.key", "/a.crt:/a.key:/c"])
def test_a_pair_without_cert_and_key_is_an_error_naming_the_variable(value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        settings_from_env({VARIABLE: value})
    assert caught.value.name == VARIABLE
    assert "is not CERT_FILE:KEY_FILE" in caught.value.problem


def cert(*names: str) -> Certificate:
    return Certificate(names, ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), names[0])


DEFAULT = cert("default.test")
APP = cert("app.example.com", "api.example.com")
WILD = cert("*.wild.test")
EXACT = cert("exact.wild.test")
LATE = cert("app.example.com")  # later than APP for the same name: APP keeps it
CERTS = CertificateSet.of([DEFAULT, APP, WILD, EXACT, LATE])


@pytest.mark.parametrize(
    ("server_name", "expected"),
    [
        ("app.example.com", APP),
        ("API.Example.com", APP),
        ("app.example.com.", APP),
        ("a.wild.test", WILD),
        ("exact.wild.test", EXACT),
        ("a.b.wild.test", DEFAULT),
        ("wild.test", DEFAULT),
        ("other.test", DEFAULT),
        ("", DEFAULT),
        (None, DEFAULT),
    ],
)
def test_pick(server_name: str | None, expected: Certificate) -> None:
    assert CERTS.pick(server_name) is expected


def test_no_certificate_is_an_error() -> None:
    with pytest.raises(TlsError, match="no certificate"):
        CertificateSet.of([])


def test_a_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.crt")
    with pytest.raises(TlsError, match=f"^{missing}: "):
        load_files(missing, str(tmp_path / "missing.key"))
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate")
    with pytest.raises(TlsError, match=f"^{garbage}: not a PEM certificate"):
        load_files(str(garbage), str(tmp_path / "missing.key"))


def secret_doc(**changes: Any) -> dict[str, Any]:
    cert, key, _ = TestCA.make().issue("secure.example.com")
    doc: dict[str, Any] = {
        "metadata": {"name": "secure", "namespace": "wakeway", "resourceVersion": "7"},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(cert).decode(),
            "tls.key": base64.b64encode(key).decode(),
        },
    }
    doc.update(changes)
    return doc


def test_a_tls_secret_parses_and_loads_from_memory() -> None:
    secret = parse_tls_secret(secret_doc())
    assert secret.key == "wakeway/secure"
    assert "BEGIN" not in repr(secret)  # no key material in a log line
    assert not secret.default
    cert = load_pem(secret.cert_pem, secret.key_pem, "Secret wakeway/secure")
    assert cert.names == ("secure.example.com",)
    labelled = secret_doc(
        metadata={"name": "d", "labels": {"wakeway.dev/tls-certificate": "default"}}
    )
    assert parse_tls_secret(labelled).default


@pytest.mark.parametrize(
    ("changes", "path", "says"),
    [
        ({"type": "Opaque"}, "type", "must be kubernetes.io/tls, got Opaque"),
        ({"data": {"tls.key": "eA=="}}, "data.tls.crt", "is required"),
        ({"data": {"tls.crt": "eA==", "tls.key": "not base64!"}}, "data.tls.key", "not base64"),
    ],
)
def test_a_secret_that_cannot_be_used_names_the_field(
    changes: dict[str, Any], path: str, says: str
) -> None:
    with pytest.raises(ModelError) as caught:
        parse_tls_secret(secret_doc(**changes))
    assert caught.value.path == path
    assert says in caught.value.message


def test_a_key_that_is_not_the_certificates_is_refused_naming_the_secret() -> None:
    ca = TestCA.make()
    cert, _, _ = ca.issue("a.example.com")
    _, other_key, _ = ca.issue("a.example.com")
    with pytest.raises(TlsError, match=r"^Secret ns/a: "):
        load_pem(cert, other_key, "Secret ns/a")


def test_secrets_and_files_together_are_an_error() -> None:
    with pytest.raises(SettingsError) as caught:
        settings_from_env({VARIABLE: "/a.crt:/a.key", "WAKEWAY_INTERCEPTOR_TLS_SECRETS": "true"})
    assert caught.value.name == "WAKEWAY_INTERCEPTOR_TLS_SECRETS"
    assert "not together with tls_certificates" in caught.value.problem
