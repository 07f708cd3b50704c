"""The ``wakeway`` command."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
from collections.abc import Coroutine, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from wakeway import __version__
from wakeway.ctl.commands import COMMANDS, add_commands, run_command
from wakeway.ctl.routefilter import COMMAND as ROUTE_FILTER
from wakeway.ctl.routefilter import add_route_filter, run_route_filter
from wakeway.model import logs
from wakeway.model.settings import HostPort, parse_addresses, parse_host_port

DEFAULT_LOCAL_LISTEN = "127.0.0.1:8080"
DEFAULT_LOCAL_ADMIN = "127.0.0.1:9090"


def host_port(value: str) -> HostPort:
    """A listen address, ``HOST:PORT`` (``[::1]:8080`` for IPv6), for argparse."""
    try:
        return parse_host_port(value, listen=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def addresses(value: str) -> tuple[str, ...]:
    """Addresses to dial, ``HOST:PORT,...``, for argparse."""
    try:
        return parse_addresses(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def workers(value: str) -> int:
    """``N`` or ``auto`` (one per core), for argparse."""
    from wakeway.interceptor.settings import parse_workers

    try:
        n = parse_workers(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 0 <= n <= 256:
        raise argparse.ArgumentTypeError(f"{value!r}: must be 0..256 or auto")
    return n


WORKERS_HELP = (
    "processes serving the proxy address, N or auto (one per core this process may use); "
    "default 1, or WAKEWAY_INTERCEPTOR_WORKERS"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wakeway", description="HTTP scale-to-zero: hold, wake, forward."
    )
    parser.add_argument("--version", action="version", version=f"wakeway {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=logs.FORMATS,
        help="json: one JSON object per line, with the fields of wake and sleep events",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    local = sub.add_parser(
        "local",
        help="run interceptor, scaler and operator in one process; workloads are local commands",
        description="Local mode: reads HTTPScaledObject, HTTPRoute and LocalWorkload documents "
        "from YAML files (or directories of them), starts each workload on its first request "
        "and stops it after its quiet period. SIGHUP reloads the files.",
    )
    local.add_argument("paths", nargs="+", type=Path, metavar="FILE_OR_DIR")
    local.add_argument(
        "--listen",
        type=host_port,
        default=host_port(DEFAULT_LOCAL_LISTEN),
        help=f"proxy address (default {DEFAULT_LOCAL_LISTEN})",
    )
    local.add_argument(
        "--admin",
        type=host_port,
        default=host_port(DEFAULT_LOCAL_ADMIN),
        help=f"admin address: /livez /readyz /metrics /counts, and /objects and /explain for "
        f"wakeway status|wake|sleep|explain --local (default {DEFAULT_LOCAL_ADMIN})",
    )
    local.add_argument("--workers", type=workers, metavar="N|auto", help=WORKERS_HELP)
    local.add_argument(
        "--tls-cert",
        action="append",
        default=[],
        metavar="FILE",
        help="serve TLS on the proxy address with this PEM certificate (chain); repeat with "
        "--tls-key for more certificates, chosen by SNI from their names; the first is the "
        "default. Reloaded when the files change",
    )
    local.add_argument(
        "--tls-key", action="append", default=[], metavar="FILE", help="the key of each --tls-cert"
    )

    scaler = sub.add_parser(
        "scaler",
        help="run the KEDA external scaler (gRPC), fed by the interceptors' count streams",
        description="Serves KEDA's externalscaler protocol from counts pushed by interceptor "
        "replicas. Settings come from WAKEWAY_SCALER_* variables; these flags override them.",
    )
    scaler.add_argument("--listen", type=host_port, help="gRPC address (default 0.0.0.0:9091)")
    scaler.add_argument(
        "--interceptors",
        type=addresses,
        metavar="HOST:PORT,...",
        help="interceptor admin addresses to subscribe to (their /counts streams)",
    )

    interceptor = sub.add_parser(
        "interceptor",
        help="run the interceptor in Kubernetes mode (watches the cluster, forwards to pod IPs)",
        description="The interceptor Deployment's command. Settings come from "
        "WAKEWAY_INTERCEPTOR_* variables, the cluster connection and identity key from "
        "WAKEWAY_KUBECONFIG, WAKEWAY_INTERCEPTOR_SERVICE and WAKEWAY_ROUTE_IDENTITY_KEY[_FILE].",
    )
    interceptor.add_argument(
        "--listen", type=host_port, help="proxy address (default 0.0.0.0:8080)"
    )
    interceptor.add_argument("--admin", type=host_port, help="admin address (default 0.0.0.0:9090)")
    interceptor.add_argument("--workers", type=workers, metavar="N|auto", help=WORKERS_HELP)

    operator = sub.add_parser(
        "operator",
        help="run the operator: reconcile HTTPScaledObjects (KEDA or standalone mode)",
        description="The operator Deployment's command. Settings come from WAKEWAY_OPERATOR_* "
        "variables, plus WAKEWAY_KUBECONFIG, WAKEWAY_INTERCEPTOR_SERVICE and "
        "WAKEWAY_ROUTE_IDENTITY_KEY[_FILE] shared with the interceptor; flags override them.",
    )
    operator.add_argument("--mode", choices=["auto", "keda", "standalone"])
    operator.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster)")

    validate = sub.add_parser(
        "validate",
        help="check local-mode configuration or Kubernetes manifests, then exit",
        description="Checks every document of the YAML files (or directories of them). Files "
        "that define a LocalWorkload are local mode's configuration and get exactly its checks; "
        "otherwise they are Kubernetes manifests: HTTPScaledObjects, InterceptorRoutes, "
        "HTTPRoutes and ReferenceGrants are checked by the rules of the CRD and the operator, "
        "documents of other kinds are noted and skipped, an object defined again is noted "
        "(the later replaces it, as when applied). Every problem is printed, naming file, "
        "document, kind/name and field; exit 1 when there is any.",
    )
    validate.add_argument("paths", nargs="+", type=Path, metavar="FILE_OR_DIR")
    add_commands(sub)
    add_route_filter(sub)
    return parser


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser()
    if prog is not None:
        parser.prog = prog
    args = parser.parse_args(argv)
    logs.configure(args.log_level, args.log_format)
    if args.command in COMMANDS:
        return run_command(args)
    if args.command == ROUTE_FILTER:
        return run_route_filter(args)
    if args.command == "local":
        return _local(args)
    if args.command == "validate":
        return _validate(args)
    if args.command == "interceptor":
        return _interceptor(args)
    if args.command == "scaler":
        return _scaler(args)
    if args.command == "operator":
        return _operator(args)
    parser.print_help(sys.stderr)
    return 2


def _validate(args: argparse.Namespace) -> int:
    from wakeway.local.config import ConfigError, load_config
    from wakeway.model.settings import INTERCEPTOR_SERVICE
    from wakeway.routing import InterceptorRef, RouteGrants, RoutingTable, merge_targets

    try:
        config = load_config(args.paths, kubernetes=None)
    except ConfigError as exc:
        for line in (*exc.notes, *exc.problems):
            print(line, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s)", file=sys.stderr)
        return 1
    from wakeway.local.runner import LOCAL_INTERCEPTOR

    for note in config.notes:
        print(note, file=sys.stderr)
    # Local configuration names the interceptor by name only; manifests as config/ installs it.
    interceptor = LOCAL_INTERCEPTOR if config.workloads else InterceptorRef(*INTERCEPTOR_SERVICE)
    grants = RouteGrants.of(config.grants)
    scaled = [t for t in config.scaled_objects if not t.scaled_by_keda_only]
    routes = [t for t in config.scaled_objects if t.scaled_by_keda_only]
    targets = merge_targets(scaled, routes)
    table = RoutingTable(targets, config.routes, interceptor, grants)
    for binding in table.problems:
        print(f"warning: {binding.target}: {binding.message} ({binding.reason})", file=sys.stderr)
    for conflict in table.conflicts:
        print(f"warning: {conflict.loser}: {conflict.message}", file=sys.stderr)
    print(
        f"ok: {len(scaled)} HTTPScaledObjects, "
        + (f"{len(routes)} InterceptorRoutes, " if routes else "")
        + f"{len(config.routes)} HTTPRoutes, "
        f"{len(config.grants)} ReferenceGrants, {len(config.workloads)} LocalWorkloads"
    )
    return 0


# A listener and how to choose another address for it.
Listener = tuple[HostPort, str]


def _serve(main: Coroutine[Any, Any, int | None], listeners: Sequence[Listener]) -> int:
    """Run ``main`` on uvloop; an address that cannot be bound is one line naming it and the
    flag or setting that changes it (exit 2), not a traceback; so is a TLS certificate that
    cannot be used."""
    import uvloop

    from wakeway.interceptor.tls import TlsError

    try:
        return uvloop.run(main) or 0
    except KeyboardInterrupt:
        return 130
    except TlsError as exc:  # a certificate or key that cannot be used, naming its file
        print(f"wakeway: TLS: {exc}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as exc:
        line = _cannot_listen(exc, listeners)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2


def _cannot_listen(exc: BaseException, listeners: Sequence[Listener]) -> str | None:
    # asyncio: "[Errno 98] error while attempting to bind on address ('h', 8080): address
    # already in use"; gRPC: "Failed to bind to address h:8080".
    text = str(exc)
    if "bind" not in text:
        return None
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "cannot bind it"
    if "in use" in text:
        reason = "address already in use"
    for address, change in listeners:
        if address.port and re.search(rf"[^\d]{address.port}(?!\d)", text):
            return f"wakeway: cannot listen on {address}: {reason.lower()}; change it with {change}"
    return None


def _local(args: argparse.Namespace) -> int:
    from wakeway.interceptor.settings import settings_from_env
    from wakeway.local.runner import run_local

    try:
        settings = settings_from_env()
    except ValueError as exc:
        print(f"wakeway: {exc}", file=sys.stderr)
        return 2
    settings = replace(
        settings,
        listen_host=args.listen.host,
        listen_port=args.listen.port,
        admin_host=args.admin.host,
        admin_port=args.admin.port,
    )
    if args.tls_cert or args.tls_key:
        if len(args.tls_cert) != len(args.tls_key):
            print(
                f"wakeway: {len(args.tls_cert)} --tls-cert but {len(args.tls_key)} --tls-key: "
                "each certificate needs its key",
                file=sys.stderr,
            )
            return 2
        pairs = tuple(zip(args.tls_cert, args.tls_key, strict=True))
        settings = replace(settings, tls_certificates=pairs)
    if args.workers is not None:
        settings = replace(settings, workers=args.workers)
    listeners = [(args.listen, "--listen"), (args.admin, "--admin")]
    _observe(settings.access_log)
    return _serve(run_local(args.paths, settings), listeners)


def _observe(access_log: bool) -> None:
    """The interceptor's JSON access log on stdout, when the access_log setting asks for it,
    and OpenTelemetry tracing, when the standard OTEL_* variables do."""
    if access_log:
        from wakeway.observe import accesslog

        accesslog.enable()
    from wakeway.observe import tracing

    if tracing.wanted(os.environ):
        try:
            tracing.enable("wakeway-interceptor")
        except ValueError as exc:  # an exporter we do not ship
            print(f"wakeway: {exc}", file=sys.stderr)
            raise SystemExit(2) from None


def _scaler(args: argparse.Namespace) -> int:
    from wakeway.scaler import run_scaler, settings_from_env
    from wakeway.scaler.server import replica_source

    try:
        settings = settings_from_env()
        if args.listen is not None:
            settings = replace(settings, listen_host=args.listen.host, listen_port=args.listen.port)
        if args.interceptors is not None:
            settings = replace(settings, interceptors=args.interceptors)
    except ValueError as exc:
        print(f"wakeway: {exc}", file=sys.stderr)
        return 2
    try:
        replicas = replica_source(settings)
    except ValueError as exc:
        print(f"wakeway: scaler: {exc}", file=sys.stderr)
        return 2
    listen = HostPort(settings.listen_host, settings.listen_port)
    metrics = HostPort(settings.metrics_host, settings.metrics_port)
    listeners = [
        (listen, "--listen (or WAKEWAY_SCALER_LISTEN_HOST/_PORT)"),
        (metrics, "WAKEWAY_SCALER_METRICS_HOST/_PORT (port 0: no metrics server)"),
    ]
    return _serve(run_scaler(settings, replicas), listeners)


def _operator(args: argparse.Namespace) -> int:
    from wakeway.operator import run_operator, settings_from_env

    try:
        settings = settings_from_env()
        if args.mode is not None:
            settings = replace(settings, mode=args.mode)
        if args.kubeconfig is not None:
            settings = replace(settings, kubeconfig=args.kubeconfig)
    except ValueError as exc:
        print(f"wakeway: {exc}", file=sys.stderr)
        return 2
    health = HostPort(settings.health_host, settings.health_port)
    change = "WAKEWAY_OPERATOR_HEALTH_HOST/_PORT (port 0: no health server)"
    return _serve(run_operator(settings), [(health, change)])


def _interceptor(args: argparse.Namespace) -> int:
    from wakeway.interceptor.kube_mode import run_in_kubernetes
    from wakeway.interceptor.settings import kube_settings_from_env, settings_from_env

    try:
        settings = settings_from_env()
        kube_settings = kube_settings_from_env()
    except ValueError as exc:
        print(f"wakeway: {exc}", file=sys.stderr)
        return 2
    if args.listen is not None:
        settings = replace(settings, listen_host=args.listen.host, listen_port=args.listen.port)
    if args.admin is not None:
        settings = replace(settings, admin_host=args.admin.host, admin_port=args.admin.port)
    if args.workers is not None:
        try:
            settings = replace(settings, workers=args.workers)
        except ValueError as exc:  # with tls_secrets
            print(f"wakeway: {exc}", file=sys.stderr)
            return 2
    _observe(settings.access_log)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_in_kubernetes(settings, kube_settings, stop)

    listeners = [
        (
            HostPort(settings.listen_host, settings.listen_port),
            "--listen (or WAKEWAY_INTERCEPTOR_LISTEN_HOST/_PORT)",
        ),
        (
            HostPort(settings.admin_host, settings.admin_port),
            "--admin (or WAKEWAY_INTERCEPTOR_ADMIN_HOST/_PORT)",
        ),
    ]
    return _serve(main(), listeners)


def kubectl_plugin() -> int:
    """``kubectl-wakeway``: the same commands as ``kubectl wakeway ...``."""
    return main(prog="kubectl wakeway")


if __name__ == "__main__":
    raise SystemExit(main())
