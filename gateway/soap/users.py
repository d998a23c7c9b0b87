"""The user operations of RemoteUserStoreManagerService: accounts and their passwords,
listing users by name or by claim, and what WSO2 answers about tenants and profiles.
"""

from __future__ import annotations

from .. import operations as ops
from ..errors import Conflict, Forbidden, InvalidValue, NotFound
from ..model.account import password_expires
from ..model.dialects.wso2 import CLAIM, ROLE_CLAIMS, WSO2
from ..model.patch import apply_patch
from ..names import PRIMARY, qualify
from . import wso2_messages as wso2
from .call import (
    DEFAULT_PROFILE,
    SUPER_TENANT_ID,
    Call,
    check_profile,
    find,
    need,
    present,
    qualified,
    required,
    search_all,
    split_domain,
)
from .claims import claims_patch, known_claim, users_with
from .roles import is_everyone, is_hybrid_role
from .wildcards import pattern_filter

LIST_LIMIT = 100  # WSO2's MaxUserNameListLength: listUsers without a (positive) limit
USERNAME_CLAIM = WSO2.known(CLAIM + "username")


async def isExistingUser(call: Call, userName):  # noqa: N802 - WSO2's operation names
    return await find(call, ops.USER, userName) is not None


async def authenticate(call: Call, userName, credential):  # noqa: N802
    name = required("A user name", userName)
    if credential is None:
        return False
    return await call.run(ops.CheckPassword(name, credential, call.source,
                                            anywhere=call.anywhere)) is not None


async def addUser(call: Call, userName, credential, roleList, claims, profileName,  # noqa: N802
                  requirePasswordChange):
    name = required("A user name", userName)
    check_profile(profileName)
    domain = call.names.split(name)[0]  # an unknown domain is the caller's mistake, said first
    for item in claims or []:  # WSO2 names an unknown claim of a new user with its 30005
        uri = getattr(item, "claimURI", None)
        if uri and uri not in ROLE_CLAIMS and WSO2.known(uri) is None:
            raise InvalidValue(wso2.message(wso2.INVALID_CLAIM_URI, uri))
    representation = {"userName": name}
    patch = claims_patch(claims)
    if patch:
        representation = apply_patch(call.pipeline.schemas.user, representation,
                                     patch).resource
    if credential:
        representation["password"] = credential
    roles = []
    for role in roleList or []:
        if is_everyone(role):
            continue
        group = await find(call, ops.GROUP, role)
        if group is None:
            raise NotFound(_missing_role(call, role))
        if group.domain != domain and not is_hybrid_role(call, group):
            raise InvalidValue(f"Role '{role}' is in the user store {group.domain}; a user of "
                               f"{domain} can only join roles of {domain} and hybrid roles")
        roles.append(group)
    try:  # the user and its roles in one operation: all of it, or nothing
        await call.run(ops.CreateUser(representation, groups=tuple(g.id for g in roles)))
    except Conflict:
        raise Conflict(wso2.message(wso2.USER_EXISTS, wso2.domain_free(name))) from None


def _missing_role(call: Call, role: str) -> str:
    """WSO2's words for a role of a new user that does not exist: an ``Internal/`` role
    by its name without the prefix, ``Application/`` roles whole, others without domain."""
    if call.names.is_hybrid(role):
        if role.split("/", 1)[0].upper() == "INTERNAL":
            return wso2.message(wso2.INTERNAL_ROLE_MISSING, wso2.domain_free(role))
        return wso2.message(wso2.INTERNAL_ROLE_MISSING, role)
    return wso2.message(wso2.EXTERNAL_ROLE_MISSING, wso2.domain_free(role))


async def deleteUser(call: Call, userName):  # noqa: N802
    user = await need(call, ops.USER, userName)
    await call.run(ops.DeleteUser(user.id))


async def updateCredential(call: Call, userName, newCredential, oldCredential):  # noqa: N802
    user = await need(call, ops.USER, userName)
    try:
        await call.run(ops.ChangePassword(qualified(user),
                                          required("The new credential", newCredential),
                                          present("The old credential", oldCredential)))
    except Forbidden:
        raise Forbidden(wso2.message(wso2.OLD_CREDENTIAL)) from None


async def updateCredentialByAdmin(call: Call, userName, newCredential):  # noqa: N802
    user = await need(call, ops.USER, userName)
    await call.run(ops.ChangePassword(qualified(user),
                                      required("The new credential", newCredential)))


async def listUsers(call: Call, filter, maxItemLimit):  # noqa: N802, A002
    limit = LIST_LIMIT if maxItemLimit is None or maxItemLimit < 0 else maxItemLimit
    limit = min(limit, call.pipeline.config.max_results)
    if limit == 0:
        return []
    domain, pattern = split_domain(call, filter or "*")
    domains = [domain] if domain else call.names.domains
    out: list[str] = []
    for d in domains:
        scim_filter, exact = pattern_filter("userName", qualify(d, pattern))
        found = await search_all(call, ops.SearchUsers, scim_filter, d,
                                 limit if exact is None else call.pipeline.config.max_results,
                                 "userName")
        names = [qualified(u) for u in found]
        out.extend(n for n in names if exact is None or exact.matches(n))
        if len(out) >= limit:
            break
    return out[:limit]


async def getUserList(call: Call, claimUri, claimValue, profile):  # noqa: N802
    check_profile(profile)
    uri = known_claim(claimUri)
    value = required("A claim value", claimValue)
    if uri == USERNAME_CLAIM:  # names: the listUsers rule, every store
        return await listUsers(call, value, call.pipeline.config.max_results)
    return await users_with(call, uri, value)


async def getUserId(call: Call, username):  # noqa: N802
    """WSO2's integer user id; ids here are strings, so the number is derived from it."""
    user = await need(call, ops.USER, username)
    return int(user.id.replace("-", "")[:7], 16)


async def getTenantId(call: Call):  # noqa: N802
    return SUPER_TENANT_ID


async def getTenantIdofUser(call: Call, username):  # noqa: N802
    await need(call, ops.USER, username)
    return SUPER_TENANT_ID


async def getPasswordExpirationTime(call: Call, username):  # noqa: N802
    """When the password expires, in milliseconds since 1970; -1 when it does not (no
    [passwords] max_age_days, or the account does not say when it was set), as WSO2."""
    user = await need(call, ops.USER, username)
    expires = password_expires(user.record.data, call.pipeline.config.passwords.max_age_days)
    return -1 if expires == float("inf") else int(expires)


async def isReadOnly(call: Call):  # noqa: N802
    return call.pipeline.read_only(PRIMARY)


async def getProperties(call: Call, tenant):  # noqa: N802
    """WSO2 answers the super tenant's properties with an empty list (and refuses other
    tenants); there is only the super tenant here."""
    if tenant is not None and getattr(tenant, "id", None) not in (None, 0, SUPER_TENANT_ID):
        raise Forbidden("Access Denied")
    return []


async def getProfileNames(call: Call, userName):  # noqa: N802
    await need(call, ops.USER, userName)
    return [DEFAULT_PROFILE]


async def getAllProfileNames(call: Call):  # noqa: N802
    return [DEFAULT_PROFILE]


HANDLERS = (isExistingUser, authenticate, addUser, deleteUser, updateCredential,
            updateCredentialByAdmin, listUsers, getUserList, getUserId, getTenantId,
            getTenantIdofUser, getPasswordExpirationTime, isReadOnly, getProperties,
            getProfileNames, getAllProfileNames)
