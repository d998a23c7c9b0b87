"""A user's claims over SOAP: the claim operations, through the WSO2 claim dialect.

A claim is the canonical attribute the dialect's table maps it to
(``gateway/model/dialects/wso2.py``), so a claim set here is the same attribute a
SCIM client sees. Only the profile ``default`` exists.

The role claims (``role`` and ``groups``: ``ROLE_CLAIMS`` of the dialect) are no
attribute but the user's roles, and this module is the one place that answers them:
:func:`known_claim` knows them, :func:`read` reads them from the user's memberships (so
:func:`user_for` fetches the user with its groups), :func:`claims_patch` refuses to write
them (the role operations change roles), and :func:`users_with` lists a role's
members for them.
"""

from __future__ import annotations

import re

from .. import operations as ops
from ..errors import InvalidValue
from ..model.dialects.wso2 import CLAIM, ROLE_CLAIMS, WSO2
from ..model.patch import PatchOperation
from .call import Call, check_profile, need, qualified, required, search_all
from .models import Item
from .roles import getUserListOfRole, roles_of
from .wildcards import Wildcard, pattern_filter

SEPARATOR_MULTI = ","  # WSO2's MultiAttributeSeparator
DIALECT_URI = CLAIM.rstrip("/")


# claims -----------------------------------------------------------------------------------
def known_claim(uri: str | None) -> str:
    """A claim URI as the dialect spells it (a role claim as it is); InvalidValue if the
    dialect has no such claim."""
    uri = required("A claim URI", uri)
    if uri in ROLE_CLAIMS:
        return uri
    known = WSO2.known(uri)
    if known is None:
        raise InvalidValue(f"Unknown claim '{uri}'")
    return known


def _writable(uri: str | None) -> str:
    uri = known_claim(uri)
    if uri in ROLE_CLAIMS:
        raise InvalidValue(f"'{uri}' is set through the role operations")
    if uri in WSO2.read_only:
        raise InvalidValue(f"The claim '{uri}' is read-only")
    return uri


async def user_for(call: Call, userName, uris: list[str]) -> ops.Entity:
    """The user whose claims ``uris`` are read (with its groups when a role claim is)."""
    return await need(call, ops.USER, userName, relations=not ROLE_CLAIMS.isdisjoint(uris))


def _resource(user: ops.Entity) -> dict:
    rec = user.record
    return {**rec.data, "userName": qualified(user), "id": rec.id,
            "meta": {"created": rec.created, "lastModified": rec.last_modified,
                     "resourceType": "User"}}


def read(user: ops.Entity, uri: str) -> str | None:
    """One claim of a user (read by :func:`user_for`) as text, or None when not set."""
    if uri in ROLE_CLAIMS:
        return SEPARATOR_MULTI.join(roles_of(user))
    return WSO2.read_text(_resource(user), uri)


def claims_patch(claims, *, current: dict[str, str | None] | None = None,
                 dedupe: bool = False) -> list[PatchOperation]:
    """ClaimValue items -> canonical PATCH operations (empty value: remove the claim).

    With ``current`` (the claims' present values), values are appended to what is
    there, joined by WSO2's separator; with ``dedupe``, a value already there (any
    case) is not added again.
    """
    out = []
    for item in claims or []:
        uri = _writable(getattr(item, "claimURI", None))
        value = getattr(item, "value", None)
        if current is not None and value:
            present = current.get(uri)
            have = [v.lower() for v in (present or "").split(SEPARATOR_MULTI) if v]
            if dedupe and value.lower() in have:
                continue
            value = f"{present}{SEPARATOR_MULTI}{value}" if present else value
            current[uri] = value
        out.append(WSO2.write(uri, value if value not in (None, "") else None))
    return out


# searching by claim -----------------------------------------------------------------------
def _claim_filter(uri: str, value: str) -> tuple[str | None, Wildcard | None]:
    """A SCIM filter selecting the users whose claim has this value (``*`` wildcards)."""
    path = WSO2.table[uri]
    leaf = WSO2.leaf(uri)
    match = re.fullmatch(r"(.+)\[(.+)\]\.(\w+)", path)
    attr = match.group(3) if match else path
    if leaf.attr.type == "boolean" and "*" not in value:
        if value.lower() not in ("true", "false"):
            raise InvalidValue(f"The claim '{uri}' takes true or false")
        term = f"eq {value.lower()}"
        base, exact = None, None
    else:
        base, exact = pattern_filter(attr, value)
        term = None
    if base is None and term is None:
        return (f"{match.group(1)}[{match.group(2)}]" if match else f"{path} pr"), None
    if match:
        inner = f"{attr} {term}" if term else base
        return f"{match.group(1)}[{match.group(2)} and {inner}]", exact
    return (f"{path} {term}" if term else base), exact


