"""The directory's own account state: the locks OpenLDAP's ppolicy and Active Directory keep.

A directory locks accounts by itself (too many failed binds) and its
administrators lock or disable them with their own tools. Disabled and locked
accounts never authenticate on any path, so reading an entry turns that state
into the canonical attributes every sign-in check already decides by
(:func:`gateway.model.account.sign_in_refusal`):

- OpenLDAP (ppolicy): ``pwdAccountLockedTime`` present -> WSO2 ``accountLocked``.
  ``000001010000Z`` is ppolicy's "until an administrator unlocks"; any other value
  is when the lock started, and the directory's policy (``pwdLockoutDuration``,
  which a client cannot read) says when it ends. Either way the account shows as
  locked with no ``unlockTime``: a directory that enforces its policy ends an
  expired lock at the next successful bind, which the store makes before it reads
  the account again. A directory without the policy (the attribute set by hand, or
  no policy applies to the entry) still has the account kept out.
- Active Directory: ``lockoutTime`` (a FILETIME) above 0 -> ``accountLocked``; AD's
  ``userAccountControl`` ACCOUNTDISABLE bit is ``active`` (``mapping``).

The state is the directory's, so a write never copies it back as an ordinary
attribute. Only an explicit change of ``accountLocked`` reaches the directory: to
``false``, an unlock (ppolicy: delete ``pwdAccountLockedTime``, which also clears
the failure count; AD: ``lockoutTime`` 0); to ``true``, a ppolicy lock until an
administrator unlocks. Leaving ``accountLocked`` out (a SCIM PUT from a client that
knows nothing of WSO2, a PATCH ``remove``) keeps the directory's state: absence is
not an unlock. What the directory cannot do is refused, never silently dropped: a
lock with an ``unlockTime`` (the gateway's own automatic lockouts: the guard keeps
those), any lock on AD (only its own policy locks), and a change the gateway's bind
account has no right to make (the directory's refusal comes back as a 400).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from gateway.errors import InvalidValue
from gateway.model.schema import WSO2_USER

if TYPE_CHECKING:
    from .mapping import Flavor

ACCOUNT_DISABLED = 0x2  # AD userAccountControl: ACCOUNTDISABLE
NORMAL_ACCOUNT = 0x200
PPOLICY_LOCK = "pwdAccountLockedTime"
PPOLICY_FOREVER = "000001010000Z"  # ppolicy: locked until an administrator unlocks
AD_LOCK = "lockoutTime"

# the WSO2 attributes that are derived from the directory's state, never written as such
_DERIVED = ("accountLocked", "unlockTime")


def lock_attribute(flavor: Flavor) -> str:
    """The attribute holding the directory's lock (operational on OpenLDAP: a search
    returns it only when asked for by name)."""
    return AD_LOCK if flavor.is_ad else PPOLICY_LOCK


def locked_filter(flavor: Flavor) -> str:
    """The LDAP filter of the entries :func:`is_locked` calls locked. (On OpenLDAP its
    negation needs the ppolicy schema loaded: without it, the attribute is unknown and
    the filter undefined, so even ``(!…)`` matches nothing.)"""
    return f"({AD_LOCK}>=1)" if flavor.is_ad else f"({PPOLICY_LOCK}=*)"


def is_locked(flavor: Flavor, attrs: dict) -> bool:
    value = attrs.get(lock_attribute(flavor))
    if isinstance(value, list):
        value = value[0] if value else None
    if value in (None, "", b""):
        return False
    if not flavor.is_ad:
        return True  # any lock time: the directory keeps the account out
    if isinstance(value, dt.datetime):  # ldap3 with AD's schema formats FILETIMEs
        return value.year > 1601  # FILETIME 0 is 1601-01-01
    try:
        return int(str(value)) > 0
    except ValueError:  # not a FILETIME: keep the account out rather than let it in
        return True


def add_state(flavor: Flavor, attrs: dict, data: dict) -> dict:
    """``data`` (a canonical user read from ``attrs``) with the directory's lock in it."""
    if is_locked(flavor, attrs):
        data[WSO2_USER] = {**(data.get(WSO2_USER) or {}), "accountLocked": True}
    return data


def without_state(data: dict) -> dict:
    """A canonical user without the derived attributes, for the attribute map."""
    wso2 = data.get(WSO2_USER)
    if not isinstance(wso2, dict) or not any(k in wso2 for k in _DERIVED):
        return data
    rest = {k: v for k, v in wso2.items() if k not in _DERIVED}
    out = {k: v for k, v in data.items() if k != WSO2_USER}
    if rest:
        out[WSO2_USER] = rest
    return out


def lock_changes(flavor: Flavor, data: dict, attrs: dict) -> dict[str, list[str]]:
    """What writing ``data`` over an entry with ``attrs`` ({} for a new entry) changes of
    the directory's lock: attribute -> its new values ([]: remove). Empty when
    ``accountLocked`` is absent or already what the directory says."""
    wso2 = data.get(WSO2_USER)
    wanted = _flag(wso2.get("accountLocked")) if isinstance(wso2, dict) else None
    if wanted is None or wanted == is_locked(flavor, attrs):
        return {}
    attr = lock_attribute(flavor)
    if not wanted:
        return {attr: ["0"] if flavor.is_ad else []}
    if flavor.is_ad:
        raise InvalidValue("Active Directory locks an account only by its own lockout "
                           "policy: to keep a user out, set active to false")
    if wso2.get("unlockTime") not in (None, ""):
        raise InvalidValue("A directory's lockouts end by its own password policy: this "
                           "store locks an account only until an administrator unlocks it "
                           "(accountLocked without unlockTime)")
    return {attr: [PPOLICY_FOREVER]}


def account_control(active: bool, current=None) -> str:
    """AD's ``userAccountControl`` with ACCOUNTDISABLE as ``active`` says, every other
    flag of the current value (password never expires, smart card required...) kept."""
    try:
        flags = int(str(current)) if current not in (None, "") else NORMAL_ACCOUNT
    except ValueError:
        flags = NORMAL_ACCOUNT
    return str(flags & ~ACCOUNT_DISABLED | (0 if active else ACCOUNT_DISABLED))


def _flag(value) -> bool | None:
    """A boolean that may come as text (WSO2 claims); None when absent or unreadable."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None
