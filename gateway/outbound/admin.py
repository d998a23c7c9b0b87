"""The outbound admin API (JSON, at ``/admin``) and the metrics (``/metrics``).

Both need the ``admin`` permission (``*`` has it):

- ``GET /admin/outbound/events?state=&connector=&entity=&limit=&before=``: deliveries,
  newest first (``before``: an id, for the next page)
- ``GET /admin/outbound/events/{id}``
- ``POST /admin/outbound/events/{id}/retry``: a dead, cancelled or waiting delivery
  goes again now, its attempts counted from zero
- ``POST /admin/outbound/events/{id}/cancel``: a waiting or dead delivery is dropped
- ``GET /admin/outbound/connectors``: each connector's settings, health and backlog
- ``GET /metrics``: Prometheus text: queue depth per connector and state, deliveries
  and failures, commit-to-delivery lag histogram (counters of every process sharing
  the queue, kept in its database)
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import orjson
from aiohttp import web

from .. import redact
from ..audit import Event
from ..errors import GatewayError, InvalidValue, NotFound
from ..http_input import integer_param
from ..keys import AUTH, OUTBOUND, PIPELINE
from . import queue

PERMISSION = "admin"
CALLER = web.RequestKey("caller", object)  # the authenticated principal
MAX_LIMIT = 1000


def _json(body, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status,
                        content_type="application/json")


@web.middleware
async def admin_errors(request: web.Request, handler):
    try:
        caller = await request.config_dict[AUTH].authenticate_request(request)
        caller.require(PERMISSION)
        request[CALLER] = caller
        return await handler(request)
    except GatewayError as exc:
        response = _json({"status": exc.status, "error": exc.detail}, exc.status)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="gateway"'
        return response
    except web.HTTPException as exc:  # no such route (404), method not allowed (405)
        if exc.status < 400:
            raise
        response = _json({"status": exc.status, "error": exc.reason}, exc.status)
        for name in ("Allow",):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response


def _row(r) -> dict:
    row = _fields(r)
    row["last_error"] = redact.text(row["last_error"])
    return row


def _fields(r) -> dict:
    return {k: getattr(r, k) for k in (
        "id", "connector", "source", "kind", "entity_id", "action", "name", "state",
        "attempts", "next_at", "last_error", "outcome", "remote_id", "owner", "created",
        "updated")}


def _service(request: web.Request):
    service = request.config_dict.get(OUTBOUND)
    if service is None or service.runner is None:
        raise NotFound("Outbound provisioning is not running")
    return service


def _int(value: str | None, name: str, default: int | None) -> int | None:
    number = integer_param(value, name)
    return default if number is None else number


async def events(request: web.Request) -> web.Response:
    service = _service(request)
    q = request.query
    state = q.get("state") or None
    if state is not None and state not in queue.STATES:
        raise InvalidValue(f"state is one of {', '.join(queue.STATES)}")
    limit = max(1, min(MAX_LIMIT, _int(q.get("limit"), "limit", 100)))
    rows = await service.runner.read(queue.listing, state, q.get("connector") or None,
                                     q.get("entity") or None, limit,
                                     _int(q.get("before"), "before", None))
    return _json({"events": [_row(r) for r in rows],
                  "next": rows[-1].id if len(rows) == limit else None})


async def event(request: web.Request) -> web.Response:
    service = _service(request)
    row = await service.runner.read(queue.get, _int(request.match_info["id"], "id", 0))
    if row is None:
        raise NotFound("No such outbound event")
    return _json(_row(row))


async def _change_state(request: web.Request, fn, verb: str, operation: str
                        ) -> web.Response:
    service = _service(request)
    delivery_id = _int(request.match_info["id"], "id", 0)
    event = Event.now(request[CALLER].name, operation, kind="Delivery",
                      target_id=str(delivery_id))
    audit = request.config_dict[PIPELINE].audit
    if not await service.runner.write(fn, delivery_id):
        row = await service.runner.read(queue.get, delivery_id)
        await audit.record([replace(event, outcome="failed", detail=(
            "404 no such delivery" if row is None else f"409 {row.state}"))])
        if row is None:
            raise NotFound("No such outbound event")
        return _json({"status": 409, "error": f"A delivery that is {row.state} cannot be "
                      f"{verb}"}, 409)
    await audit.record([event])
    service.kick()
    return _json(_row(await service.runner.read(queue.get, delivery_id)))


async def retry(request: web.Request) -> web.Response:
    return await _change_state(request, queue.retry, "retried", "RetryDelivery")


async def cancel(request: web.Request) -> web.Response:
    return await _change_state(request, queue.cancel, "cancelled", "CancelDelivery")


async def connectors(request: web.Request) -> web.Response:
    service = _service(request)
    counts: dict[str, dict[str, int]] = {}
    for name, state, n in await service.runner.read(queue.backlog):
        counts.setdefault(name, {})[state] = n
    oldest = await service.runner.read(queue.oldest_pending)

    async def health(connector) -> str:
        try:
            return redact.text(await asyncio.wait_for(connector.health(), timeout=5))
        except Exception as exc:  # noqa: BLE001 - health reports any failure
            return redact.text(f"down: {getattr(exc, 'detail', None) or type(exc).__name__}")

    names = list(service.connectors)
    states = await asyncio.gather(*(health(service.connectors[n]) for n in names))
    out = []
    for name, state in zip(names, states, strict=True):
        cfg = service.configs[name]
        out.append({"name": name, "type": cfg.type, "url": redact.text(cfg.url),
                    "blocking": cfg.blocking,
                    "roles": list(cfg.roles), "rule": cfg.rule, "health": state,
                    "backlog": counts.get(name, {}), "oldest_unfinished": oldest.get(name)})
    return _json({"connectors": out})


async def metrics(request: web.Request) -> web.Response:
    """``/metrics`` (outside ``/admin``, with the same authentication)."""
    return await admin_errors(request, _metrics)


async def _metrics(request: web.Request) -> web.Response:
    service = _service(request)
    lines = ["# HELP gateway_outbound_queue Deliveries in the queue, by connector and state",
             "# TYPE gateway_outbound_queue gauge"]
    for name, state, n in await service.runner.read(queue.backlog):
        lines.append(f'gateway_outbound_queue{{connector="{name}",state="{state}"}} {n}')
    by_metric: dict[str, dict[str, dict[str, float]]] = {}
    for name, metric, label, value in await service.runner.read(queue.counts):
        by_metric.setdefault(metric, {}).setdefault(name, {})[label] = value
    lines += ["# HELP gateway_outbound_deliveries_total Deliveries made (all processes)",
              "# TYPE gateway_outbound_deliveries_total counter"]
    for name, per in sorted(by_metric.get("delivered", {}).items()):
        lines += [f'gateway_outbound_deliveries_total{{connector="{name}",outcome="{o}"}} '
                  f'{n:.0f}' for o, n in sorted(per.items())]
    lines += ["# HELP gateway_outbound_failures_total Failed delivery attempts (all processes)",
              "# TYPE gateway_outbound_failures_total counter"]
    for name, per in sorted(by_metric.get("failures", {}).items()):
        lines += [f'gateway_outbound_failures_total{{connector="{name}",kind="{k}"}} {n:.0f}'
                  for k, n in sorted(per.items())]
    lines += ["# HELP gateway_outbound_lag_seconds From commit to delivery",
              "# TYPE gateway_outbound_lag_seconds histogram"]
    for name, per in sorted(by_metric.get("lag_bucket", {}).items()):
        running = 0.0
        for bound in (*(f"{b:g}" for b in queue.LAG_BUCKETS), "+Inf"):
            running += per.get(bound, 0.0)
            lines.append(f'gateway_outbound_lag_seconds_bucket{{connector="{name}",'
                         f'le="{bound}"}} {running:.0f}')
        lag_sum = by_metric.get("lag_sum", {}).get(name, {}).get("", 0.0)
        lag_count = by_metric.get("lag_count", {}).get(name, {}).get("", 0.0)
        lines.append(f'gateway_outbound_lag_seconds_sum{{connector="{name}"}} {lag_sum:.6f}')
        lines.append(f'gateway_outbound_lag_seconds_count{{connector="{name}"}} '
                     f'{lag_count:.0f}')
    return web.Response(text="\n".join(lines) + "\n",
                        content_type="text/plain", charset="utf-8")


def create_admin_app() -> web.Application:
    app = web.Application(middlewares=[admin_errors])
    app.add_routes([
        web.get("/outbound/events", events),
        web.get("/outbound/events/{id}", event),
        web.post("/outbound/events/{id}/retry", retry),
        web.post("/outbound/events/{id}/cancel", cancel),
        web.get("/outbound/connectors", connectors),
    ])
    return app
