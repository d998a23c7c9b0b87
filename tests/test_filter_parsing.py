"""The common filter ``attr[.sub] op "string"`` is read without the grammar's parser; it must
mean exactly what the parser says, and anything else must still go to the parser."""

from __future__ import annotations

import random
import string

import pytest
from scim2_models import InvalidFilterException
from scim2_models.path import ScimFilter

from gateway.errors import InvalidFilter
from gateway.model import parsing
from gateway.model.registry import SchemaRegistry

SIMPLE = ['userName eq "bob"', 'userName EQ "bob"', ' name.givenName sw "B\\"x" ',
          'emails.value eq "a@b.c"', 'externalId eq "ext-1"', 'userName eq "caf\\u00e9"',
          'title eq ""', 'userName Eq "a b"', 'title co "\\\\"', "nickName\tne\t\"x\"",
          'meta.lastModified gt "2024-01-01T00:00:00Z"', 'x$ref-_9 le "z"']
NOT_SIMPLE = ['userName eq "a" and title eq "b"', 'userName eq bob', 'userName eq 1',
              'urn:ietf:params:scim:schemas:core:2.0:User:userName eq "a"', 'userName pr',
              'emails[type eq "work"]', 'userName eq "a\nb"', 'userName eq "\\q"',
              'userName eq "a" ', 'not (userName eq "a")', 'userName eq "a"b"']


@pytest.mark.parametrize("text", SIMPLE)
def test_the_fast_reading_is_the_parsers(text):
    fast = parsing._simple(text)
    assert fast is not None
    assert fast == ScimFilter(text).ast


@pytest.mark.parametrize("text", NOT_SIMPLE)
def test_anything_else_goes_to_the_parser(text):
    if text == 'userName eq "a" ':  # trailing blanks are simple too
        assert parsing._simple(text) == ScimFilter(text).ast
        return
    assert parsing._simple(text) is None


def test_random_filters_mean_the_same_either_way():
    """Random ``attr op "value"`` texts, with escapes and odd characters: wherever the fast
    reading accepts one, the parser gives the same tree (or the parser refuses it too)."""
    rnd = random.Random(7164937)
    alphabet = string.ascii_letters + string.digits + ' "\\/.-_$\t\u00e9\u4e2d'
    escapes = ['\\"', "\\\\", "\\n", "\\u0041", "\\t", "\\x", "\\"]
    accepted = 0
    for _ in range(3000):
        attr = rnd.choice(["userName", "name.familyName", "emails.value", "a", "x-1", "1a"])
        op = rnd.choice(["eq", "Ne", "CO", "sw", "ew", "gt", "ge", "lt", "le", "xx"])
        value = "".join(rnd.choice(escapes) if rnd.random() < 0.1 else rnd.choice(alphabet)
                        for _ in range(rnd.randrange(0, 12)))
        text = f'{attr} {op} "{value}"'
        fast = parsing._simple(text)
        if fast is None:
            continue
        accepted += 1
        try:
            parsed = ScimFilter(text).ast
        except (InvalidFilterException, ValueError, TypeError):
            pytest.fail(f"the fast reading accepts what the parser refuses: {text!r}")
        assert fast == parsed, text
    assert accepted > 500  # the comparison did happen


def test_the_resolved_tree_is_the_same():
    rtype = SchemaRegistry.build(()).user
    for text in SIMPLE[:6]:
        assert parsing.parse_filter(rtype, text) == parsing._Resolver(rtype).node(
            ScimFilter(text).ast)
    with pytest.raises(InvalidFilter):
        parsing.parse_filter(rtype, 'nosuch eq "x"')
