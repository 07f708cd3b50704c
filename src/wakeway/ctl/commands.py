"""``wakeway status|wake|sleep|explain``: the parsers and what each command does.

Against a cluster by default (``--kubeconfig``, ``--context``, ``-n``, ``-A`` as kubectl reads
them), or against local mode with ``--local HOST:PORT`` (its ``--admin`` address). Every
command takes ``-o table|json|yaml``. Exit codes: 0 done, 1 not found or refused, 2 bad flags
or kubeconfig, 3 the API server or the admin port does not answer.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from wakeway.ctl.errors import EXIT_OK, CommandError, UsageError
from wakeway.ctl.local import LocalAdmin
from wakeway.ctl.output import FORMATS, dump, render_explanation, render_status
from wakeway.gateway.request import Request

if TYPE_CHECKING:
    from wakeway.ctl.cluster import Target
    from wakeway.kube import Kube

COMMANDS = ("status", "wake", "sleep", "explain")
T = TypeVar("T")


def add_commands(sub: Any) -> None:
    """Add the commands to ``sub`` (the ``wakeway`` parser's subparsers)."""
    where = argparse.ArgumentParser(add_help=False)
    group = where.add_argument_group("where")
    group.add_argument(
        "--local",
        metavar="HOST:PORT",
        help="local mode's admin address (`wakeway local --admin`), instead of a cluster",
    )
    group.add_argument("--kubeconfig", help="kubeconfig file (default $KUBECONFIG, ~/.kube/config)")
    group.add_argument("--context", help="kubeconfig context (default: its current context)")
    group.add_argument("-n", "--namespace", help="namespace (default: the context's, else default)")
    where.add_argument(
        "-o", "--output", choices=FORMATS, default="table", help="output format (default table)"
    )

    status = sub.add_parser(
        "status",
        parents=[where],
        help="show HTTPScaledObjects: awake or asleep, replicas, requests, routes, wake times",
        description="One line per HTTPScaledObject (or the one named): its state (awake, "
        "asleep, waking, sleeping), ready/desired replicas, requests in flight and held, "
        "spec.routes bound/declared, last wake and last sleep.",
    )
    status.add_argument("name", nargs="?", metavar="NAME")
    status.add_argument(
        "-A", "--all-namespaces", action="store_true", help="every namespace (cluster)"
    )
    status.add_argument(
        "--scaler-service",
        metavar="NS/NAME:PORT",
        help="the scaler's Service and metrics port, asked through the API server for requests "
        "in flight and held (cluster; default wakeway/wakeway-scaler:metrics)",
    )
    for verb, what in (
        ("wake", "scale its workload to max(1, replicas.min) now (local: start it)"),
        ("sleep", "scale its workload to 0 now (local: stop it)"),
    ):
        cmd = sub.add_parser(verb, parents=[where], help=f"{verb} an HTTPScaledObject: {what}")
        cmd.add_argument("name", metavar="NAME")
    explain = sub.add_parser(
        "explain",
        parents=[where],
        help="which object, route and rule a request would go to, and why not the others",
        description="Runs the request through the routing table the interceptor uses, built "
        "from the cluster's HTTPScaledObjects, InterceptorRoutes, HTTPRoutes and "
        "ReferenceGrants (or local "
        "mode's configuration), and prints the winner and each other candidate's reason.",
    )
    explain.add_argument("--host", required=True, help="the request's Host")
    explain.add_argument("--path", default="/", help="the request's path, with ?query (default /)")
    explain.add_argument("--method", default="GET", help="default GET")
    explain.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="a request header (repeat for more)",
    )


def run_command(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run one command; errors are one line on stderr naming what is wrong, and an exit code."""
    try:
        text = _run(args)
    except CommandError as exc:
        print(f"wakeway {args.command}: {exc}", file=sys.stderr)
        return exc.code
    out.write(text)
    return EXIT_OK


def _run(args: argparse.Namespace) -> str:
    fmt = args.output
    if args.local is not None:
        if getattr(args, "all_namespaces", False):
            raise UsageError("-A is for clusters; local mode shows every object")
        if getattr(args, "scaler_service", None) is not None:
            raise UsageError("--scaler-service is for clusters; local mode counts in process")
        admin = LocalAdmin(args.local)
        if args.command == "status":
            return render_status(admin.status(args.name), fmt, namespaces=True)
        if args.command == "explain":
            req = _request(args)
            found = admin.explain(req.method, args.host, args.path, args.header)
            return render_explanation(found, fmt)
        return _message([admin.act(args.name, args.command)], fmt)
    # Only here: the Kubernetes client takes most of a second to import.
    from wakeway.ctl import cluster

    target = cluster.resolve_target(
        args.kubeconfig,
        args.context,
        args.namespace,
        getattr(args, "all_namespaces", False),
        os.environ,
    )
    notes: list[str] = []
    scaler = getattr(args, "scaler_service", None)
    if scaler is not None:
        cluster.parse_scaler_service(scaler)  # a bad flag before any call
    if args.command == "status":
        items = _in_cluster(
            target,
            lambda kube: cluster.statuses(
                kube, target.namespace, args.name, scaler or cluster.SCALER_SERVICE, notes
            ),
        )
        _print_notes(notes)
        return render_status(items, fmt, namespaces=target.namespace is None)
    if args.command == "explain":
        req = _request(args)
        found = _in_cluster(target, lambda kube: cluster.explanation(kube, req, notes))
        _print_notes(notes)
        return render_explanation(found, fmt)
    wake = args.command == "wake"
    lines = _in_cluster(target, lambda kube: cluster.scale(kube, target.namespace, args.name, wake))
    return _message(lines, fmt)


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        print(note, file=sys.stderr)


def _message(lines: list[str], fmt: str) -> str:
    if fmt == "table":
        return "".join(line + "\n" for line in lines)
    return dump({"messages": lines}, fmt)


def _request(args: argparse.Namespace) -> Request:
    headers: dict[str, str] = {}
    for item in args.header:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"-H {item!r}: expected NAME:VALUE")
        headers[name.strip().lower()] = value.strip()
    path, _, query = args.path.partition("?")
    if not path.startswith("/"):
        raise UsageError(f"--path {args.path!r}: must start with /")
    return Request(args.method.upper(), args.host, path, query, headers)


def _in_cluster(target: Target, work: Callable[[Kube], Awaitable[T]]) -> T:
    from wakeway.ctl.cluster import connect

    async def main() -> T:
        kube = await connect(target)
        try:
            return await work(kube)
        finally:
            await kube.close()

    return asyncio.run(main())
