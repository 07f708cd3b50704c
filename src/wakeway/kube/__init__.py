"""The one Kubernetes adapter: the only importer of kubernetes_asyncio.

:class:`Kube` makes the calls (typed errors out, plain JSON kept inside this package);
:class:`Informer` keeps a typed cache of one resource by listing then watching, relisting on
410 and restarting a silent or broken watch with jittered backoff.
"""

from wakeway.kube.client import Kube, Scale
from wakeway.kube.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    KubeError,
    NotFound,
    Unauthorized,
    Unavailable,
)
from wakeway.kube.informer import Backoff, Cached, Informer

__all__ = [
    "AlreadyExists",
    "Backoff",
    "Cached",
    "Conflict",
    "Forbidden",
    "Gone",
    "Informer",
    "Invalid",
    "Kube",
    "KubeError",
    "NotFound",
    "Scale",
    "Unauthorized",
    "Unavailable",
]
