"""TLS settings and the choice of certificate by server name (no sockets)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from wakeway.interceptor.settings import settings_from_env
from wakeway.interceptor.tls import Certificate, CertificateSet, TlsError, load_files
from wakeway.model.settings import SettingsError

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
