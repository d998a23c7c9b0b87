"""The gateway's one text form of a time: RFC 3339 in UTC with microseconds
(``2026-12-08T01:02:03.456789Z``), which sorts as text in time order.

Stores' ``created``/``lastModified``, the outbound queue's times and the ``since``
mark of a change, JIT links and audit events are all written with :func:`stamp`, so
that they compare with each other.
"""

from __future__ import annotations

import datetime as dt

FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def stamp(at: dt.datetime | None = None) -> str:
    """``at`` (an aware datetime; now when None) in the gateway's text form."""
    at = at or dt.datetime.now(dt.UTC)
    return at.astimezone(dt.UTC).strftime(FORMAT)
