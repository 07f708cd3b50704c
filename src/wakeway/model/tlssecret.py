"""The ``kubernetes.io/tls`` Secrets the interceptor serves TLS with (docs/protocols.md#tls).

Only Secrets in the interceptor's own namespace carrying :data:`TLS_CERTIFICATE_LABEL` are
read: ``"default"`` marks the certificate for clients whose name matches none (otherwise the
first by name is), any other value just takes part.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wakeway.model import fields as f
from wakeway.model.errors import ModelError
from wakeway.model.meta import ObjectMeta, parse_meta

TLS_SECRET_TYPE = "kubernetes.io/tls"
TLS_CERTIFICATE_LABEL = "wakeway.dev/tls-certificate"


@dataclass(frozen=True, slots=True)
class TlsSecret:
    meta: ObjectMeta
    cert_pem: bytes = field(repr=False)  # data["tls.crt"]: the certificate and its chain
    key_pem: bytes = field(repr=False)  # data["tls.key"]: never in a log line

    @property
    def key(self) -> str:
        return self.meta.key

    @property
    def default(self) -> bool:
        return self.meta.labels.get(TLS_CERTIFICATE_LABEL) == "default"


def _pem(data: Mapping[str, Any], name: str) -> bytes:
    text = f.req_str(data, name, "data")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ModelError(f.join("data", name), "is not base64") from None


def parse_tls_secret(doc: Mapping[str, Any]) -> TlsSecret:
    meta = parse_meta(doc, "default")
    kind = f.opt_str(doc, "type", "", "Opaque")
    if kind != TLS_SECRET_TYPE:
        raise ModelError("type", f"must be {TLS_SECRET_TYPE}, got {kind}")
    data = f.req_mapping(doc, "data", "")
    return TlsSecret(meta, _pem(data, "tls.crt"), _pem(data, "tls.key"))
