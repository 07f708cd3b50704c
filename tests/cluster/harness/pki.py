"""The cluster's certificates: one CA, the API server's serving cert, client certs, SA keys,
and the API aggregation layer's front-proxy CA with the client cert the API server proxies as."""

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
FRONT_PROXY_CLIENT = "front-proxy-client"  # the API server's --requestheader-allowed-names


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
    # API aggregation: the API server proxies to an aggregated API server with this client cert,
    # which that server checks against the front-proxy CA (published in kube-system's
    # extension-apiserver-authentication ConfigMap) before trusting the user headers.
    front_proxy_ca: KeyPair
    front_proxy_client: KeyPair

    def serving(
        self, name: str, *, server_names: tuple[str, ...] = (), server_ips: tuple[str, ...] = ()
    ) -> KeyPair:
        """A serving cert from the cluster CA (e.g. for an aggregated API server): the API
        server trusts it through an APIService's caBundle, the cluster CA."""
        issuer = _Issuer.load(self.ca)
        return issuer.issue(name, name, server_names=server_names, server_ips=server_ips)


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
    """A CA that signs certs into `directory`: a new one (`create`) or one written earlier."""

    def __init__(self, directory: Path, key: ec.EllipticCurvePrivateKey, pair: KeyPair) -> None:
        self._dir = directory
        self._now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
        self._key = key
        self.pair = pair
        self._name = x509.load_pem_x509_certificate(pair.cert.read_bytes()).subject

    @classmethod
    def create(cls, directory: Path, name: str, common_name: str) -> _Issuer:
        now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
        key = ec.generate_private_key(_CURVE)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + _VALIDITY)
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
            .sign(key, hashes.SHA256())
        )
        pair = KeyPair(
            _write(directory / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM)),
            _write(directory / f"{name}.key", _pem_key(key)),
        )
        return cls(directory, key, pair)

    @classmethod
    def load(cls, pair: KeyPair) -> _Issuer:
        key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError(f"{pair.key} is not an EC key")
        return cls(pair.cert.parent, key, pair)

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
    issuer = _Issuer.create(directory, "ca", "wakeway-test-ca")
    front_proxy = _Issuer.create(directory, "front-proxy-ca", "wakeway-front-proxy-ca")
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
        front_proxy_ca=front_proxy.pair,
        front_proxy_client=front_proxy.issue("front-proxy-client", FRONT_PROXY_CLIENT),
    )
