"""charts/wakeway: `helm lint`; `helm template` of each mode renders the objects of the
kustomization that makes the same choice (apart from the labels Helm adds, the Namespace, which
Helm leaves to `--create-namespace`, and the route identity Secret, which only the chart
creates); values reach the objects and a misspelt one is refused; and on the cluster tier an
install then an upgrade with changed values applies the objects and keeps the identity key.

helm is built from its Go module by scripts/cluster-helm (through scripts/cluster-binaries)."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness.binaries import Binaries
from tests.cluster.harness.cluster import Cluster
from tests.cluster.render import (
    CHART,
    MODE_FOLDERS,
    ToolFailed,
    documents,
    helm,
    helm_template,
    kustomize_build,
)
from tests.cluster.test_install import Rest, _keyed, _operator_env

pytestmark = pytest.mark.cluster

HELM_LABELS = {
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
    "helm.sh/chart",
}
SECRET = ("Secret", "wakeway-route-identity")
OBSERVABILITY = Path(__file__).parents[2] / "docs" / "observability.md"


def _comparable(doc: Any) -> Any:
    """`doc` without the labels Helm adds; a CRD without labels at all (the chart ships the
    crds/ file itself, which Helm does not template and kustomize labels)."""
    doc = copy.deepcopy(doc)
    meta = doc["metadata"]
    labels = {k: v for k, v in meta.pop("labels", {}).items() if k not in HELM_LABELS}
    if labels and doc["kind"] != "CustomResourceDefinition":
        meta["labels"] = labels
    return doc


def test_the_chart_lints_in_every_mode(binaries: Binaries) -> None:
    for mode in MODE_FOLDERS:
        answer = helm(binaries, "lint", "--strict", str(CHART), "--set", f"mode={mode}")
        assert "0 chart(s) failed" in answer, answer


@pytest.mark.parametrize("mode", list(MODE_FOLDERS))
def test_each_mode_renders_the_objects_of_its_kustomization(binaries: Binaries, mode: str) -> None:
    chart = _keyed(documents(helm_template(binaries, f"mode={mode}")))
    config = _keyed(documents(kustomize_build(binaries, MODE_FOLDERS[mode])))

    secret = chart.pop(SECRET)
    assert secret["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert len(base64.b64decode(secret["data"]["key"])) >= 16
    del config[("Namespace", "wakeway")]

    assert sorted(chart) == sorted(config)
    for key, doc in config.items():
        assert _comparable(chart[key]) == _comparable(doc), key


def test_values_reach_the_objects(binaries: Binaries) -> None:
    docs = _keyed(
        documents(
            helm_template(
                binaries,
                "interceptor.image.repository=registry.test/wakeway-interceptor",
                "interceptor.image.tag=1.2.3",
                "interceptor.image.pullPolicy=Always",
                "interceptor.autoscaling.enabled=false",
                "interceptor.replicas=4",
                "operator.resources.requests.cpu=1",
                "scaler.extraEnv[0].name=WAKEWAY_SCALER_WINDOW",
                "scaler.extraEnv[0].value=30",
                "imagePullSecrets[0].name=regcred",
                "routeIdentity.create=false",
                "routeIdentity.secretName=my-key",
                namespace="edge",
            )
        )
    )
    assert ("HorizontalPodAutoscaler", "wakeway-interceptor") not in docs
    assert not {k for k in docs if k[0] == "Secret"}  # routeIdentity.create=false
    interceptor = docs[("Deployment", "wakeway-interceptor")]
    assert interceptor["spec"]["replicas"] == 4
    pod = interceptor["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.test/wakeway-interceptor:1.2.3"
    assert container["imagePullPolicy"] == "Always"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["volumes"][0]["secret"]["secretName"] == "my-key"
    operator = docs[("Deployment", "wakeway-operator")]
    assert operator["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": 1,
        "memory": "128Mi",
    }
    assert _operator_env(operator)["WAKEWAY_OPERATOR_SCALER_ADDRESS"] == (
        "wakeway-scaler.edge.svc:9091"
    )
    assert _operator_env(operator)["WAKEWAY_INTERCEPTOR_SERVICE"] == "edge/wakeway-interceptor:8080"
    scaler = docs[("Deployment", "wakeway-scaler")]["spec"]["template"]["spec"]["containers"][0]
    assert scaler["env"][-1] == {"name": "WAKEWAY_SCALER_WINDOW", "value": "30"}


@pytest.mark.parametrize(
    ("value", "named"),
    [("mode=kedda", "mode"), ("interceptor.replica=3", "replica")],
)
def test_a_wrong_value_is_refused_naming_it(binaries: Binaries, value: str, named: str) -> None:
    with pytest.raises(ToolFailed, match=named):
        helm_template(binaries, value)


async def test_install_then_upgrade_applies_the_objects_and_keeps_the_identity_key(
    cluster: Cluster, binaries: Binaries
) -> None:
    namespace = f"wakeway-helm-{uuid.uuid4().hex[:6]}"

    def release(verb: str, *args: str) -> str:
        """`helm VERB wakeway ARGS -n NAMESPACE` (VERB may be two words: `get manifest`)."""
        return helm(
            binaries,
            *verb.split(),
            "wakeway",
            *args,
            "-n",
            namespace,
            kubeconfig=cluster.kubeconfig,
        )

    async with cluster.api() as api:
        rest = Rest(api)

        async def applied() -> dict[tuple[str, str], Any]:
            """Each object of the release's manifest, as the API server has it now."""
            found = {}
            for doc in documents(release("get manifest")):
                status, stored = await rest.call("GET", await rest.doc_path(doc))
                assert status == 200, f"{doc['kind']}/{doc['metadata']['name']}: {stored}"
                found[(doc["kind"], doc["metadata"]["name"])] = stored
            return found

        aside = await _set_aside(rest, binaries)
        try:
            release("install", str(CHART), "--create-namespace", "--set", "mode=standalone")
            before = await applied()
            operator = before[("Deployment", "wakeway-operator")]
            assert _operator_env(operator)["WAKEWAY_OPERATOR_MODE"] == "standalone"
            assert ("ClusterRole", "wakeway-operator-keda") not in before
            key = before[SECRET]["data"]["key"]

            release(
                "upgrade",
                str(CHART),
                "--set",
                "mode=keda",
                "--set",
                "interceptor.autoscaling.minReplicas=3",
            )
            after = await applied()
            assert after[SECRET]["data"]["key"] == key
            operator = after[("Deployment", "wakeway-operator")]
            assert _operator_env(operator)["WAKEWAY_OPERATOR_MODE"] == "keda"
            assert ("ClusterRole", "wakeway-operator-keda") in after
            assert (
                after[("HorizontalPodAutoscaler", "wakeway-interceptor")]["spec"]["minReplicas"]
                == 3
            )

            release("uninstall")
            assert not await rest.gone(before[SECRET]), "the identity Secret was not kept"
        finally:
            with contextlib.suppress(ToolFailed):
                release("uninstall")
            # Its own namespace, which no other test uses: delete it (and the kept Secret)
            # without waiting for it to go.
            await rest.delete(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            )
            for doc in aside:
                await rest.apply(doc)


