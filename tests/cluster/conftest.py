"""The cluster tier's fixture: one real control plane for the whole session.

If the tier cannot run here (not root, no Go), it says so loudly; with CI=true that is a
failure, anywhere else the tests skip with the reason.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.cluster.harness.binaries import Binaries, Unavailable, ensure
from tests.cluster.harness.cluster import Cluster, ClusterError
from wakeway.kube import Kube

_BINARIES = pytest.StashKey[Binaries | Unavailable]()


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _shout(config: pytest.Config, message: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    line = f"CLUSTER TIER NOT RUN: {message}"
    if reporter is not None:
        reporter.write_line(line, red=True, bold=True)
    else:
        print(line, file=sys.stderr)


@pytest.hookimpl(trylast=True)  # after -m/-k deselection: build only if a cluster test remains
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(item.get_closest_marker("cluster") for item in items):
        return
    # Built here, before any test starts: a cold build takes minutes, more than a test timeout.
    # Output capture is off meanwhile, so the build's progress shows.
    capture = config.pluginmanager.get_plugin("capturemanager")
    suspended = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
    try:
        with suspended:
            config.stash[_BINARIES] = ensure()
    except Unavailable as e:
        config.stash[_BINARIES] = e
        _shout(config, f"{e}{' (CI=true: the run fails)' if _in_ci() else ''}")


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    found = config.stash.get(_BINARIES, None)
    if isinstance(found, Unavailable):
        _shout(config, str(found))


@pytest.fixture(scope="session")
def binaries(request: pytest.FixtureRequest) -> Binaries:
    """The tier's Go-built binaries (control plane, kubectl, kustomize, helm), built once."""
    found = request.config.stash.get(_BINARIES, None)
    if found is None:
        try:
            found = ensure()
        except Unavailable as e:
            found = e
    if isinstance(found, Unavailable):
        reason = f"cluster tier cannot run: {found}"
        if _in_ci():
            pytest.fail(f"{reason} (CI=true, so this is a failure)", pytrace=False)
        pytest.skip(reason)
    return found


@pytest.fixture(scope="session")
def cluster(binaries: Binaries) -> Iterator[Cluster]:
    c = Cluster(binaries, log=lambda m: print(m, file=sys.stderr))
    try:
        c.start()
    except ClusterError as e:
        pytest.fail(f"the cluster did not start: {e}", pytrace=False)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
async def kube(cluster: Cluster) -> AsyncIterator[Kube]:
    """wakeway's own adapter, connected as the cluster admin."""
    k = await Kube.connect(str(cluster.kubeconfig))
    try:
        yield k
    finally:
        await k.close()
