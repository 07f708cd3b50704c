"""``wakeway route-filter NAME``: the filter that stamps a route's identity, to paste into each
bound rule of the HTTPRoute, for routes that do not let the operator write it (no annotation
``wakeway.dev/stamp-identity: "true"``: e.g. a GitOps tool that owns the whole route).

Read from the HTTPScaledObject's ``status.routes[].identity``, which the operator publishes
only where the binding holds (docs/security.md)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from wakeway.ctl.errors import EXIT_OK, CommandError, UsageError
from wakeway.ctl.output import dump

COMMAND = "route-filter"


def add_route_filter(sub: Any) -> None:
    """Add ``route-filter`` to ``sub`` (the ``wakeway`` parser's subparsers)."""
    p = sub.add_parser(
        COMMAND,
        help="print the identity filter to paste into an HTTPRoute's bound rules",
        description="The RequestHeaderModifier filter that stamps each bound route's identity "
        "(from the HTTPScaledObject's status), as YAML to paste into the rule's filters. Not "
        'needed for routes annotated wakeway.dev/stamp-identity: "true": the operator writes it.',
    )
    p.add_argument("name", metavar="NAME", help="the HTTPScaledObject")
    p.add_argument("--route", metavar="[NAMESPACE/]NAME", help="only this HTTPRoute")
    p.add_argument("--kubeconfig", help="kubeconfig file (default $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context (default: its current context)")
    p.add_argument("-n", "--namespace", help="namespace (default: the context's, else default)")
    p.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")


def run_route_filter(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from wakeway.ctl import cluster

    target = cluster.resolve_target(
        args.kubeconfig, args.context, args.namespace, False, os.environ
    )
    assert target.namespace is not None

    async def read() -> dict[str, Any]:
        kube = await cluster.connect(target)
        try:
            return await cluster.get_object(kube, target.namespace, args.name)
        finally:
            await kube.close()

    try:
        obj = asyncio.run(read())
        found = route_filters(obj, args.route)
    except CommandError as exc:
        print(f"wakeway {COMMAND}: {exc}", file=sys.stderr)
        return exc.code
    out.write(render(found, args.output))
    return EXIT_OK


def route_filters(obj: Mapping[str, Any], route: str | None) -> list[dict[str, Any]]:
    """One entry per bound route (or the one ``route`` names): the route, its rule and the
    filter. CommandError names the object and why a route has no identity yet."""
    from wakeway.operator.routefilter import identity_filter

    meta = obj.get("metadata") or {}
    ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    entries = [e for e in (obj.get("status") or {}).get("routes") or [] if isinstance(e, dict)]
    if route is not None:
        want = route if "/" in route else f"{ns}/{route}"
        entries = [e for e in entries if f"{e.get('namespace', ns)}/{e.get('name')}" == want]
        if not entries:
            raise UsageError(f"HTTPScaledObject {ns}/{name} binds no HTTPRoute {want}")
    if not entries:
        raise CommandError(f"HTTPScaledObject {ns}/{name}: no routes in its status yet")
    found, missing = [], []
    for e in entries:
        key = f"{e.get('namespace', ns)}/{e.get('name')}"
        if e.get("identity"):
            rule = e.get("ruleName")
            found.append({"route": key, "rule": rule, "filter": identity_filter(e["identity"])})
        else:
            why = e.get("message") or e.get("reason") or "not bound"
            missing.append(f"HTTPRoute {key}: no identity published ({why})")
    if not found:
        raise CommandError(f"HTTPScaledObject {ns}/{name}: " + "; ".join(missing))
    return found


def render(found: Sequence[Mapping[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return dump(list(found), "json")
    parts = []
    for f in found:
        rules = f"rule {f['rule']!r}" if f["rule"] else "each rule bound"
        parts.append(
            f"# HTTPRoute {f['route']}, {rules}: add to the rule's filters (or, if the rule\n"
            "# has a RequestHeaderModifier already, this entry to its `set`)\n"
            + dump([f["filter"]], "yaml")
        )
    return "".join(parts)
