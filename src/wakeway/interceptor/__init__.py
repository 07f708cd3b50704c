"""The interceptor: reverse proxy, cold-start gate, counters, admin port."""

from wakeway.interceptor.counts import CountUpdate, TargetCounts
from wakeway.interceptor.router import Router
from wakeway.interceptor.server import Interceptor
from wakeway.interceptor.settings import InterceptorSettings, settings_from_env
from wakeway.interceptor.stream import CountSubscription

__all__ = [
    "CountSubscription",
    "CountUpdate",
    "Interceptor",
    "InterceptorSettings",
    "Router",
    "TargetCounts",
    "settings_from_env",
]