async def users_with(call: Call, uri: str, value: str) -> list[str]:
    """The names of the users whose claim ``uri`` (as :func:`known_claim` gives it) has this
    value (``*`` wildcards), at most ``[limits] max_results``."""
    if uri in ROLE_CLAIMS:
        return await getUserListOfRole(call, value)
    scim_filter, exact = _claim_filter(uri, value)
    found = await search_all(call, ops.SearchUsers, scim_filter, None,
                             call.pipeline.config.max_results, "userName")
    out = []
    for user in found:
        if exact is None or any(exact.matches(str(v)) for v in
                                WSO2.read(_resource(user), uri)):
            out.append(qualified(user))
    return out


# the claim operations ---------------------------------------------------------------------
async def getUserClaimValue(call: Call, userName, claim, profileName):  # noqa: N802
    check_profile(profileName)
    uri = known_claim(claim)
    user = await user_for(call, userName, [uri])
    return read(user, uri)


async def getUserClaimValues(call: Call, userName, profileName):  # noqa: N802
    check_profile(profileName)
    user = await need(call, ops.USER, userName)
    values = WSO2.read_all(_resource(user))
    return [Item(claimUri=uri, value=value, dialectURI=DIALECT_URI,
                 displayTag=uri[len(CLAIM):], displayOrder=0, required=False,
                 supportedByDefault=True)
            for uri, value in values.items()]


async def getUserClaimValuesForClaims(call: Call, userName, claims, profileName):  # noqa: N802
    check_profile(profileName)
    uris = [known_claim(c) for c in claims or []]
    user = await user_for(call, userName, uris)
    out = []
    for uri in dict.fromkeys(uris):
        value = read(user, uri)
        if value is not None:
            out.append(Item(claimURI=uri, value=value))
    return out


async def _patch_user(call: Call, userName, operations: list[PatchOperation]) -> None:
    user = await need(call, ops.USER, userName)
    if operations:
        await call.run(ops.PatchUser(user.id, operations))


async def setUserClaimValue(call: Call, userName, claimURI, claimValue,  # noqa: N802
                            profileName):
    check_profile(profileName)
    await _patch_user(call, userName, claims_patch([Item(claimURI=claimURI, value=claimValue)]))


async def setUserClaimValues(call: Call, userName, claims, profileName):  # noqa: N802
    check_profile(profileName)
    await _patch_user(call, userName, claims_patch(claims))


async def _add_claims(call: Call, userName, claims, dedupe: bool) -> None:
    user = await need(call, ops.USER, userName)
    resource = _resource(user)
    uris = [known_claim(getattr(item, "claimURI", None)) for item in claims or []]
    # the present values of the claims that are attributes (claims_patch refuses the others)
    current = {uri: WSO2.read_text(resource, uri) for uri in uris if uri in WSO2.table}
    operations = claims_patch(claims, current=current, dedupe=dedupe)
    if operations:
        await call.run(ops.PatchUser(user.id, operations))


async def addUserClaimValue(call: Call, userName, claimURI, claimValue,  # noqa: N802
                            profileName):
    """WSO2 appends to the claim: ``a`` plus ``b`` is ``a,b`` (even when ``b`` is there)."""
    check_profile(profileName)
    await _add_claims(call, userName, [Item(claimURI=claimURI, value=claimValue)],
                      dedupe=False)


async def addUserClaimValues(call: Call, userName, claims, profileName):  # noqa: N802
    """As addUserClaimValue, but a value the claim already has (any case) is skipped."""
    check_profile(profileName)
    await _add_claims(call, userName, claims, dedupe=True)


async def deleteUserClaimValue(call: Call, userName, claimURI, profileName):  # noqa: N802
    check_profile(profileName)
    await _patch_user(call, userName, claims_patch([Item(claimURI=claimURI)]))


async def deleteUserClaimValues(call: Call, userName, claims, profileName):  # noqa: N802
    check_profile(profileName)
    await _patch_user(call, userName, claims_patch([Item(claimURI=c) for c in claims or []]))


HANDLERS = (getUserClaimValue, getUserClaimValues, getUserClaimValuesForClaims,
            setUserClaimValue, setUserClaimValues, addUserClaimValue, addUserClaimValues,
            deleteUserClaimValue, deleteUserClaimValues)
