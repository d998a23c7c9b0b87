"""The admin application, mounted at ``/admin``: every route behind ``admin_errors``.

- ``/admin/outbound/...``: deliveries and connectors (``gateway/admin/outbound.py``)
- ``/admin/audit...``: the audit trail (``gateway/admin/audit.py``)

``/metrics`` (``gateway/admin/metrics.py``) is mounted outside ``/admin``, with the
same authentication.
"""

from __future__ import annotations

from aiohttp import web

from . import audit, outbound
from .http import admin_errors


def create_admin_app() -> web.Application:
    app = web.Application(middlewares=[admin_errors])
    app.add_routes(outbound.ROUTES)
    app.add_routes(audit.ROUTES)
    return app
