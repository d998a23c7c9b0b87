"""Credentials out of what the gateway shows: admin API replies, health texts, logs.

A URL keeps its user name and loses its password (``http://svc:***@host/``); query
parameters that carry secrets keep their name and lose their value.
"""

from __future__ import annotations

import re

MASK = "***"
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/?#@:\s]*):[^/?#@\s]*@")
_SECRET_PARAM = re.compile(
    r"(?P<key>[?&;](?:password|passwd|pwd|secret|client_secret|token|access_token|api_?key)=)"
    r"[^&;#\s]*", re.IGNORECASE)


def text(value: str | None) -> str | None:
    """``value`` with the password of every URL in it, and secret query values, masked."""
    if not value:
        return value
    value = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", value)
    return _SECRET_PARAM.sub(lambda m: f"{m['key']}{MASK}", value)
