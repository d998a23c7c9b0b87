"""Health for load balancers and orchestrators.

- ``GET /health/live``: 200 while the process serves requests (nothing is asked of the
  stores: a down database is not a reason to restart the gateway).
- ``GET /health/ready``: 200 when PRIMARY and every store marked ``required = true``
  answer; the other stores are reported, not fatal (a node whose PRIMARY works keeps
  its traffic when a secondary directory is down). 503 otherwise.
- ``GET /health``: 200 only when every store answers (as before ``/health/ready``).

Stores are asked at once, each within ``PING_SECONDS``, so that one hanging store
does not hold the answer.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from .http_json import json_response
from .keys import CONFIG, STORES
from .names import PRIMARY

PING_SECONDS = 5.0


async def _ping(store) -> str:
    try:
        await asyncio.wait_for(store.ping(), PING_SECONDS)
        return "up"
    except TimeoutError:
        return f"down: no answer within {PING_SECONDS:g} s"
    except Exception as exc:  # noqa: BLE001 - any failure means "down"
        return f"down: {getattr(exc, 'detail', None) or type(exc).__name__}"


async def _report(app: web.Application) -> dict[str, str]:
    stores = app[STORES].all
    states = await asyncio.gather(*(_ping(s) for s in stores))
    return {s.domain: state for s, state in zip(stores, states, strict=True)}


async def health(request: web.Request) -> web.Response:
    report = await _report(request.app)
    up = all(state == "up" for state in report.values())
    return json_response({"status": "up" if up else "down", "stores": report}, 200 if up else 503)


async def live(_request: web.Request) -> web.Response:
    return json_response({"status": "up"}, 200)


async def ready(request: web.Request) -> web.Response:
    report = await _report(request.app)
    configs = request.app[CONFIG].stores
    required = [d for d in report
                if d.upper() == PRIMARY or getattr(configs.get(d), "required", False)]
    ok = all(report[d] == "up" for d in required)
    body = {"status": "up" if ok else "down", "required": required, "stores": report}
    return json_response(body, 200 if ok else 503)


ROUTES = [web.get("/health", health), web.get("/health/live", live),
          web.get("/health/ready", ready)]
