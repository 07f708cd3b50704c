"""The commands against local mode: its admin port's routes (:mod:`wakeway.local.control`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from wakeway.ctl.errors import CommandError, Unreachable
from wakeway.model.objectstatus import ObjectStatus
from wakeway.routing.explain import Explanation, explanation_from_json

TIMEOUT = 10.0


class LocalAdmin:
    def __init__(self, address: str) -> None:
        self.address = address

    def _call(self, method: str, path: str, query: Sequence[tuple[str, str]] = ()) -> Any:
        url = f"http://{self.address}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        req = urllib.request.Request(url, method=method)
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as exc:
            raise CommandError(_error_of(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            why = getattr(exc, "reason", exc)
            raise Unreachable(
                f"cannot reach local mode's admin port at {self.address}: {why} "
                "(is `wakeway local` running? its --admin address is the one to give)"
            ) from None
        except ValueError:
            raise CommandError(
                f"{self.address}{path} did not answer JSON: is it local mode's admin port?"
            ) from None

    def status(self, name: str | None) -> list[ObjectStatus]:
        doc = self._call("GET", "/objects", [("name", name)] if name else ())
        try:
            return [ObjectStatus.from_json(item) for item in doc["items"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise CommandError(f"{self.address}/objects: unexpected answer: {exc}") from None

    def act(self, name: str, action: str) -> str:
        doc = self._call("POST", f"/objects/{urllib.parse.quote(name, safe='/')}/{action}")
        return f"{doc['object']}: {doc['message']}"

    def explain(self, method: str, host: str, path: str, headers: Sequence[str]) -> Explanation:
        query = [("method", method), ("host", host), ("path", path)]
        query += [("header", h) for h in headers]
        doc = self._call("GET", "/explain", query)
        try:
            return explanation_from_json(doc)
        except (KeyError, TypeError) as exc:
            raise CommandError(f"{self.address}/explain: unexpected answer: {exc}") from None


def _error_of(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.load(exc)["error"])
    except (ValueError, KeyError, TypeError):
        return f"{exc.url}: HTTP {exc.code} {exc.reason}"
