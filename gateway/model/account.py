"""An account's state, and what a change to it touches.

An account may sign in unless SCIM's ``active`` is false (how Entra ID and Okta
deprovision) or WSO2's ``accountDisabled`` or ``accountLocked`` is true. Every
password check (HTTP Basic, WS-Security, SOAP ``authenticate``, the old password
of a change) goes through the pipeline, which asks :func:`sign_in_refusal`.
"""

from __future__ import annotations

from .schema import WSO2_USER


def _flag(value, wanted: bool) -> bool:
    if isinstance(value, str):  # directories and claims carry booleans as text
        return value.strip().lower() == ("true" if wanted else "false")
    return value is wanted


def sign_in_refusal(data: dict) -> str | None:
    """Why an account may not sign in ("disabled", "locked"), or None when it may."""
    if _flag(data.get("active"), False):
        return "disabled"
    wso2 = data.get(WSO2_USER)
    if isinstance(wso2, dict):
        if _flag(wso2.get("accountDisabled"), True):
            return "disabled"
        if _flag(wso2.get("accountLocked"), True):
            return "locked"
    return None


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
