"""YAML with line numbers: the one loader behind the catalog and blind-test plans.

:func:`load_yaml` parses text safely and remembers, for every key path, the line it
was written on, so a validation error can be reported as ``file:line: field message``.
:func:`explain` turns pydantic errors into short messages a person can act on (a
misspelt field becomes one "did you mean" problem instead of two).

>>> doc = load_yaml("title: x\\nrepeats: -1\\n", name="plan.yaml")
>>> doc.line(("repeats",))
2
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import CatalogError

__all__ = ["YamlDoc", "compose_lines", "explain", "friendly", "load_yaml"]


@dataclass(frozen=True)
class YamlDoc:
    """A parsed YAML document and the 1-based line of each key path (tuple of str/int)."""

    data: Any
    lines: dict[tuple, int]
    name: str  # the file name used in messages

    def line(self, loc: tuple) -> int:
        """The line of ``loc``, else of its nearest parent that has one (1 when none)."""
        loc = tuple(str(p) if not isinstance(p, int) else p for p in loc)
        for n in range(len(loc), -1, -1):
            if loc[:n] in self.lines:
                return self.lines[loc[:n]]
        return 1

    def where(self, loc: tuple, message: str) -> str:
        """``name:line: dotted.loc message``."""
        field = ".".join(str(p) for p in loc)
        return f"{self.name}:{self.line(loc)}: {field + ' ' if field else ''}{message}"


def compose_lines(text: str) -> dict[tuple, int]:
    """Map each key path (tuple of str; list items by index) to the 1-based line where it appears.

    Raises ``yaml.YAMLError`` for invalid YAML, including nesting too deep to parse.
    An alias is not walked again (a "billion laughs" file stays cheap), and the walk
    is iterative, so self-referencing anchors and deep nesting cannot recurse.
    """
    lines: dict[tuple, int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise yaml.YAMLError("nested too deeply (a catalog or plan is only a few levels deep)") from None
    walked: set[int] = set()
    stack: list[tuple[yaml.Node, tuple]] = [(root, ())] if root is not None else []
    while stack:
        node, path = stack.pop()
        lines.setdefault(path, node.start_mark.line + 1)
        if id(node) in walked:  # an alias of a node already walked
            continue
        walked.add(id(node))
        children: list[tuple[yaml.Node, tuple]] = []
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = (str(k.value),)
                lines[path + key] = k.start_mark.line + 1
                children.append((v, path + key))
        elif isinstance(node, yaml.SequenceNode):
            children = [(v, path + (i,)) for i, v in enumerate(node.value)]
        stack.extend(reversed(children))  # document order, like a recursive walk
    return lines


def load_yaml(text: str, *, name: str | Path = "file.yaml") -> YamlDoc:
    """Parse YAML ``text`` (safe loader) with the line of every key.

    Raises :class:`CatalogError` ``name:line: not valid YAML: ...`` for a syntax error,
    nesting too deep, an impossible date (2024-13-45) or a number too long to convert.
    """
    name = Path(name).name
    try:
        lines = compose_lines(text)
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as e:  # ValueError: a date like 2024-13-45, a 5000-digit number
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise CatalogError(f"{name}:{line}: not valid YAML: {getattr(e, 'problem', e)}") from None
    return YamlDoc(data=data, lines=lines, name=name)


def friendly(err: Mapping[str, Any]) -> str:
    """A short message for one pydantic error (``err`` from ``ValidationError.errors()``)."""
    msg = err["msg"]
    kind = err["type"]
    got = err.get("input")
    if kind == "extra_forbidden":
        return "is not a known field (check the spelling)"
    if kind == "missing":
        return "is required"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
        limit = next(iter(err.get("ctx", {}).values()), "?")
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return f"must be {op} {limit}, got {got!r}"
    if kind == "literal_error":
        return f"must be {err['ctx']['expected']}, got {got!r}"
    msg = msg.removeprefix("Value error, ")
    if got is not None and not isinstance(got, dict | list | Path) and "got" not in msg:
        msg += f", got {got!r}"
    return msg


def explain(errors: Sequence[Mapping[str, Any]], known: list[str] | None = None) -> list[tuple[tuple, str]]:
    """Pydantic errors -> ``(location, message)``; a misspelt field becomes one "did you mean" problem.

    ``known`` lists every field name at the top level, so an unknown key is matched
    against all of them (not only the missing ones).
    """
    missing = {e["loc"]: dict(e) for e in errors if e["type"] == "missing"}  # copies: marked below
    out = []
    for err in errors:
        loc = tuple(err["loc"])
        if err["type"] == "missing" and err.get("_explained"):
            continue
        if err["type"] == "extra_forbidden":
            siblings = [m for m in missing if m[:-1] == loc[:-1]]
            close = difflib.get_close_matches(str(loc[-1]), [str(m[-1]) for m in siblings], n=1, cutoff=0.6)
            if close:
                missing[loc[:-1] + (close[0],)]["_explained"] = True
                out.append((loc, f"is not a known field; did you mean {close[0]!r}?"))
                continue
            if known and len(loc) == 1:
                close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
                if close:
                    out.append((loc, f"is not a known field; did you mean {close[0]!r}?"))
                    continue
        out.append((loc, friendly(err)))
    return [(loc, msg) for loc, msg in out if not (missing.get(loc) or {}).get("_explained")]
