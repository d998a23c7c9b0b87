"""The outbound admin API (JSON, under ``/admin``): the deliveries in the outbound queue
and the connectors they go to.

- ``GET /admin/outbound/events?state=&connector=&entity=&limit=&before=``: deliveries,
  newest first (``before``: an id, for the next page)
- ``GET /admin/outbound/events/{id}``
- ``POST /admin/outbound/events/{id}/retry``: a dead, cancelled or waiting delivery
  goes again now, its attempts counted from zero
- ``POST /admin/outbound/events/{id}/cancel``: a waiting or dead delivery is dropped
- ``GET /admin/outbound/connectors``: each connector's settings, its last health check
  (cached: a stale one is refreshed in the background, never while the caller waits),
  and its backlog: deliveries per state and changes not fanned out yet (``outbox``)
- ``GET /admin/outbound/connectors/{name}/health``: a live health check of one connector

The queue is read and changed through ``gateway.outbound`` (the running service and
its queue's functions); retrying and cancelling are audit events.
"""

from __future__ import annotations

from dataclasses import replace

from aiohttp import web

from .. import redact
from ..audit import Event
from ..errors import InvalidValue, NotFound
from ..http_input import integer_param
from ..http_json import json_response
from ..keys import OUTBOUND, PIPELINE, shared
from ..outbound import queue
from .http import CALLER

MAX_LIMIT = 1000


def _row(r) -> dict:
    row = _fields(r)
    row["last_error"] = redact.text(row["last_error"])
    return row


def _fields(r) -> dict:
    return {k: getattr(r, k) for k in (
        "id", "connector", "source", "kind", "entity_id", "action", "name", "state",
        "attempts", "next_at", "last_error", "outcome", "remote_id", "owner", "created",
        "updated")}


def service(request: web.Request):
    """The running outbound service; NotFound when outbound provisioning is off."""
    running = shared(request).get(OUTBOUND)
    if running is None or running.runner is None:
        raise NotFound("Outbound provisioning is not running")
    return running


def _int(value: str | None, name: str, default: int | None) -> int | None:
    number = integer_param(value, name)
    return default if number is None else number


async def events(request: web.Request) -> web.Response:
    outbound = service(request)
    q = request.query
    state = q.get("state") or None
    if state is not None and state not in queue.STATES:
        raise InvalidValue(f"state is one of {', '.join(queue.STATES)}")
    limit = max(1, min(MAX_LIMIT, _int(q.get("limit"), "limit", 100)))
    rows = await outbound.runner.read(queue.listing, state, q.get("connector") or None,
                                      q.get("entity") or None, limit,
                                      _int(q.get("before"), "before", None))
    return json_response({"events": [_row(r) for r in rows],
                          "next": rows[-1].id if len(rows) == limit else None})


async def event(request: web.Request) -> web.Response:
    outbound = service(request)
    row = await outbound.runner.read(queue.get, _int(request.match_info["id"], "id", 0))
    if row is None:
        raise NotFound("No such outbound event")
    return json_response(_row(row))


async def _change_state(request: web.Request, fn, verb: str, operation: str
                        ) -> web.Response:
    outbound = service(request)
    delivery_id = _int(request.match_info["id"], "id", 0)
    event = Event.now(request[CALLER].name, operation, kind="Delivery",
                      target_id=str(delivery_id))
    audit = shared(request)[PIPELINE].audit
    if not await outbound.runner.write(fn, delivery_id):
        row = await outbound.runner.read(queue.get, delivery_id)
        await audit.record([replace(event, outcome="failed", detail=(
            "404 no such delivery" if row is None else f"409 {row.state}"))])
        if row is None:
            raise NotFound("No such outbound event")
        return json_response({"status": 409, "error": f"A delivery that is {row.state} "
                              f"cannot be {verb}"}, 409)
    await audit.record([event])
    outbound.kick()
    return json_response(_row(await outbound.runner.read(queue.get, delivery_id)))


async def retry(request: web.Request) -> web.Response:
    return await _change_state(request, queue.retry, "retried", "RetryDelivery")


async def cancel(request: web.Request) -> web.Response:
    return await _change_state(request, queue.cancel, "cancelled", "CancelDelivery")


async def connectors(request: web.Request) -> web.Response:
    outbound = service(request)
    counts, oldest = await outbound.backlog()
    out = []
    for name in outbound.connectors:
        cfg = outbound.configs[name]
        last = outbound.health.cached(name)
        out.append({"name": name, "type": cfg.type, "url": redact.text(cfg.url),
                    "blocking": cfg.blocking,
                    "roles": list(cfg.roles), "rule": cfg.rule,
                    "health": redact.text(last.status) if last else "not checked yet",
                    "health_checked": last.checked if last else None,
                    "backlog": counts.get(name, {}), "oldest_unfinished": oldest.get(name)})
    return json_response({"connectors": out})


async def connector_health(request: web.Request) -> web.Response:
    outbound = service(request)
    name = request.match_info["name"]
    if name not in outbound.connectors:
        raise NotFound("No such connector")
    health = await outbound.health.check(name)
    return json_response({"name": name, "up": health.up, "health": redact.text(health.status),
                          "health_checked": health.checked})


ROUTES = [
    web.get("/outbound/events", events),
    web.get("/outbound/events/{id}", event),
    web.post("/outbound/events/{id}/retry", retry),
    web.post("/outbound/events/{id}/cancel", cancel),
    web.get("/outbound/connectors", connectors),
    web.get("/outbound/connectors/{name}/health", connector_health),
]
