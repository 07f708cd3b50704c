"""The KEDA external scaler: aggregates pushed counts, serves externalscaler.proto."""

from wakeway.model.trigger import MetadataError, MetricTarget, parse_metadata, scaler_metadata

from .replicas import ReplicaSet, ReplicaSource, StaticReplicas
from .server import Scaler, run_scaler
from .settings import ScalerSettings, settings_from_env

__all__ = [
    "MetadataError",
    "MetricTarget",
    "ReplicaSet",
    "ReplicaSource",
    "Scaler",
    "ScalerSettings",
    "StaticReplicas",
    "parse_metadata",
    "run_scaler",
    "scaler_metadata",
    "settings_from_env",
]
