"""The audit trail over the admin API (``admin`` permission, like the rest of ``/admin``).

- ``GET /admin/audit?actor=&target=&operation=&outcome=&since=&until=&count=&before=``:
  events, newest first; ``target`` is an id or a qualified name, ``since`` and ``until``
  RFC 3339 times (``since`` inclusive); ``next`` is the ``before`` of the next page
  (null on the last one).
- ``GET /admin/audit/export`` (the same filters): every matching event, oldest first,
  as JSON Lines (``application/x-ndjson``), streamed.
"""

from __future__ import annotations

import datetime as dt

import orjson
from aiohttp import web

from ..audit import Audit, Filter
from ..errors import InvalidValue, NotFound
from ..http_input import integer_param
from ..http_json import json_response
from ..keys import PIPELINE, shared
from ..model.times import stamp

MAX_COUNT = 1000
OUTCOMES = ("success", "denied", "refused", "failed")


def _audit(request: web.Request) -> Audit:
    audit = shared(request)[PIPELINE].audit
    if not audit.enabled or audit.runner is None:
        raise NotFound("The audit trail is off, or has no state database to live in")
    return audit


def _time(value: str | None, name: str) -> str | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidValue(f"{name} is not an RFC 3339 time: {value[:64]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return stamp(parsed.astimezone(dt.UTC))


def _text(value: str | None, name: str, limit: int = 512) -> str | None:
    if value is not None and len(value) > limit:
        raise InvalidValue(f"{name} is longer than {limit} characters")
    return value or None


def _filter(request: web.Request) -> Filter:
    q = request.query
    outcome = q.get("outcome") or None
    if outcome is not None and outcome not in OUTCOMES:
        raise InvalidValue(f"outcome is one of {', '.join(OUTCOMES)}")
    return Filter(actor=_text(q.get("actor"), "actor"),
                  target=_text(q.get("target"), "target"),
                  operation=_text(q.get("operation"), "operation", 32),
                  outcome=outcome,
                  since=_time(q.get("since"), "since"), until=_time(q.get("until"), "until"))


async def events(request: web.Request) -> web.Response:
    audit = _audit(request)
    flt = _filter(request)
    count = integer_param(request.query.get("count"), "count")
    count = max(1, min(MAX_COUNT, 100 if count is None else count))
    before = integer_param(request.query.get("before"), "before")
    rows = await audit.page(flt, before, count)
    body = {"events": rows, "next": rows[-1]["id"] if len(rows) == count else None}
    return json_response(body)


async def export(request: web.Request) -> web.StreamResponse:
    audit = _audit(request)
    flt = _filter(request)
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    async for rows in audit.export(flt):
        await response.write(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    await response.write_eof()
    return response


ROUTES = [web.get("/audit", events), web.get("/audit/export", export)]
