"""TLS on the proxy listener: certificates chosen by SNI, swapped in while the listener serves.

The listener's one ``ssl.SSLContext`` carries an SNI callback that switches each handshake to
the context of the certificate for the name the client asked for: an exact name first, then a
wildcard (``*.example.com`` covers one label), else the default certificate. The certificates
are an immutable :class:`CertificateSet` replaced in one assignment (:meth:`Terminator.swap`),
so a new certificate serves the next handshake and a connection already open keeps its own.
Every context allows TLS 1.2 and later only and offers ALPN ``h2`` and ``http/1.1``.

:class:`CertificateFiles` is the local-mode source: certificate and key files, reloaded when
their modification times change (checked every ``tls_reload_interval`` seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

log = logging.getLogger("wakeway.interceptor.tls")

ALPN = ("h2", "http/1.1")


class TlsError(ValueError):
    """A certificate or key that cannot be used; the message names the file."""


def server_context() -> ssl.SSLContext:
    """A server context with this listener's rules: TLS 1.2 or later, ALPN h2 and http/1.1."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(list(ALPN))
    return ctx


def certificate_names(cert_pem: bytes, where: str) -> tuple[str, ...]:
    """The DNS names a certificate is for: its subjectAltName DNS entries, else its subject's
    common name; lower case."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise TlsError(f"{where}: not a PEM certificate ({exc})") from None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = san.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return tuple(dict.fromkeys(n.lower().rstrip(".") for n in names))


@dataclass(frozen=True, slots=True)
class Certificate:
    names: tuple[str, ...]
    context: ssl.SSLContext
    source: str  # where it came from, for logs


def load_files(cert_file: str, key_file: str) -> Certificate:
    """One certificate (with its chain) and its key from PEM files."""
    try:
        with open(cert_file, "rb") as f:
            pem = f.read()
    except OSError as exc:
        raise TlsError(f"{cert_file}: {exc.strerror or exc}") from None
    names = certificate_names(pem, cert_file)
    ctx = server_context()
    try:
        ctx.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"{cert_file} with {key_file}: {exc}") from None
    return Certificate(names, ctx, cert_file)


def load_pem(cert_pem: bytes, key_pem: bytes, source: str) -> Certificate:
    """One certificate and its key from PEM bytes (a Secret's). ``SSLContext`` loads only
    from paths, so the bytes go through anonymous in-memory files, never onto a disk."""
    names = certificate_names(cert_pem, source)
    ctx = server_context()
    fds = [os.memfd_create("tls", os.MFD_CLOEXEC) for _ in range(2)]
    try:
        for fd, pem in zip(fds, (cert_pem, key_pem), strict=True):
            os.write(fd, pem)
        ctx.load_cert_chain(*(f"/proc/self/fd/{fd}" for fd in fds))
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"{source}: {exc}") from None
    finally:
        for fd in fds:
            os.close(fd)
    return Certificate(names, ctx, source)


def _ascii(server_name: str) -> str:
    # Python hands the SNI name over IDNA-decoded; certificates carry A-labels.
    try:
        return server_name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return server_name.lower()


@dataclass(frozen=True, slots=True)
class CertificateSet:
    """Immutable: which context serves which server name."""

    default: Certificate
    exact: Mapping[str, Certificate] = field(default_factory=dict)
    wildcard: Mapping[str, Certificate] = field(default_factory=dict)  # "example.com" for *.

    @classmethod
    def of(cls, certificates: Sequence[Certificate]) -> CertificateSet:
        """The first certificate is the default; the first to claim a name keeps it."""
        if not certificates:
            raise TlsError("no certificate")
        exact: dict[str, Certificate] = {}
        wildcard: dict[str, Certificate] = {}
        for cert in certificates:
            for name in cert.names:
                if name.startswith("*."):
                    wildcard.setdefault(name[2:], cert)
                else:
                    exact.setdefault(name, cert)
        return cls(certificates[0], exact, wildcard)

    def pick(self, server_name: str | None) -> Certificate:
        if not server_name:
            return self.default
        name = _ascii(server_name).rstrip(".")
        found = self.exact.get(name)
        if found is None:
            _, dot, parent = name.partition(".")
            found = self.wildcard.get(parent) if dot else None
        return self.default if found is None else found


class Terminator:
    """The listener's context; each handshake gets the context its SNI name picks. Without
    certificates (Secrets not read yet, or none), handshakes are refused."""

    def __init__(self, certificates: CertificateSet | None) -> None:
        self.certificates = certificates
        self.context = server_context()
        self.context.sni_callback = self._sni

    def swap(self, certificates: CertificateSet | None) -> None:
        """New handshakes use ``certificates``; open connections keep theirs."""
        self.certificates = certificates

    def _sni(self, conn: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: object) -> int | None:
        if self.certificates is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        conn.context = self.certificates.pick(name).context
        return None


class CertificateFiles:
    """Certificates from (cert, key) file pairs, reloaded when a file's mtime changes."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.pairs = tuple(pairs)
        self._stamp = self._mtimes()

    def _mtimes(self) -> tuple[int | None, ...]:
        stamps: list[int | None] = []
        for path in (p for pair in self.pairs for p in pair):
            try:
                stamps.append(os.stat(path).st_mtime_ns)
            except OSError:
                stamps.append(None)
        return tuple(stamps)

    def load(self) -> CertificateSet:
        """All the pairs now; raises :class:`TlsError` naming the file that failed."""
        self._stamp = self._mtimes()
        return CertificateSet.of([load_files(cert, key) for cert, key in self.pairs])

    def changed(self) -> bool:
        return self._mtimes() != self._stamp

    async def watch(self, terminator: Terminator, interval: float) -> None:
        """Swap in the certificates each time the files change; a set that does not load
        (a key written before its certificate, say) is logged and the old one kept until the
        files change again."""
        while True:
            await asyncio.sleep(interval)
            if not self.changed():
                continue
            try:
                certificates = self.load()
            except TlsError as exc:
                log.warning("TLS certificates not reloaded: %s", exc)
                continue
            terminator.swap(certificates)
            log.info("TLS certificates reloaded from %d file pair(s)", len(self.pairs))


async def stop(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
