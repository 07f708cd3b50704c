"""Element-wise path prefixes, as both sources of routes use them."""

from __future__ import annotations

from collections.abc import Iterator


def normalize_prefix(prefix: str) -> str:
    """The index key of a prefix: leading "/" ensured, trailing "/" dropped, root is ""."""
    trimmed = prefix.strip("/")
    return f"/{trimmed}" if trimmed else ""


def prefixes_of(path: str) -> Iterator[str]:
    """Every element-wise prefix key of a request path, longest first, ending with the root "".

    ``/a/b/`` and ``/a/b`` give ``/a/b``, ``/a``, ``""``. A prefix key ``/a`` matches exactly
    the paths that yield it, so walking these keys finds the longest matching prefix first.
    """
    key = path.rstrip("/")
    if key and not key.startswith("/"):
        key = "/" + key
    while key:
        yield key
        key = key[: key.rfind("/")]
    yield ""
