"""WSO2's wildcard patterns (``*`` any run of characters, ``?`` one character), matched
without a backtracking regular expression.

``listUsers("*a*a*a*c?b")`` as one regular expression (``.*a.*a.*a.*c.b``) takes
time that grows with a power of the name's length when it fails: seconds for a
300-character name, on the event loop. Here the pattern is cut at its ``*``s into
pieces of fixed length (``?`` stands for one character), and each piece is found
once, leftmost, after the one before: the first at the start, the last at the end.
That greedy order is exact for such patterns, and each search is a fixed-length
pattern, so a name costs at most its length times the pattern's.

A store searches with a SCIM filter, not a wildcard: :func:`pattern_filter` gives
the filter that narrows the search, and the Wildcard every result must match
where that filter alone is not exact.
"""

from __future__ import annotations

import re

import orjson


def _piece(text: str) -> re.Pattern:
    return re.compile("".join("." if c == "?" else re.escape(c) for c in text),
                      re.IGNORECASE | re.DOTALL)


class Wildcard:
    """A pattern; :meth:`matches` says whether a whole value matches it (ignoring case)."""

    def __init__(self, pattern: str):
        pieces = pattern.split("*")
        self._whole = _piece(pattern) if len(pieces) == 1 else None
        self._first = _piece(pieces[0])
        self._middle = [_piece(p) for p in pieces[1:-1] if p]
        self._last = _piece(pieces[-1])
        self._last_length = len(pieces[-1])  # each character of a piece matches one

    def matches(self, value: str) -> bool:
        if self._whole is not None:
            return self._whole.fullmatch(value) is not None
        found = self._first.match(value)
        if found is None:
            return False
        pos = found.end()
        for piece in self._middle:
            found = piece.search(value, pos)
            if found is None:
                return False
            pos = found.end()
        start = len(value) - self._last_length
        return start >= pos and self._last.fullmatch(value, start) is not None


def pattern_filter(attr: str, pattern: str) -> tuple[str | None, Wildcard | None]:
    """A WSO2 wildcard pattern (``*`` any run of characters, ``?`` one character) as a
    SCIM filter that narrows the search, and, where the filter alone is not exact, the
    Wildcard every result must match."""
    if pattern.strip("*") == "":
        return None, None
    if "*" not in pattern and "?" not in pattern:
        return f"{attr} eq {_quote(pattern)}", None
    parts = re.split(r"[*?]", pattern)
    terms = []
    if parts[0]:
        terms.append(f"{attr} sw {_quote(parts[0])}")
    if parts[-1]:
        terms.append(f"{attr} ew {_quote(parts[-1])}")
    middle = [p for p in parts[1:-1] if p]
    terms.extend(f"{attr} co {_quote(p)}" for p in middle)
    exact = None
    if "?" in pattern or middle or (parts[0] and parts[-1]):  # the terms are not enough
        exact = Wildcard(pattern)
    return " and ".join(terms) or None, exact


def _quote(value: str) -> str:
    return orjson.dumps(value).decode()
