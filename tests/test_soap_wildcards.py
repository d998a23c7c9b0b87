"""WSO2 wildcard patterns (``listUsers``, ``getUserList``): exact, and linear in time."""

from __future__ import annotations

import random
import re
import time

import pytest
from conftest import scim
from test_soap_security import call, op, returns

from gateway.soap.wildcards import Wildcard


def reference(pattern: str, value: str) -> bool:
    """The meaning of a pattern, as the regular expression it stands for."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL) is not None


def test_matches_as_the_regular_expression_would():
    rng = random.Random(20261207)
    alphabet = "abAB*?"
    for _ in range(20_000):
        pattern = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 7)))
        value = "".join(rng.choice("abAB") for _ in range(rng.randint(0, 9)))
        assert Wildcard(pattern).matches(value) == reference(pattern, value), (pattern, value)


@pytest.mark.parametrize(("pattern", "value", "expected"), [
    ("*", "", True), ("", "", True), ("", "a", False), ("?", "", False), ("a*", "ABC", True),
    ("*c", "abc", True), ("a*c", "ac", True), ("a*?c", "ac", False), ("ab*ba", "aba", False),
    ("*.*", "a.b", True), ("[x]*", "[x]y", True), ("s\u00df*", "S\u00dfe", True),
])
def test_edges(pattern, value, expected):
    assert Wildcard(pattern).matches(value) is expected


async def test_list_users_with_a_hostile_pattern_answers_at_once(gateway):
    # as a regular expression, this pattern against this name (which passes the store's
    # filter: it ends with b and holds a c) takes far longer than the test's time limit
    # for one request (5 s for 302 characters, growing with the 4th power of the length)
    long_name = "a" * 510 + "cb"
    status, body, _ = await scim(gateway, "POST", "/Users", {"userName": long_name})
    assert status == 201, body
    status, body, _ = await scim(gateway, "POST", "/Users", {"userName": "xaayaazcqb"})
    assert status == 201, body
    started = time.monotonic()
    status, text, _ = await call(gateway, op("listUsers", ("filter", "*a*a*a*c?b"),
                                             ("maxItemLimit", 100)))
    # a hang guard, not a speed target: the regular expression took 55 s here, blocking
    # the event loop (so the client's own time limit could not fire)
    assert time.monotonic() - started < 5
    assert status == 200, text
    assert returns(text) == ["xaayaazcqb"]
    status, text, _ = await call(gateway, op("listUsers", ("filter", "a*a?a*c?"),
                                             ("maxItemLimit", 100)))
    assert returns(text) == [long_name]
