"""Typed readers for raw JSON-like mappings; each error names the field path."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, overload

from wakeway.model.errors import ModelError, Problem

Raw = Mapping[str, Any]
T = TypeVar("T")

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def join(path: str, key: str | int) -> str:
    """``join("spec", "hosts") == "spec.hosts"``; ``join("spec.hosts", 2) == "spec.hosts[2]"``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def mapping(value: Any, path: str) -> Raw:
    if not isinstance(value, Mapping):
        raise ModelError(path, f"must be an object, got {_kind(value)}")
    return value


def opt_mapping(obj: Raw, key: str, path: str) -> Raw | None:
    value = obj.get(key)
    return None if value is None else mapping(value, join(path, key))


def req_mapping(obj: Raw, key: str, path: str) -> Raw:
    value = obj.get(key)
    if value is None:
        raise ModelError(join(path, key), "is required")
    return mapping(value, join(path, key))


def opt_list(obj: Raw, key: str, path: str) -> Sequence[Any]:
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise ModelError(join(path, key), f"must be a list, got {_kind(value)}")
    return value


@overload
def opt_str(obj: Raw, key: str, path: str, default: str) -> str: ...
@overload
def opt_str(obj: Raw, key: str, path: str, default: None = None) -> str | None: ...
def opt_str(obj: Raw, key: str, path: str, default: str | None = None) -> str | None:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ModelError(join(path, key), f"must be a string, got {_kind(value)}")
    return value


def req_str(obj: Raw, key: str, path: str) -> str:
    value = opt_str(obj, key, path)
    if value is None or value == "":
        raise ModelError(join(path, key), "is required")
    return value


def as_str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ModelError(path, f"must be a string, got {_kind(value)}")
    return value


