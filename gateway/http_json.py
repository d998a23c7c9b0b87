"""The plain JSON reply of the gateway's non-SCIM HTTP APIs (admin, JIT, health)."""

from __future__ import annotations

import orjson
from aiohttp import web


def json_response(body, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status,
                        content_type="application/json")
