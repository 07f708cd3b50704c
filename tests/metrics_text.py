"""Reading a Prometheus text exposition in tests: each sample by its name and labels."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``{(sample name, {(label, value), ...}): value}`` for every sample in ``text``."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(text: str, metric: str, /, **labels: str) -> float | None:
    """The sample ``metric`` with exactly ``labels``, or None when there is none."""
    return samples(text).get((metric, frozenset(labels.items())))


def build_info(text: str) -> dict[str, str]:
    """The labels of the one ``wakeway_build_info`` sample (its value must be 1)."""
    found = [
        dict(labels)
        for (name, labels), v in samples(text).items()
        if name == "wakeway_build_info" and v == 1
    ]
    assert len(found) == 1, found
    return found[0]
