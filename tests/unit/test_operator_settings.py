"""Operator settings: defaults, environment parsing, errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from wakeway.model.settings import ServiceRef
from wakeway.operator.settings import OperatorSettings, settings_from_env

pytestmark = pytest.mark.unit


def test_defaults() -> None:
    s = settings_from_env({})
    assert s == OperatorSettings()
    assert s.mode == "auto"
    assert s.scale_down_stabilization == 300.0


def test_values_from_the_environment() -> None:
    s = settings_from_env(
        {
            "WAKEWAY_OPERATOR_MODE": "standalone",
            "WAKEWAY_OPERATOR_WORKERS": "2",
            "WAKEWAY_OPERATOR_SCALE_DOWN_STABILIZATION": "30",
            "WAKEWAY_OPERATOR_SCALER_ADDRESS": "127.0.0.1:9091",
            "UNRELATED": "x",
        }
    )
    assert (s.mode, s.workers, s.scale_down_stabilization, s.scaler_address) == (
        "standalone",
        2,
        30.0,
        "127.0.0.1:9091",
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"WAKEWAY_OPERATOR_MODE": "kubeless"}, "WAKEWAY_OPERATOR_MODE"),
        ({"WAKEWAY_OPERATOR_WORKERS": "two"}, "WAKEWAY_OPERATOR_WORKERS"),
        ({"WAKEWAY_OPERATOR_WORKERS": "0"}, "WAKEWAY_OPERATOR_WORKERS"),
        ({"WAKEWAY_OPERATOR_RETRY_MAX": "0.01"}, "WAKEWAY_OPERATOR_RETRY_MAX"),
        ({"WAKEWAY_OPERATOR_SCALER_ADDRESS": "scaler"}, "WAKEWAY_OPERATOR_SCALER_ADDRESS"),
    ],
)
def test_errors_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ValueError, match=variable):
        settings_from_env(env)


def test_variables_shared_with_the_interceptor(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_bytes(b"0123456789abcdef0123\n")
    s = settings_from_env(
        {
            "WAKEWAY_INTERCEPTOR_SERVICE": "infra/proxy:80",
            "WAKEWAY_ROUTE_IDENTITY_KEY_FILE": str(key),
            "WAKEWAY_KUBECONFIG": "/k",
        }
    )
    assert (s.interceptor_service, s.route_identity_key, s.kubeconfig) == (
        ServiceRef("infra", "proxy", 80),
        b"0123456789abcdef0123",
        "/k",
    )
    with pytest.raises(ValueError, match="WAKEWAY_INTERCEPTOR_SERVICE"):
        settings_from_env({"WAKEWAY_INTERCEPTOR_SERVICE": "proxy"})
    with pytest.raises(ValueError, match="WAKEWAY_ROUTE_IDENTITY_KEY"):
        settings_from_env({"WAKEWAY_ROUTE_IDENTITY_KEY": "c2hvcnQ="})
