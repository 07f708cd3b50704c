"""The proxy's decisions as pure functions: no I/O, no clock, no event loop.

The exchange state machine (:mod:`.exchange`) asks these and acts on the answer; the tables in
``tests/unit/test_interceptor_policy.py`` pin each one down, like the gate's.

- :func:`parse_request_target`: host, path and query of a request (origin- or absolute-form).
- :func:`after_connect_failure`: after a connection attempt failed, try another endpoint, go
  back to the cold-start gate, or answer with an error.
- :func:`may_resend`: may a request be sent again after this failure (only if no byte of it can
  have reached a backend).
- :func:`at_deadline`: a held request's readiness deadline passed: failover, placeholder or an
  error.
- :func:`resolve`: a target's settings with its own overrides merged over the global ones,
  computed once per routing-table swap (:class:`TargetPolicy`), its wake exclusions and
  maintenance page compiled among them (:func:`.statics.decide` answers for those).
- :class:`Admission`: the cold-start gate's answer to "hold this request".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from wakeway.model.httpso import HTTPScaledObject, Placeholder

from .settings import InterceptorSettings
from .statics import Statics, compile_statics

# --- the request target ---------------------------------------------------------------------


class RequestTarget(NamedTuple):  # a tuple: made on every request, and cheaply
    host: str
    path: str
    query: str


def parse_request_target(url: bytes, host_header: bytes | None) -> RequestTarget:
    """Host, path and query of a request. In absolute-form (``http://h/p``) the authority in
    the target wins over the Host header (RFC 9112 section 3.2.2); an absolute-form target
    without a path means ``/``."""
    host = (host_header or b"").decode("latin-1")
    if url[:1] != b"/" and b"://" in url[:16]:
        rest = url.split(b"://", 1)[1]
        authority, slash, path_part = rest.partition(b"/")
        host = authority.decode("latin-1")
        url = slash + path_part if slash else b"/"
    raw_path, _, raw_query = url.partition(b"?")
    return RequestTarget(host, raw_path.decode("latin-1"), raw_query.decode("latin-1"))


# --- failed connections and retries ---------------------------------------------------------


class Failure(Enum):
    """Why forwarding a request to one endpoint failed."""

    REFUSED = "refused"  # connect() refused: nothing was sent
    CONNECT_TIMEOUT = "connect-timeout"  # connect() did not finish: nothing was sent
    CONNECT_ERROR = "connect-error"  # any other connect() error: nothing was sent
    LOST = "lost"  # the connection closed after the request (or part of it) was sent
    INVALID_RESPONSE = "invalid-response"  # the backend answered with bytes that are not HTTP


class Next(Enum):
    RETRY = "retry"  # another ready endpoint of the same backend
    HOLD = "hold"  # back to the cold-start gate until the next endpoint view
    FAIL = "fail"  # answer the client with an error


def may_resend(failure: Failure) -> bool:
    """Whether the request may go to another endpoint after ``failure``. Only a refused
    connection proves the request reached no backend: an endpoint that accepted it may have
    acted on it and then failed, and sending it again would repeat that on the next instance.
    (A pooled connection the backend had closed is caught before anything is sent on it.)"""
    return failure is Failure.REFUSED


def after_connect_failure(
    failure: Failure,
    *,
    attempts: int,
    limit: int,
    endpoint_available: bool,
    primary_backend: bool,
) -> Next:
    """What to do after ``failure`` on attempt ``attempts`` (counted from 1) of at most
    ``limit``. ``endpoint_available``: the backend has another ready endpoint not known to
    refuse; ``primary_backend``: the request goes to its own backend, not the failover one
    (which has no cold-start gate to wait at)."""
    if not may_resend(failure) or attempts >= limit:
        return Next.FAIL
    if endpoint_available:
        return Next.RETRY
    return Next.HOLD if primary_backend else Next.FAIL


def failure_status(failure: Failure) -> int:
    """The status a client gets when ``failure`` ends its request before any response."""
    return 504 if failure is Failure.CONNECT_TIMEOUT else 502


# --- the readiness deadline -----------------------------------------------------------------


class AtDeadline(Enum):
    FAILOVER = "failover"  # forward to the failover backend's ready endpoint
    FAILOVER_UNAVAILABLE = "failover-unavailable"  # 502: the failover has no endpoint either
    PLACEHOLDER = "placeholder"  # answer with the placeholder page
    REFUSING = "refusing"  # 502: it was held again after its endpoints refused connections
    NOT_READY = "not-ready"  # 504: the workload did not become ready in time


def at_deadline(
    *,
    failover: bool,
    failover_endpoint: bool,
    placeholder: bool,
    refused_attempts: int,
) -> AtDeadline:
    """A held request's readiness deadline passed. A failover backend wins over the
    placeholder; a request that was held again after refused connections is reported as a
    backend that refuses, not one that is still starting."""
    if failover:
        return AtDeadline.FAILOVER if failover_endpoint else AtDeadline.FAILOVER_UNAVAILABLE
    if placeholder:
        return AtDeadline.PLACEHOLDER
    return AtDeadline.REFUSING if refused_attempts else AtDeadline.NOT_READY


# --- per-target settings --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    """One target's effective settings: its own overrides, else the global ones."""

    key: str  # the HTTPScaledObject's namespace/name
    backend_key: str  # its backend's endpoint-view key
    failover_key: str | None  # the failover backend's key, if any
    failover_describe: str
    connect_timeout: float
    response_header_timeout: float
    request_timeout: float | None
    hold_wait: float  # how long a request may be held: the failover timeout or conditionWait
    max_held: int
    cold_header: bool  # send the cold-start response header
    placeholder: Placeholder
    statics: Statics | None = None  # wake exclusions and maintenance, compiled


def resolve(target: HTTPScaledObject, settings: InterceptorSettings) -> TargetPolicy:
    """Merge ``target``'s overrides over ``settings``, once."""
    t = target.timeouts
    failover = target.failover
    if failover is not None:
        hold_wait = failover.timeout
    elif target.cold_start.placeholder.immediate:
        hold_wait = 0.0  # held only to wake the target, then answered with the placeholder
    else:
        hold_wait = t.condition_wait or settings.condition_wait
    max_held = target.cold_start.max_held_requests
    return TargetPolicy(
        key=target.key,
        backend_key=target.backend.key(target.namespace),
        failover_key=None if failover is None else failover.backend.key(target.namespace),
        failover_describe="" if failover is None else failover.backend.describe(),
        connect_timeout=t.connect or settings.connect_timeout,
        response_header_timeout=t.response_header or settings.response_header_timeout,
        request_timeout=t.request or settings.request_timeout,
        hold_wait=hold_wait,
        max_held=settings.max_held_per_target if max_held is None else max_held,
        cold_header=settings.cold_start_header and target.cold_start.response_header,
        placeholder=target.cold_start.placeholder,
        statics=compile_statics(target.wake_exclusions, target.maintenance),
    )


# --- the cold-start gate's answer -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Held:
    """The request waits until ``deadline`` (loop time) for a ready endpoint."""

    deadline: float


@dataclass(frozen=True, slots=True)
class Refused:
    """The request is answered at once with ``status`` (and Retry-After)."""

    status: int
    message: str
    retry_after: int


Admission = Held | Refused