# Cluster-scoped objects have one name per cluster: Helm refuses to take over the ones other
# tests of the session made from config/ under the same names.
CLUSTER_SCOPED = frozenset({"ClusterRole", "ClusterRoleBinding"})
SERVER_SET = ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation")


async def _set_aside(rest: Rest, binaries: Binaries) -> list[Any]:
    """Delete the chart's cluster-scoped objects that exist already, and return them as they
    were (less what the server sets) to be put back once the release is gone."""
    aside: list[Any] = []
    seen: set[tuple[str, str]] = set()
    for mode in ("standalone", "keda"):
        for doc in documents(helm_template(binaries, f"mode={mode}")):
            key = (doc["kind"], doc["metadata"]["name"])
            if doc["kind"] not in CLUSTER_SCOPED or key in seen:
                continue
            seen.add(key)
            status, stored = await rest.call("GET", await rest.doc_path(doc))
            if status == 200:
                for field in SERVER_SET:
                    stored["metadata"].pop(field, None)
                aside.append(stored)
                await rest.delete(doc)
    return aside


def test_monitoring_is_off_by_default(binaries: Binaries) -> None:
    kinds = {kind for kind, _ in _keyed(documents(helm_template(binaries)))}
    assert "PodMonitor" not in kinds
    assert ("ConfigMap", "wakeway-dashboard") not in _keyed(documents(helm_template(binaries)))


def test_the_pod_monitor_scrapes_each_component_on_its_metrics_port(binaries: Binaries) -> None:
    docs = _keyed(
        documents(
            helm_template(
                binaries,
                "metrics.podMonitor.enabled=true",
                "metrics.podMonitor.interval=15s",
                "metrics.podMonitor.labels.release=prometheus",
            )
        )
    )
    monitor = docs[("PodMonitor", "wakeway")]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    endpoints = monitor["spec"]["podMetricsEndpoints"]
    assert {(e["port"], e["path"], e["interval"]) for e in endpoints} == {
        (port, "/metrics", "15s") for port in ("admin", "metrics", "health")
    }
    (selector,) = monitor["spec"]["selector"]["matchExpressions"]
    # Each component's pods match the selector and have one of the ports, by that name and
    # on the port its process serves /metrics on (docs/observability.md).
    served = {
        "interceptor": ("admin", 9090),
        "scaler": ("metrics", 9092),
        "operator": ("health", 8081),
    }
    for component, (name, number) in served.items():
        pod = docs[("Deployment", f"wakeway-{component}")]["spec"]["template"]
        assert pod["metadata"]["labels"]["app.kubernetes.io/name"] in selector["values"]
        (container,) = pod["spec"]["containers"]
        assert {"name": name, "containerPort": number} in container["ports"], component


def test_the_dashboard_configmap_holds_a_dashboard_of_documented_metrics(
    binaries: Binaries,
) -> None:
    docs = _keyed(documents(helm_template(binaries, "metrics.dashboard.enabled=true")))
    config_map = docs[("ConfigMap", "wakeway-dashboard")]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["wakeway.json"])
    assert dashboard["uid"] == "wakeway"
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(exprs) >= 15
    documented = set(re.findall(r"^\| `(wakeway_\w+)`", OBSERVABILITY.read_text(), re.M))
    used = {
        re.sub(r"_(total|bucket|count|sum)$", "", name)
        for expr in exprs
        for name in re.findall(r"\bwakeway_\w+", expr)
    }
    assert used, exprs
    assert used <= documented, used - documented
    # Every documented family of the three components is on the dashboard.
    assert documented - used == set(), documented - used
