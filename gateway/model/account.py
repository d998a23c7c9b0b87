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


def is_locked(data: dict) -> bool:
    """Whether the account is locked now (whatever else keeps it out)."""
    wso2 = data.get(WSO2_USER)
    if not isinstance(wso2, dict) or not _flag(wso2.get("accountLocked"), True):
        return False
    until = _millis(wso2.get("unlockTime"))
    return until is None or until > time.time() * 1000


def sign_in_refusal(data: dict) -> str | None:
    """Why an account may not sign in ("disabled", "locked"), or None when it may. A lock
    with an ``unlockTime`` ends then; one without lasts until an administrator unlocks
    the account."""
    if _flag(data.get("active"), False):
        return "disabled"
    wso2 = data.get(WSO2_USER)
    if isinstance(wso2, dict):
        if _flag(wso2.get("accountDisabled"), True):
            return "disabled"
    if is_locked(data):
        return "locked"
    return None


def _millis(value) -> int | None:
    """One of WSO2's times (milliseconds since 1970, as text); None when there is none."""
    try:
        millis = int(str(value).strip()) if value not in (None, "") else None
    except ValueError:
        return None
    return millis if millis is not None and millis > 0 else None


def _millis_text(seconds: float) -> str:
    return str(int(seconds * 1000))


def locked_until(until: float) -> dict:
    """The WSO2 attributes of an account locked until ``until`` (seconds since 1970)."""
    return {"accountLocked": True, "unlockTime": _millis_text(until)}


def password_set_now() -> dict:
    """The WSO2 attribute of an account whose password is set now."""
    return {"lastPasswordUpdateTime": _millis_text(time.time())}


# the WSO2 attributes that are the account's state rather than its profile
ACCOUNT_STATE = ("accountLocked", "unlockTime", "accountDisabled", "failedLoginAttempts",
                 "lastPasswordUpdateTime")


def with_account_state(before: dict, after: dict) -> dict:
    """``after``, a replacement of the whole account (SCIM PUT), with the account-state
    attributes it leaves out kept from ``before``: clients that know nothing of WSO2's
    extension (Okta replaces users with PUT) must not unlock or enable an account, or
    restart its password's age, by leaving them out. Given explicitly, they change."""
    kept = before.get(WSO2_USER)
    if not isinstance(kept, dict):
        return after
    given = after.get(WSO2_USER) if isinstance(after.get(WSO2_USER), dict) else {}
    missing = {k: kept[k] for k in ACCOUNT_STATE if k in kept and k not in given}
    if "accountLocked" in given:  # a lock's end goes with the lock
        missing.pop("unlockTime", None)
    if not missing:
        return after
    return {**after, WSO2_USER: {**given, **missing}}


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
    since = _millis(wso2.get("lastPasswordUpdateTime")) if isinstance(wso2, dict) else None
    if max_age_days <= 0 or since is None:
        return float("inf")
    return since + max_age_days * 86_400_000
