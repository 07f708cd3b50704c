"""Kubernetes mode: TLS certificates from ``kubernetes.io/tls`` Secrets, watched.

Only Secrets in the interceptor's own namespace labelled ``wakeway.dev/tls-certificate`` are
read (a namespaced Role; tenants cannot write there, so none can claim another's host name).
Every change rebuilds the whole :class:`~.tls.CertificateSet` and swaps it in: new handshakes
get it, open connections keep theirs. A Secret's certificate is loaded again only when its
resourceVersion changed; one that does not parse or load is logged and its previous
certificate (if it had one) keeps serving.
"""

from __future__ import annotations

import logging

from wakeway.kube import Kube
from wakeway.kube.informer import Informer
from wakeway.kube.resources import SECRETS
from wakeway.model.tlssecret import TLS_CERTIFICATE_LABEL, TlsSecret, parse_tls_secret

from .tls import Certificate, CertificateSet, Terminator, TlsError, load_pem

log = logging.getLogger("wakeway.interceptor.tls")


class SecretCertificates:
    def __init__(self, kube: Kube, namespace: str, terminator: Terminator) -> None:
        self.terminator = terminator
        self.secrets: Informer[TlsSecret] = Informer(
            kube,
            SECRETS,
            parse_tls_secret,
            namespace=namespace,
            label_selector=TLS_CERTIFICATE_LABEL,
        )
        self.secrets.add_handler(lambda _key: self._rebuild())
        # Secret key -> (resourceVersion, its certificate, whether it is the default).
        self._loaded: dict[str, tuple[str, Certificate, bool]] = {}
        self.swaps = 0

    async def start(self) -> None:
        """Start watching; returns once the Secrets have been listed and loaded."""
        self.secrets.start()
        await self.secrets.synced.wait()
        self._rebuild()

    async def stop(self) -> None:
        await self.secrets.stop()

    def _rebuild(self) -> None:
        if not self.secrets.synced.is_set():
            return
        items = self.secrets.items()
        loaded: dict[str, tuple[str, Certificate, bool]] = {}
        for key in sorted(items):
            cached = items[key]
            before = self._loaded.get(key)
            secret = cached.value
            if secret is None:
                log.warning("TLS Secret %s not used: %s", key, cached.error)
            elif before is not None and before[0] == secret.meta.resource_version:
                loaded[key] = before
                continue
            else:
                try:
                    cert = load_pem(secret.cert_pem, secret.key_pem, f"Secret {key}")
                except TlsError as exc:
                    log.warning("TLS Secret not used: %s", exc)
                else:
                    loaded[key] = (secret.meta.resource_version, cert, secret.default)
                    log.info("TLS certificate from Secret %s for %s", key, ", ".join(cert.names))
                    continue
            if before is not None:  # keep what it served before
                loaded[key] = before
        self._loaded = loaded
        defaults = [cert for _, cert, default in loaded.values() if default]
        others = [cert for _, cert, default in loaded.values() if not default]
        certs = defaults + others
        self.terminator.swap(CertificateSet.of(certs) if certs else None)
        self.swaps += 1
