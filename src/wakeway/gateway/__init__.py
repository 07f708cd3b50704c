"""Gateway API HTTPRoute matching and precedence (pure)."""

from wakeway.gateway.hostnames import hostname_matches, hostname_rank, route_hostname_rank
from wakeway.gateway.match import (
    CompiledMatch,
    compile_match,
    effective_headers,
    effective_query_params,
    path_prefix_matches,
)
from wakeway.gateway.precedence import (
    Selection,
    match_rank,
    precedence_key,
    route_rank,
    select,
    select_among,
)
from wakeway.gateway.request import Request

__all__ = [
    "CompiledMatch",
    "Request",
    "Selection",
    "compile_match",
    "effective_headers",
    "effective_query_params",
    "hostname_matches",
    "hostname_rank",
    "match_rank",
    "path_prefix_matches",
    "precedence_key",
    "route_hostname_rank",
    "route_rank",
    "select",
    "select_among",
]