@overload
def opt_int(
    obj: Raw,
    key: str,
    path: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int: ...
@overload
def opt_int(
    obj: Raw,
    key: str,
    path: str,
    default: None = None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int | None: ...
def opt_int(
    obj: Raw,
    key: str,
    path: str,
    default: int | None = None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int | None:
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelError(join(path, key), f"must be an integer, got {_kind(value)}")
    if minimum is not None and value < minimum:
        raise ModelError(join(path, key), f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ModelError(join(path, key), f"must be at most {maximum}, got {value}")
    return value


@overload
def opt_number(
    obj: Raw, key: str, path: str, default: float, *, minimum: float | None = None
) -> float: ...
@overload
def opt_number(
    obj: Raw, key: str, path: str, default: None = None, *, minimum: float | None = None
) -> float | None: ...
def opt_number(
    obj: Raw, key: str, path: str, default: float | None = None, *, minimum: float | None = None
) -> float | None:
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelError(join(path, key), f"must be a number, got {_kind(value)}")
    if minimum is not None and value < minimum:
        raise ModelError(join(path, key), f"must be at least {minimum}, got {value}")
    return float(value)


def opt_bool(obj: Raw, key: str, path: str, default: bool) -> bool:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ModelError(join(path, key), f"must be true or false, got {_kind(value)}")
    return value


def parse_duration(value: Any, path: str) -> float:
    """Seconds from a Go-style duration string ("1m30s", "250ms") or a plain number of seconds."""
    if isinstance(value, bool):
        raise ModelError(path, "must be a duration such as 30s, 5m or 1h30m")
    if isinstance(value, int | float):
        if value < 0:
            raise ModelError(path, f"must not be negative, got {value}")
        return float(value)
    if not isinstance(value, str) or not value:
        raise ModelError(path, "must be a duration such as 30s, 5m or 1h30m")
    pos = 0
    total = 0.0
    for part in _DURATION_PART.finditer(value):
        if part.start() != pos:
            break
        total += float(part.group(1)) * _UNITS[part.group(2)]
        pos = part.end()
    if pos != len(value):
        raise ModelError(path, f"{value!r} is not a duration such as 30s, 5m or 1h30m")
    return total


@overload
def opt_duration(obj: Raw, key: str, path: str, default: float) -> float: ...
@overload
def opt_duration(obj: Raw, key: str, path: str, default: None = None) -> float | None: ...
def opt_duration(obj: Raw, key: str, path: str, default: float | None = None) -> float | None:
    value = obj.get(key)
    if value is None:
        return default
    return parse_duration(value, join(path, key))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


# --- whole documents: unknown fields and every problem at once --------------------------------


class _Document:
    """The bookkeeping of one document being parsed: its mappings, the problems found so far
    and the field paths whose reading stopped at a problem (unread keys there are not news)."""

    def __init__(self) -> None:
        self.nodes: list[_Tracked] = []
        self.problems: list[Problem] = []
        self.broken: list[str] = []

    def unknown_fields(self) -> list[Problem]:
        out: list[Problem] = []
        for node in self.nodes:
            if node.whole:
                continue
            for key in node.raw:
                path = join(node.path, str(key))
                if str(key) in node.asked:
                    continue
                asked = sorted(k for k in node.asked if k not in node.raw)
                if any(_under(path, b) for b in self.broken):
                    # Reading stopped early here: only a near miss of a field that is absent
                    # (``namespce`` for a missing ``namespace``) is sure to be a typo.
                    close = difflib.get_close_matches(str(key), asked, n=1, cutoff=0.75)
                    if not close:
                        continue
                else:
                    close = difflib.get_close_matches(str(key), asked, n=1, cutoff=0.6)
                hint = f"; did you mean `{close[0]}`?" if close else ""
                out.append(Problem(path, f"unknown field{hint}"))
        return out


class _Tracked(Mapping[str, Any]):
    """A read-only view of a mapping that records which keys the parser asks for, present or
    not; a key nobody asked for is an unknown field. Iterating it (a free-form map such as
    labels or env) makes every key known."""

    def __init__(self, raw: Raw, path: str, document: _Document) -> None:
        self.raw = raw
        self.path = path
        self.document = document
        self.asked: set[str] = set()
        self.whole = False
        self._children: dict[str, Any] = {}
        document.nodes.append(self)

    def __getitem__(self, key: str) -> Any:
        self.asked.add(key)
        if key not in self._children:
            self._children[key] = self._wrap(self.raw[key], join(self.path, key))
        return self._children[key]

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return key in self.raw

    def __iter__(self) -> Iterator[str]:
        self.whole = True
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def _wrap(self, value: Any, path: str) -> Any:
        if isinstance(value, Mapping):
            return _Tracked(value, path, self.document)
        if isinstance(value, list | tuple):
            return tuple(self._wrap(item, join(path, i)) for i, item in enumerate(value))
        return value


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith((f"{root}.", f"{root}["))


def parse_document(
    raw: Raw, parse: Callable[[Raw], T], *, known: Iterable[str] = (), strict: bool = True
) -> T:
    """``parse(view)`` of a whole document: every problem is collected (see :func:`guard`),
    and, when ``strict``, a field the parser never asked for is a problem ("unknown field; did
    you mean `hosts`?"). ``known``: top-level keys accepted without being read (``status``).
    Raises one :class:`ModelError` listing every problem."""
    document = _Document()
    view = _Tracked(raw, "", document)
    view.asked.update(known)
    try:
        result = parse(view)
    except ModelError as exc:
        # Reading stopped here, so which fields were never asked for is unknown.
        raise ModelError.of([*document.problems, *exc.problems]) from None
    problems = [*document.problems, *(document.unknown_fields() if strict else ())]
    if problems:
        raise ModelError.of(problems)
    return result


def guard(obj: Raw, keys: str | Sequence[str], read: Callable[[], T], fallback: T) -> T:
    """``read()`` of the fields ``keys`` of ``obj``. Inside :func:`parse_document` a problem
    is kept to be reported with the document's others and ``fallback`` stands in for the
    value, so reading goes on; elsewhere the problem is raised."""
    if not isinstance(obj, _Tracked):
        return read()
    names = (keys,) if isinstance(keys, str) else tuple(keys)
    obj.asked.update(names)
    try:
        return read()
    except ModelError as exc:
        obj.document.problems.extend(exc.problems)
        obj.document.broken.extend(join(obj.path, name) for name in names)
        return fallback


def each(obj: Raw, key: str, path: str, read: Callable[[Any, str], T]) -> list[T]:
    """``read(item, item_path)`` of every item of the list ``obj[key]``; inside
    :func:`parse_document` a bad item is reported and left out, and the others are read."""
    out: list[T] = []
    items = opt_list(obj, key, path)
    for i, raw in enumerate(items):
        item_path = join(join(path, key), i)
        try:
            out.append(read(raw, item_path))
        except ModelError as exc:
            if not isinstance(obj, _Tracked):
                raise
            obj.document.problems.extend(exc.problems)
            obj.document.broken.append(item_path)
    return out


def known(obj: Raw, *keys: str) -> None:
    """Accept ``keys`` of ``obj`` without reading them (fields another component reads)."""
    if isinstance(obj, _Tracked):
        obj.asked.update(keys)


def opaque(obj: Raw) -> None:
    """Accept every field of ``obj`` and below without reading them (content that is another
    component's business, such as the body of a filter the gateway applies)."""
    if isinstance(obj, _Tracked):
        obj.whole = True
