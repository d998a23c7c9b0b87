"""An account's state, and what a change to it touches.

An account may sign in unless SCIM's ``active`` is false (how Entra ID and Okta
deprovision) or WSO2's ``accountDisabled`` or ``accountLocked`` is true. Every
password check (HTTP Basic, WS-Security, SOAP ``authenticate``, the old password
of a change) goes through the pipeline, which asks :func:`sign_in_refusal`.
"""

from __future__ import annotations

import time

from .schema import WSO2_USER


def _flag(value, wanted: bool) -> bool:
    if isinstance(value, str):  # directories and claims carry booleans as text
        return value.strip().lower() == ("true" if wanted else "false")
    return value is wanted


def sign_in_refusal(data: dict, now: float | None = None) -> str | None:
    """Why an account may not sign in ("disabled", "locked"), or None when it may. A lock
    with an ``unlockTime`` (milliseconds since 1970, as WSO2 writes it) ends then; one
    without lasts until an administrator unlocks the account."""
    if _flag(data.get("active"), False):
        return "disabled"
    wso2 = data.get(WSO2_USER)
    if isinstance(wso2, dict):
        if _flag(wso2.get("accountDisabled"), True):
            return "disabled"
        if _flag(wso2.get("accountLocked"), True):
            until = unlock_time(wso2)
            if until is None or until > (time.time() if now is None else now):
                return "locked"
    return None


def unlock_time(wso2: dict) -> float | None:
    """When a lock ends (seconds since 1970), from WSO2's ``unlockTime`` in milliseconds."""
    value = wso2.get("unlockTime")
    try:
        millis = int(str(value).strip()) if value not in (None, "") else None
    except ValueError:
        return None
    return None if millis is None or millis <= 0 else millis / 1000


def locked_until(until: float) -> dict:
    """The WSO2 attributes of an account locked until ``until`` (seconds since 1970)."""
    return {"accountLocked": True, "unlockTime": str(int(until * 1000))}


def changed_attributes(before: dict, after: dict) -> set[str]:
    """The attributes a change touched: top-level names, and ``URN:name`` for the
    attributes of an extension (``urn:scim:wso2:schema:accountLocked``)."""
    out: set[str] = set()
    for key in before.keys() | after.keys():
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if key.startswith("urn:") and isinstance(old or {}, dict) and isinstance(new or {}, dict):
            old, new = old or {}, new or {}
            out.update(f"{key}:{name}" for name in old.keys() | new.keys()
                       if old.get(name) != new.get(name))
        else:
            out.add(key)
    return out


def password_expires(data: dict, max_age_days: int) -> float:
    """When the account's password expires, in milliseconds since 1970 (WSO2's unit):
    infinity without a maximum age, or when the account does not say when its password
    was set (``lastPasswordUpdateTime``: accounts from before the setting, directories)."""
    wso2 = data.get(WSO2_USER)
    value = wso2.get("lastPasswordUpdateTime") if isinstance(wso2, dict) else None
    try:
        since = int(str(value).strip()) if max_age_days > 0 and value not in (None, "") \
            else None
    except ValueError:
        since = None
    return float("inf") if since is None else since + max_age_days * 86_400_000
