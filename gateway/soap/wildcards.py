"""WSO2's wildcard patterns (``*`` any run of characters, ``?`` one character), matched
without a backtracking regular expression.

``listUsers("*a*a*a*c?b")`` as one regular expression (``.*a.*a.*a.*c.b``) takes
time that grows with a power of the name's length when it fails: seconds for a
300-character name, on the event loop. Here the pattern is cut at its ``*``s into
pieces of fixed length (``?`` stands for one character), and each piece is found
once, leftmost, after the one before: the first at the start, the last at the end.
That greedy order is exact for such patterns, and each search is a fixed-length
pattern, so a name costs at most its length times the pattern's.
"""

from __future__ import annotations

import re


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
