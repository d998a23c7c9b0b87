"""Cursor paging (RFC 9865) over one or several user stores.

A cursor is keyset paging: it remembers, for each store, the position (sort
value, creation sequence) of the last resource returned, so that the next
page starts right after it whatever was added or removed meanwhile (index
paging shifts then). The cursor is opaque to clients (base64url JSON) and
bound to the query it came from: reused with another filter, sort or domain
it is refused with 400 ``invalidCursor``. Cursors do not expire and hold no
server state, so any worker or host can continue any cursor.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq

import orjson

from .errors import ClientError

VERSION = 1


class InvalidCursor(ClientError):
    scim_type = "invalidCursor"
    default_detail = "The cursor is not valid"


def query_key(*parts) -> str:
    """What a cursor is bound to: the filter, sort, order and domain of its query."""
    return hashlib.sha256(orjson.dumps([str(p) for p in parts])).hexdigest()[:16]


def encode(key: str, positions: dict[str, list | str | None]) -> str:
    raw = orjson.dumps({"v": VERSION, "q": key, "p": positions})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, key: str, domains: list[str]) -> dict[str, list | str | None]:
    """Positions per store domain: [value, tie-breaker], "done", or None (from the start).

    The tie-breaker is the store's own: a creation sequence (SQL), an id (LDAP)."""
    if cursor == "":
        return {d: None for d in domains}
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidCursor("The cursor is not one this server issued") from None
    if not isinstance(data, dict) or data.get("v") != VERSION or not isinstance(
            data.get("p"), dict):
        raise InvalidCursor("The cursor is not one this server issued")
    if data.get("q") != key:
        raise InvalidCursor("The cursor belongs to another query (filter, sort or domain)")
    positions = data["p"]
    if set(positions) != set(domains):
        raise InvalidCursor("The cursor belongs to another set of user stores")
    for value in positions.values():
        if not (value is None or value == "done" or isinstance(value, list) and len(value) == 2
                and isinstance(value[1], int | str) and not isinstance(value[1], bool)):
            raise InvalidCursor("The cursor is damaged")
    return positions


def merge_key(descending: bool):
    """Order of (position, store index) across stores, as each store orders itself."""
    def key(item):
        (value, seq), store_index = item[0], item[1]
        missing = value is None
        # ascending: values then missing ones; descending is the exact reverse
        return (missing, "" if missing else value, store_index, seq)

    return key


def merge(pages: list[list], count: int, descending: bool) -> list:
    """The first ``count`` of several ordered lists of (position, store index, record)."""
    key = merge_key(descending)
    return list(heapq.merge(*pages, key=key, reverse=descending))[:count]
