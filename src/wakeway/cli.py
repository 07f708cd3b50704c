"""The ``wakeway`` command."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from wakeway import __version__
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
        help=f"admin address: /livez /readyz /metrics /counts (default {DEFAULT_LOCAL_ADMIN})",
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
        "validate", help="check configuration files the way local mode reads them, then exit"
    )
    validate.add_argument("paths", nargs="+", type=Path, metavar="FILE_OR_DIR")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(args.log_level, args.log_format)
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
    from wakeway.routing import RoutingTable

    try:
        config = load_config(args.paths)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s)", file=sys.stderr)
        return 1
    from wakeway.local.runner import LOCAL_INTERCEPTOR

    table = RoutingTable(config.scaled_objects, config.routes, LOCAL_INTERCEPTOR)
    for binding in table.problems:
        print(f"warning: {binding.target}: {binding.message} ({binding.reason})", file=sys.stderr)
    for conflict in table.conflicts:
        print(f"warning: {conflict.loser}: {conflict.message}", file=sys.stderr)
    print(
        f"ok: {len(config.scaled_objects)} HTTPScaledObjects, {len(config.routes)} HTTPRoutes, "
        f"{len(config.workloads)} LocalWorkloads"
    )
    return 0


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
    try:
        import uvloop

        return uvloop.run(run_local(args.paths, settings))
    except KeyboardInterrupt:
        return 130


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
    try:
        import uvloop

        return uvloop.run(run_scaler(settings, replicas))
    except KeyboardInterrupt:
        return 130


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
    try:
        import uvloop

        uvloop.run(run_operator(settings))
    except KeyboardInterrupt:
        return 130
    return 0


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

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_in_kubernetes(settings, kube_settings, stop)

    import uvloop

    uvloop.run(main())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
