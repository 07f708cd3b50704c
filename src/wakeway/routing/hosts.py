"""Host buckets: an exact-host dict, a wildcard-suffix dict and a catch-all, walked in the
order of specificity both sources share (exact, then longer wildcards, then catch-all)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

B = TypeVar("B")


@dataclass(slots=True)
class HostIndex(Generic[B]):
    exact: dict[str, B] = field(default_factory=dict)
    wildcard: dict[str, B] = field(default_factory=dict)  # ".example.com" for "*.example.com"
    catch_all: B | None = None

    def slot(self, pattern: str | None, make: type[B]) -> B:
        """The bucket for a host pattern; None or "*" is the catch-all."""
        if pattern is None or pattern == "*":
            if self.catch_all is None:
                self.catch_all = make()
            return self.catch_all
        if pattern.startswith("*."):
            table, key = self.wildcard, pattern[1:]
        else:
            table, key = self.exact, pattern
        bucket = table.get(key)
        if bucket is None:
            bucket = table[key] = make()
        return bucket

    def buckets_for(self, host: str) -> Iterator[B]:
        """The buckets whose pattern matches ``host``, most specific first."""
        bucket = self.exact.get(host)
        if bucket is not None:
            yield bucket
        if self.wildcard:
            dot = host.find(".")
            # ".b.example.com", then ".example.com", ...: a wildcard needs one label in front.
            while dot != -1:
                bucket = self.wildcard.get(host[dot:])
                if bucket is not None:
                    yield bucket
                dot = host.find(".", dot + 1)
        if self.catch_all is not None:
            yield self.catch_all
