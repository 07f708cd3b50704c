"""The cluster's certificates: one CA, the API server's serving cert, client certs, SA keys."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# EC keys: generating RSA keys would cost most of the harness's own start-up time.
_CURVE = ec.SECP256R1()
_VALIDITY = datetime.timedelta(days=2)


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    ca: KeyPair
    apiserver: KeyPair
    admin: KeyPair
    controller_manager: KeyPair
    scheduler: KeyPair
    # The service-account token signing key (private) and its verifying half (public).
    sa_key: Path
    sa_pub: Path


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


class _Issuer:
    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
        self._key = ec.generate_private_key(_CURVE)
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wakeway-test-ca")])
        self.cert = (
            self._builder(self._name, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.pair = KeyPair(
            _write(directory / "ca.crt", self.cert.public_bytes(serialization.Encoding.PEM)),
            _write(directory / "ca.key", _pem_key(self._key)),
        )

    def _builder(
        self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._now)
            .not_valid_after(self._now + _VALIDITY)
        )

    def issue(
        self,
        name: str,
        common_name: str,
        organizations: tuple[str, ...] = (),
        *,
        server_names: tuple[str, ...] = (),
        server_ips: tuple[str, ...] = (),
    ) -> KeyPair:
        key = ec.generate_private_key(_CURVE)
        attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        serving = bool(server_names or server_ips)
        builder = self._builder(x509.Name(attributes), key.public_key()).add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if serving else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        if serving:
            alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in server_names]
            alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips]
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return KeyPair(
            _write(self._dir / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM)),
            _write(self._dir / f"{name}.key", _pem_key(key)),
        )


def generate(directory: Path, *, server_ips: tuple[str, ...]) -> Pki:
    """Writes a fresh PKI for one cluster into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    issuer = _Issuer(directory)
    sa = ec.generate_private_key(_CURVE)
    sa_pub = sa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Pki(
        ca=issuer.pair,
        apiserver=issuer.issue(
            "apiserver",
            "kube-apiserver",
            server_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            server_ips=server_ips,
        ),
        # system:masters bypasses RBAC: the admin identity of tests and developers.
        admin=issuer.issue("admin", "wakeway-admin", ("system:masters",)),
        # The bootstrap RBAC policy binds these user names to the components' own roles.
        controller_manager=issuer.issue("controller-manager", "system:kube-controller-manager"),
        scheduler=issuer.issue("scheduler", "system:kube-scheduler"),
        sa_key=_write(directory / "sa.key", _pem_key(sa)),
        sa_pub=_write(directory / "sa.pub", sa_pub),
    )
