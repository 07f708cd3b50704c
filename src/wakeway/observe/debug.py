"""What ``--log-level DEBUG`` says about the routing table and the ready-endpoint view.

Both are swapped as whole snapshots; these helpers describe what changed between two of them.
Callers build the text only when DEBUG is on (``log.isEnabledFor``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from wakeway.model.settings import Address, format_address
from wakeway.routing import RoutingTable


def _keys(keys: Sequence[str] | set[str]) -> str:
    return ", ".join(sorted(keys)) or "none"


def log_table_swap(log: logging.Logger, before: RoutingTable | None, after: RoutingTable) -> None:
    """One DEBUG line: the new table's size, and the targets it added and removed."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    old = set() if before is None else set(before.targets)
    new = set(after.targets)
    log.debug(
        "routing table swapped: %d targets, %d problems, %d conflicts; added: %s; removed: %s",
        len(new),
        len(after.problems),
        len(after.conflicts),
        _keys(new - old),
        _keys(old - new),
    )


class EndpointChanges:
    """Remembers the last ready-endpoint view and logs, per backend, what changed in it."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self._last: dict[str, frozenset[Address]] = {}

    def swapped(self, view: Mapping[str, Sequence[Address]]) -> None:
        if not self.log.isEnabledFor(logging.DEBUG):
            self._last = {}  # a later DEBUG line then lists every backend once
            return
        now = {key: frozenset(addrs) for key, addrs in view.items()}
        for key in sorted(now.keys() | self._last.keys()):
            was, is_ = self._last.get(key, frozenset()), now.get(key, frozenset())
            if was != is_:
                self.log.debug(
                    "endpoints of %s: %d ready (%s); added %s; removed %s",
                    key,
                    len(is_),
                    _addresses(is_),
                    _addresses(is_ - was),
                    _addresses(was - is_),
                )
        self._last = now


def _addresses(addrs: frozenset[Address]) -> str:
    return ", ".join(sorted(format_address(a) for a in addrs)) or "none"
