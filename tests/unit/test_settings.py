"""The one settings path: declared bounds, unknown variables, the shared parsers, absent values."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import pytest

from wakeway.interceptor.settings import (
    InterceptorSettings,
    KubeModeSettings,
    kube_settings_from_env,
)
from wakeway.interceptor.settings import settings_from_env as interceptor_env
from wakeway.model.settings import (
    HostPort,
    ServiceRef,
    SettingsError,
    check_fields,
    parse_addresses,
    parse_host_port,
    parse_service_ref,
    setting,
)
from wakeway.operator.settings import OperatorSettings
from wakeway.operator.settings import settings_from_env as operator_env
from wakeway.scaler.settings import ScalerSettings
from wakeway.scaler.settings import settings_from_env as scaler_env

pytestmark = pytest.mark.unit

Reader = Callable[[Mapping[str, str]], object]


@pytest.mark.parametrize(
    ("read", "variable", "value", "says"),
    [
        (interceptor_env, "WAKEWAY_INTERCEPTOR_LISTEN_PORT", "99999", "must be in 0..65535"),
        (interceptor_env, "WAKEWAY_INTERCEPTOR_ADMIN_PORT", "-1", "must be in 0..65535"),
        (interceptor_env, "WAKEWAY_INTERCEPTOR_CONDITION_WAIT", "0", "greater than zero"),
        (interceptor_env, "WAKEWAY_INTERCEPTOR_CONDITION_WAIT", "nan", "not a finite number"),
        (interceptor_env, "WAKEWAY_INTERCEPTOR_REQUEST_TIMEOUT", "-5", "greater than zero"),
        (interceptor_env, "WAKEWAY_INTERCEPTOR_MAX_HELD_TOTAL", "0", "must be at least 1"),
        (interceptor_env, "WAKEWAY_INTERCEPTOR_COUNTS_QUEUE_SIZE", "0", "must be at least 1"),
        (interceptor_env, "WAKEWAY_INTERCEPTOR_REFUSED_ENDPOINT_ATTEMPTS", "0", "at least 1"),
        (interceptor_env, "WAKEWAY_INTERCEPTOR_MAX_HEADERS", "many", "not a whole number"),
        (interceptor_env, "WAKEWAY_INTERCEPTOR_VIA", "maybe", "not a boolean"),
        (interceptor_env, "WAKEWAY_INTERCEPTOR_WORKERS", "300", "must be in 0..256"),
        (interceptor_env, "WAKEWAY_INTERCEPTOR_WORKERS", "two", "not a whole number or auto"),
        (interceptor_env, "WAKEWAY_INTERCEPTOR_EARLY_PROBE_INTERVAL", "0", "greater than zero"),
        (scaler_env, "WAKEWAY_SCALER_LISTEN_PORT", "65536", "must be in 0..65535"),
        (scaler_env, "WAKEWAY_SCALER_RECONNECT_JITTER", "1", "must be in [0, 1)"),
        (scaler_env, "WAKEWAY_SCALER_RECONNECT_MAX", "0.01", "not be less than reconnect_min"),
        (scaler_env, "WAKEWAY_SCALER_MAX_STREAMS", "0", "must be at least 1"),
        (scaler_env, "WAKEWAY_SCALER_INTERCEPTORS", "a:1,b", "'b' is not HOST:PORT"),
        (scaler_env, "WAKEWAY_SCALER_INTERCEPTORS", "a:0", "port must be in 1..65535"),
        (operator_env, "WAKEWAY_OPERATOR_HEALTH_PORT", "99999", "must be in 0..65535"),
        (operator_env, "WAKEWAY_OPERATOR_MODE", "kubeless", "must be one of auto, keda"),
        (operator_env, "WAKEWAY_OPERATOR_WORKERS", "0", "must be at least 1"),
        (operator_env, "WAKEWAY_OPERATOR_RESYNC", "0", "greater than zero"),
        (operator_env, "WAKEWAY_OPERATOR_SCALE_DOWN_STABILIZATION", "-1", "not be negative"),
        (operator_env, "WAKEWAY_OPERATOR_SCALER_ADDRESS", "scaler", "is not HOST:PORT"),
        (operator_env, "WAKEWAY_OPERATOR_INTERCEPTOR_SERVICE", "svc", "namespace/name[:port]"),
        (operator_env, "WAKEWAY_INTERCEPTOR_SERVICE", "ns/svc:http", "namespace/name[:port]"),
        (kube_settings_from_env, "WAKEWAY_INTERCEPTOR_SERVICE", "ns/svc:0", "in 1..65535"),
    ],
)
def test_a_bad_value_is_one_error_naming_the_variable(
    read: Reader, variable: str, value: str, says: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        read({variable: value})
    assert caught.value.name == variable
    assert str(caught.value).startswith(f"{variable}: ")
    assert says in caught.value.problem
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("read", "variable", "suggests"),
    [
        (
            interceptor_env,
            "WAKEWAY_INTERCEPTOR_CONDITON_WAIT",
            "did you mean WAKEWAY_INTERCEPTOR_CONDITION_WAIT?",
        ),
        (interceptor_env, "WAKEWAY_INTERCEPTOR_SERVICES", "WAKEWAY_INTERCEPTOR_SERVICE?"),
        (scaler_env, "WAKEWAY_SCALER_STALE", "WAKEWAY_SCALER_STALE_AFTER?"),
        (operator_env, "WAKEWAY_OPERATOR_MOD", "WAKEWAY_OPERATOR_MODE?"),
        # Read from a file, never from the operator's own prefix.
        (operator_env, "WAKEWAY_OPERATOR_ROUTE_IDENTITY_KEY", "unknown variable"),
        (interceptor_env, "WAKEWAY_INTERCEPTOR_XYZZY", "unknown variable"),
    ],
)
def test_an_unknown_variable_with_the_prefix_is_an_error(
    read: Reader, variable: str, suggests: str
) -> None:
    with pytest.raises(SettingsError, match="unknown variable") as caught:
        read({variable: "30"})
    assert caught.value.name == variable
    assert suggests in str(caught.value)


def test_no_suggestion_when_nothing_is_close() -> None:
    with pytest.raises(SettingsError) as caught:
        interceptor_env({"WAKEWAY_INTERCEPTOR_XYZZY": "1"})
    assert str(caught.value) == "WAKEWAY_INTERCEPTOR_XYZZY: unknown variable"


def test_other_components_variables_are_left_to_them() -> None:
    """One environment serves all three components (local tests, a shared Pod spec): each
    checks its own prefix only, and the interceptor knows its Kubernetes-mode variables."""
    env = {
        "WAKEWAY_INTERCEPTOR_SERVICE": "infra/proxy:80",
        "WAKEWAY_INTERCEPTOR_CONDITION_WAIT": "3",
        "WAKEWAY_SCALER_STALE_AFTER": "3",
        "WAKEWAY_OPERATOR_MODE": "standalone",
        "WAKEWAY_KUBECONFIG": "/k",
        "WAKEWAY_CLUSTER_LOGS": "/tmp/logs",
    }
    assert interceptor_env(env).condition_wait == 3.0
    assert scaler_env(env).stale_after == 3.0
    assert operator_env(env).mode == "standalone"
    assert kube_settings_from_env(env).interceptor_service == ServiceRef("infra", "proxy", 80)


def test_defaults_and_the_documented_spellings_still_read() -> None:
    assert interceptor_env({}) == InterceptorSettings()
    assert scaler_env({}) == ScalerSettings()
    assert operator_env({}) == OperatorSettings()
    assert kube_settings_from_env({}) == KubeModeSettings()
    assert str(OperatorSettings().interceptor_service) == "wakeway/wakeway-interceptor:8080"
    s = scaler_env({"WAKEWAY_SCALER_INTERCEPTORS": " a:1, [::1]:2,a:1,"})
    assert s.interceptors == ("a:1", "[::1]:2")


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        # Absent: the default. Empty: None where the field may be absent, else an error.
        ({}, "request_timeout", None),
        ({"WAKEWAY_INTERCEPTOR_REQUEST_TIMEOUT": ""}, "request_timeout", None),
        ({"WAKEWAY_INTERCEPTOR_REQUEST_TIMEOUT": "none"}, "request_timeout", None),
        ({"WAKEWAY_INTERCEPTOR_REQUEST_TIMEOUT": "7"}, "request_timeout", 7.0),
        ({}, "listen_host", "0.0.0.0"),
    ],
)
def test_absent_and_empty_interceptor(env: dict[str, str], field: str, expected: object) -> None:
    assert getattr(interceptor_env(env), field) == expected


def test_absent_and_empty_strings_are_none() -> None:
    assert ScalerSettings().namespace is None
    assert scaler_env({"WAKEWAY_SCALER_NAMESPACE": ""}).namespace is None
    # "none" is a valid namespace name: only empty means absent for a text.
    assert scaler_env({"WAKEWAY_SCALER_NAMESPACE": "none"}).namespace == "none"
    assert operator_env({"WAKEWAY_OPERATOR_KUBECONFIG": ""}).kubeconfig is None
    assert kube_settings_from_env({"WAKEWAY_KUBECONFIG": ""}).kubeconfig is None
    with pytest.raises(SettingsError, match="WAKEWAY_INTERCEPTOR_LISTEN_PORT: '' is not"):
        interceptor_env({"WAKEWAY_INTERCEPTOR_LISTEN_PORT": ""})
    with pytest.raises(SettingsError, match="WAKEWAY_INTERCEPTOR_SERVICE: '' is not"):
        kube_settings_from_env({"WAKEWAY_INTERCEPTOR_SERVICE": ""})


def test_settings_built_in_code_are_checked_by_the_same_rules() -> None:
    with pytest.raises(SettingsError, match=r"^listen_port: must be in 0\.\.65535, got 99999$"):
        InterceptorSettings(listen_port=99999)
    with pytest.raises(SettingsError, match="admin_port"):
        replace(InterceptorSettings(), admin_port=70000)
    with pytest.raises(SettingsError, match="interceptors: 'x' is not HOST:PORT"):
        ScalerSettings(interceptors=("x",))
    with pytest.raises(SettingsError, match="route_identity_key: must be at least 16 bytes"):
        OperatorSettings(route_identity_key=b"short")
    with pytest.raises(SettingsError, match="scaler_address"):
        OperatorSettings(scaler_address="scaler")


@pytest.mark.parametrize(
    ("text", "listen", "expected"),
    [
        ("127.0.0.1:8080", False, HostPort("127.0.0.1", 8080)),
        ("wakeway-scaler.wakeway.svc:9091", False, HostPort("wakeway-scaler.wakeway.svc", 9091)),
        ("[::1]:9090", False, HostPort("::1", 9090)),
        (" a:1 ", False, HostPort("a", 1)),
        ("a:65535", False, HostPort("a", 65535)),
        (":8080", True, HostPort("0.0.0.0", 8080)),
        ("127.0.0.1:0", True, HostPort("127.0.0.1", 0)),
        ("[::]:80", True, HostPort("::", 80)),
    ],
)
def test_host_port_good(text: str, listen: bool, expected: HostPort) -> None:
    assert parse_host_port(text, listen=listen) == expected


@pytest.mark.parametrize(
    ("text", "listen", "says"),
    [
        ("scaler", False, "is not HOST:PORT"),
        ("", False, "is not HOST:PORT"),
        (":8080", False, "is not HOST:PORT"),  # an address to dial names its host
        ("a:", False, "is not HOST:PORT"),
        ("a:http", False, "is not HOST:PORT"),
        ("a:-1", False, "is not HOST:PORT"),
        ("a:0", False, "port must be in 1..65535"),
        ("a:99999", True, "port must be in 0..65535"),
        ("::1:80", False, "IPv6 host goes in brackets"),
    ],
)
def test_host_port_bad(text: str, listen: bool, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_host_port(text, listen=listen)


def test_host_port_text_round_trips() -> None:
    for text in ("a:1", "[::1]:9090", "10.0.0.1:80"):
        assert str(parse_host_port(text)) == text
    assert parse_addresses("") == ()
    assert parse_addresses("b:2,a:1,b:2") == ("b:2", "a:1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("infra/proxy:80", ServiceRef("infra", "proxy", 80)),
        ("infra/proxy", ServiceRef("infra", "proxy", None)),
        ("wakeway/wakeway-interceptor:8080", ServiceRef("wakeway", "wakeway-interceptor", 8080)),
    ],
)
def test_service_ref_good(text: str, expected: ServiceRef) -> None:
    assert parse_service_ref(text) == expected
    assert str(parse_service_ref(text)) == text


@pytest.mark.parametrize(
    "text",
    ["proxy", "", "/proxy", "infra/", "infra/proxy:", "infra/proxy:http", "a/b/c", "a/b:0"],
)
def test_service_ref_bad(text: str) -> None:
    with pytest.raises(ValueError, match=r"namespace/name|1\.\.65535"):
        parse_service_ref(text)


@dataclass(frozen=True)
class _Bounds:
    low: int = setting(5, min=1)
    high: float = setting(0.5, max=1)
    under: float = setting(0.5, below=1)
    over: float = setting(2.0, above=1)

    def __post_init__(self) -> None:
        check_fields(self)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"low": 0}, "low: must be at least 1, got 0"),
        ({"high": 2.0}, "high: must be at most 1, got 2.0"),
        ({"under": 1.0}, "under: must be less than 1, got 1.0"),
        ({"over": 1.0}, "over: must be greater than 1, got 1.0"),
    ],
)
def test_every_kind_of_bound_says_what_it_wants(change: dict[str, float], says: str) -> None:
    with pytest.raises(SettingsError) as caught:
        _Bounds(**change)  # type: ignore[arg-type]
    assert str(caught.value) == says
