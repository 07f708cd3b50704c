"""The API resources wakeway reads and writes, and their URL paths."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Resource:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
            if sub:
                base += f"/{sub}"
        return base


HTTPSCALEDOBJECTS = Resource("http.keda.sh", "v1alpha1", "httpscaledobjects", "HTTPScaledObject")
INTERCEPTORROUTES = Resource("http.keda.sh", "v1beta1", "interceptorroutes", "InterceptorRoute")
HTTPROUTES = Resource("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
REFERENCEGRANTS = Resource(
    "gateway.networking.k8s.io", "v1beta1", "referencegrants", "ReferenceGrant"
)
SERVICES = Resource("", "v1", "services", "Service")
SECRETS = Resource("", "v1", "secrets", "Secret")
ENDPOINTSLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
EVENTS = Resource("", "v1", "events", "Event")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
SCALEDOBJECTS = Resource("keda.sh", "v1alpha1", "scaledobjects", "ScaledObject")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
STATEFULSETS = Resource("apps", "v1", "statefulsets", "StatefulSet")
CRDS = Resource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False
)

_KNOWN_WORKLOADS = {(r.api_version, r.kind): r for r in (DEPLOYMENTS, STATEFULSETS)}


def workload_resource(api_version: str, kind: str) -> Resource:
    """The resource of a scale target named by apiVersion and kind (``apps/v1``, ``Deployment``).

    Kinds other than the well-known ones are assumed to follow the usual plural (lower-case
    kind + "s"); the operator checks that the resource exists and has a /scale subresource.
    """
    known = _KNOWN_WORKLOADS.get((api_version, kind))
    if known is not None:
        return known
    group, _, version = api_version.rpartition("/")
    return Resource(group, version, kind.lower() + "s", kind)
