"""The operator's own figures as plain numbers, read by its /metrics collector at scrape time."""

from __future__ import annotations

from wakeway.kube.errors import KubeError
from wakeway.observe.metrics import FAST_BUCKETS, Histogram


class OperatorStats:
    """Reconcile durations, failures by kind, scale writes by action, fast-path wakes."""

    def __init__(self) -> None:
        self.reconcile_seconds = Histogram(FAST_BUCKETS)
        self.errors: dict[str, int] = {}
        self.scales: dict[str, int] = {}
        self.fast_wakes: dict[bool, int] = {True: 0, False: 0}

    def reconciled(self, seconds: float, error: BaseException | None = None) -> None:
        """One reconcile pass took ``seconds``; ``error`` is what it raised, if anything."""
        self.reconcile_seconds.observe(seconds)
        if error is not None:
            kind = type(error).__name__ if isinstance(error, KubeError) else "internal"
            self.errors[kind] = self.errors.get(kind, 0) + 1

    def scaled(self, replicas: int) -> None:
        """A pass set a workload's replicas: to zero (sleep) or to some (scale)."""
        action = "sleep" if replicas == 0 else "scale"
        self.scales[action] = self.scales.get(action, 0) + 1

    def woke(self, done: bool) -> None:
        """The wake fast path wrote 0 -> N (``done``) or found it taken (or failed)."""
        self.fast_wakes[done] += 1
