"""What each RemoteUserStoreManagerService operation does, on the pipeline.

Every handler takes the call (who is calling, the pipeline) and the
operation's arguments as WSO2's WSDL names them, and returns the value to
send back (``None`` for void operations). Everything goes through
``Pipeline.execute``, so the pipeline authorizes, validates and stores as it
does for SCIM; claims go through the WSO2 claim dialect, so a claim set here
is the same attribute a SCIM client sees.

Names follow WSO2 (``gateway.names``): ``SECONDARY/alice`` is in the store of
domain SECONDARY, a name without a domain is PRIMARY's, always. With ``[soap]
unqualified_names = "any_store"`` an unqualified name PRIMARY does not hold is
the user or role of the one other store that has it (the pipeline resolves it;
when several have it, the call fails and asks for a qualified name). Names are
returned qualified, PRIMARY names without a domain, as WSO2 returns them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from .. import operations as ops
from ..auth.principal import SYSTEM, Principal
from ..errors import Conflict, Forbidden, GatewayError, InvalidValue, NotFound
from ..model.account import password_expires
from ..model.dialects.wso2 import CLAIM, GROUPS_CLAIM, ROLE_CLAIM, WSO2
from ..model.patch import PatchOperation, apply_patch
from ..names import PRIMARY, Names, is_qualified, qualify
from ..pipeline import Pipeline
from .models import Item
from .wildcards import Wildcard

SUPER_TENANT_ID = -1234  # WSO2's super tenant: the only tenant here
DEFAULT_PROFILE = "default"
EVERYONE = "Internal/everyone"  # WSO2's implicit role of every user
LIST_LIMIT = 100  # WSO2's MaxUserNameListLength: listUsers without a (positive) limit
SEPARATOR_MULTI = ","  # WSO2's MultiAttributeSeparator
DIALECT_URI = CLAIM.rstrip("/")
MAX_NAMES = 10_000  # the most names one list reply carries (getRoleNames, getUserListOfRole)
HYBRID_FILTER = 'displayName sw "Internal/" or displayName sw "Application/"'


@dataclass
class Call:
    """One SOAP call: the authenticated caller and the pipeline it runs on."""

    caller: Principal
    pipeline: Pipeline
    source: str | None = None  # the caller's address

    @property
    def names(self) -> Names:
        return self.pipeline.names

    @property
    def anywhere(self) -> bool:
        """Whether an unqualified name may mean another store's user or role."""
        return self.pipeline.config.soap_unqualified_names == "any_store"

    async def run(self, op: ops.Operation):
        return await self.pipeline.execute(self.caller, op)


# arguments --------------------------------------------------------------------------------
def _required(what: str, value: str | None) -> str:
    if value is None or not str(value).strip():
        raise InvalidValue(f"{what} is required")
    return value


def _present(what: str, value: str | None) -> str:
    if value is None:
        raise InvalidValue(f"{what} is required")
    return value


def _profile(name: str | None) -> None:
    if name not in (None, "", DEFAULT_PROFILE):
        raise InvalidValue(f"Unknown profile '{name}': only '{DEFAULT_PROFILE}' exists")


def _claim(uri: str | None) -> str:
    uri = _required("A claim URI", uri)
    if uri in (ROLE_CLAIM, GROUPS_CLAIM):
        return uri
    known = WSO2.known(uri)
    if known is None:
        raise InvalidValue(f"Unknown claim '{uri}'")
    return known


def _quote(value: str) -> str:
    return orjson.dumps(value).decode()


def _is_everyone(name: str) -> bool:
    return name.lower() == EVERYONE.lower()


# names ------------------------------------------------------------------------------------
def _qualified(call: Call, entity: ops.Entity) -> str:
    key = "userName" if entity.kind == ops.USER else "displayName"
    return qualify(entity.domain, entity.record.data[key])


async def find(call: Call, kind: str, name: str | None, relations: bool = False
               ) -> ops.Entity | None:
    """The user or group a WSO2 name means (see the module's rule), or None."""
    name = _required("A user name" if kind == ops.USER else "A role name", name)
    op = (ops.GetUserByName(name, with_groups=relations, anywhere=call.anywhere)
          if kind == ops.USER
          else ops.GetGroupByName(name, with_members=relations, anywhere=call.anywhere))
    try:
        return await call.run(op)
    except NotFound:
        return None


async def need(call: Call, kind: str, name: str | None, relations: bool = False) -> ops.Entity:
    """The user or group a name means; NotFound (with WSO2's message) if there is none."""
    found = await find(call, kind, name, relations)
    if found is None:
        domain = (call.names.parts(name, kind == ops.GROUP)[0] or PRIMARY).upper()
        if kind == ops.USER:
            raise NotFound(f"30007 - UserNotFound: User {name} does not exist in: {domain}")
        raise NotFound(f"Role {name} does not exist in: {domain}")
    return found


async def _user_ids(call: Call, names: list[str] | None, domain: str) -> list[str]:
    """The ids of the named users, which must live in ``domain`` (a group's members do)."""
    out = []
    for name in names or []:
        user = await need(call, ops.USER, name)
        if user.domain != domain:
            raise InvalidValue(f"User '{name}' is in the user store {user.domain}; a role of "
                               f"{domain} can only hold users of {domain}")
        out.append(user.id)
    return out


async def _search_all(call: Call, op_type, filter_: str | None, domain: str | None,
                      limit: int, sort_by: str) -> list[ops.Entity]:
    """Up to ``limit`` users or groups matching a filter, over all stores, sorted."""
    out: list[ops.Entity] = []
    cursor = ""
    page = min(limit, call.pipeline.config.max_results)
    while len(out) < limit:
        results = await call.run(op_type(filter=filter_, sort_by=sort_by, domain=domain,
                                         count=min(page, limit - len(out)), cursor=cursor,
                                         with_relations=False))
        out.extend(results.entities)
        cursor = results.next_cursor
        if not cursor or not results.entities:
            break
    return out


# patterns ---------------------------------------------------------------------------------
def _pattern_filter(attr: str, pattern: str) -> tuple[str | None, Wildcard | None]:
    """A WSO2 wildcard pattern (``*`` any run of characters, ``?`` one character) as a
    SCIM filter that narrows the search, and, where the filter alone is not exact, the
    Wildcard every result must match."""
    if pattern.strip("*") == "":
        return None, None
    if "*" not in pattern and "?" not in pattern:
        return f"{attr} eq {_quote(pattern)}", None
    parts = re.split(r"[*?]", pattern)
    terms = []
    if parts[0]:
        terms.append(f"{attr} sw {_quote(parts[0])}")
    if parts[-1]:
        terms.append(f"{attr} ew {_quote(parts[-1])}")
    middle = [p for p in parts[1:-1] if p]
    terms.extend(f"{attr} co {_quote(p)}" for p in middle)
    exact = None
    if "?" in pattern or middle or (parts[0] and parts[-1]):  # the terms are not enough
        exact = Wildcard(pattern)
    return " and ".join(terms) or None, exact


def _split_domain(call: Call, pattern: str) -> tuple[str | None, str]:
    """A list pattern's domain (None: every store's) and the rest."""
    return call.names.split(pattern) if is_qualified(pattern) else (None, pattern)


# users ----------------------------------------------------------------------------------
async def isExistingUser(call: Call, userName):  # noqa: N802 - WSO2's operation names
    return await find(call, ops.USER, userName) is not None


async def authenticate(call: Call, userName, credential):  # noqa: N802
    name = _required("A user name", userName)
    if credential is None:
        return False
    return await call.run(ops.CheckPassword(name, credential, call.source,
                                            anywhere=call.anywhere)) is not None


def _claims_patch(claims, *, current: dict[str, str | None] | None = None,
                  dedupe: bool = False) -> list[PatchOperation]:
    """ClaimValue items -> canonical PATCH operations (empty value: remove the claim).

    With ``current`` (the claims' present values), values are appended to what is
    there, joined by WSO2's separator; with ``dedupe``, a value already there (any
    case) is not added again.
    """
    out = []
    for item in claims or []:
        uri = _claim(getattr(item, "claimURI", None))
        if uri in (ROLE_CLAIM, GROUPS_CLAIM):
            raise InvalidValue(f"'{uri}' is set through the role operations")
        if uri in WSO2.read_only:
            raise InvalidValue(f"The claim '{uri}' is read-only")
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


async def addUser(call: Call, userName, credential, roleList, claims, profileName,  # noqa: N802
                  requirePasswordChange):
    name = _required("A user name", userName)
    _profile(profileName)
    domain = call.names.split(name)[0]  # an unknown domain is the caller's mistake, said first
    representation = {"userName": name}
    patch = _claims_patch(claims)
    if patch:
        representation = apply_patch(call.pipeline.schemas.user, representation,
                                     patch).resource
    if credential:
        representation["password"] = credential
    roles = []
    for role in roleList or []:
        if _is_everyone(role):
            continue
        group = await need(call, ops.GROUP, role)
        if group.domain != domain:
            raise InvalidValue(f"Role '{role}' is in the user store {group.domain}; a user of "
                               f"{domain} can only join roles of {domain}")
        roles.append(group)
    if roles:  # joining them needs this too: refuse before anything is created
        call.caller.require(ops.ChangeMembers.permission)
    try:
        user = await call.run(ops.CreateUser(representation))
    except Conflict:
        raise Conflict(f"30004 - UserAlreadyExistingUsername {name} already exists in the "
                       "system. Pick another username.") from None
    try:
        for group in roles:
            await call.run(ops.ChangeMembers(group.id, add=[user.id]))
    except GatewayError:  # nothing half-done: the gateway removes the user it made
        await call.pipeline.execute(SYSTEM, ops.DeleteUser(user.id))
        raise


async def deleteUser(call: Call, userName):  # noqa: N802
    user = await need(call, ops.USER, userName)
    await call.run(ops.DeleteUser(user.id))


async def updateCredential(call: Call, userName, newCredential, oldCredential):  # noqa: N802
    user = await need(call, ops.USER, userName)
    try:
        await call.run(ops.ChangePassword(_qualified(call, user),
                                          _required("The new credential", newCredential),
                                          _present("The old credential", oldCredential)))
    except Forbidden:
        raise Forbidden("30006 - PasswordInvalid Old credential does not match with the "
                        "existing credentials.") from None


async def updateCredentialByAdmin(call: Call, userName, newCredential):  # noqa: N802
    user = await need(call, ops.USER, userName)
    await call.run(ops.ChangePassword(_qualified(call, user),
                                      _required("The new credential", newCredential)))


def _resource(call: Call, user: ops.Entity) -> dict:
    rec = user.record
    return {**rec.data, "userName": _qualified(call, user), "id": rec.id,
            "meta": {"created": rec.created, "lastModified": rec.last_modified,
                     "resourceType": "User"}}


def _roles_of(call: Call, user: ops.Entity) -> list[str]:
    names = [qualify(user.domain, g["display"]) for g in user.record.groups or []]
    return sorted(names, key=str.lower) + [EVERYONE]


def _read_claim(call: Call, user: ops.Entity, uri: str) -> str | None:
    if uri in (ROLE_CLAIM, GROUPS_CLAIM):
        return SEPARATOR_MULTI.join(_roles_of(call, user))
    return WSO2.read_text(_resource(call, user), uri)


async def getUserClaimValue(call: Call, userName, claim, profileName):  # noqa: N802
    _profile(profileName)
    uri = _claim(claim)
    user = await need(call, ops.USER, userName, relations=uri in (ROLE_CLAIM, GROUPS_CLAIM))
    return _read_claim(call, user, uri)


async def getUserClaimValues(call: Call, userName, profileName):  # noqa: N802
    _profile(profileName)
    user = await need(call, ops.USER, userName)
    values = WSO2.read_all(_resource(call, user))
    return [Item(claimUri=uri, value=value, dialectURI=DIALECT_URI,
                 displayTag=uri[len(CLAIM):], displayOrder=0, required=False,
                 supportedByDefault=True)
            for uri, value in values.items()]


async def getUserClaimValuesForClaims(call: Call, userName, claims, profileName):  # noqa: N802
    _profile(profileName)
    uris = [_claim(c) for c in claims or []]
    user = await need(call, ops.USER, userName,
                      relations=any(u in (ROLE_CLAIM, GROUPS_CLAIM) for u in uris))
    out = []
    for uri in dict.fromkeys(uris):
        value = _read_claim(call, user, uri)
        if value is not None:
            out.append(Item(claimURI=uri, value=value))
    return out


async def _patch_claims(call: Call, userName, patch: list[PatchOperation]) -> None:
    user = await need(call, ops.USER, userName)
    if patch:
        await call.run(ops.PatchUser(user.id, patch))


async def setUserClaimValue(call: Call, userName, claimURI, claimValue,  # noqa: N802
                            profileName):
    _profile(profileName)
    await _patch_claims(call, userName,
                        _claims_patch([Item(claimURI=claimURI, value=claimValue)]))


async def setUserClaimValues(call: Call, userName, claims, profileName):  # noqa: N802
    _profile(profileName)
    await _patch_claims(call, userName, _claims_patch(claims))


async def _add_claims(call: Call, userName, claims, dedupe: bool) -> None:
    user = await need(call, ops.USER, userName)
    resource = _resource(call, user)
    current = {}
    for item in claims or []:
        uri = _claim(getattr(item, "claimURI", None))
        if uri not in (ROLE_CLAIM, GROUPS_CLAIM):
            current.setdefault(uri, WSO2.read_text(resource, uri))
    patch = _claims_patch(claims, current=current, dedupe=dedupe)
    if patch:
        await call.run(ops.PatchUser(user.id, patch))


async def addUserClaimValue(call: Call, userName, claimURI, claimValue,  # noqa: N802
                            profileName):
    """WSO2 appends to the claim: ``a`` plus ``b`` is ``a,b`` (even when ``b`` is there)."""
    _profile(profileName)
    await _add_claims(call, userName, [Item(claimURI=claimURI, value=claimValue)],
                      dedupe=False)


async def addUserClaimValues(call: Call, userName, claims, profileName):  # noqa: N802
    """As addUserClaimValue, but a value the claim already has (any case) is skipped."""
    _profile(profileName)
    await _add_claims(call, userName, claims, dedupe=True)


async def deleteUserClaimValue(call: Call, userName, claimURI, profileName):  # noqa: N802
    _profile(profileName)
    await _patch_claims(call, userName, _claims_patch([Item(claimURI=claimURI)]))


async def deleteUserClaimValues(call: Call, userName, claims, profileName):  # noqa: N802
    _profile(profileName)
    await _patch_claims(call, userName,
                        _claims_patch([Item(claimURI=c) for c in claims or []]))


async def listUsers(call: Call, filter, maxItemLimit):  # noqa: N802, A002
    limit = LIST_LIMIT if maxItemLimit is None or maxItemLimit < 0 else maxItemLimit
    limit = min(limit, call.pipeline.config.max_results)
    if limit == 0:
        return []
    domain, pattern = _split_domain(call, filter or "*")
    domains = [domain] if domain else call.names.domains
    out: list[str] = []
    for d in domains:
        scim_filter, exact = _pattern_filter("userName", qualify(d, pattern))
        found = await _search_all(call, ops.SearchUsers, scim_filter, d,
                                  limit if exact is None else call.pipeline.config.max_results,
                                  "userName")
        names = [_qualified(call, u) for u in found]
        out.extend(n for n in names if exact is None or exact.matches(n))
        if len(out) >= limit:
            break
    return out[:limit]


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
        base, exact = _pattern_filter(attr, value)
        term = None
    if base is None and term is None:
        return (f"{match.group(1)}[{match.group(2)}]" if match else f"{path} pr"), None
    if match:
        inner = f"{attr} {term}" if term else base
        return f"{match.group(1)}[{match.group(2)} and {inner}]", exact
    return (f"{path} {term}" if term else base), exact


async def getUserList(call: Call, claimUri, claimValue, profile):  # noqa: N802
    _profile(profile)
    uri = _claim(claimUri)
    value = _required("A claim value", claimValue)
    limit = call.pipeline.config.max_results
    if uri in (ROLE_CLAIM, GROUPS_CLAIM):
        return await getUserListOfRole(call, value)
    if uri == WSO2.known(CLAIM + "username"):  # names: the listUsers rule, every store
        return await listUsers(call, value, limit)
    domain = None
    scim_filter, exact = _claim_filter(uri, value)
    found = await _search_all(call, ops.SearchUsers, scim_filter, domain, limit, "userName")
    out = []
    for user in found:
        if exact is None or any(exact.matches(str(v)) for v in
                                WSO2.read(_resource(call, user), uri)):
            out.append(_qualified(call, user))
    return out


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


# roles ------------------------------------------------------------------------------------
async def isExistingRole(call: Call, roleName):  # noqa: N802
    if _is_everyone(_required("A role name", roleName)):
        return True
    return await find(call, ops.GROUP, roleName) is not None


async def getRoleNames(call: Call):  # noqa: N802
    groups = await _search_all(call, ops.SearchGroups, None, None, MAX_NAMES, "displayName")
    return [_qualified(call, g) for g in groups] + [EVERYONE]


async def getHybridRoles(call: Call):  # noqa: N802
    groups = await _search_all(call, ops.SearchGroups, HYBRID_FILTER, PRIMARY,
                               MAX_NAMES, "displayName")
    return [_qualified(call, g) for g in groups] + [EVERYONE]


async def getRoleListOfUser(call: Call, userName):  # noqa: N802
    user = await need(call, ops.USER, userName, relations=True)
    return _roles_of(call, user)


async def getUserListOfRole(call: Call, roleName):  # noqa: N802
    if _is_everyone(_required("A role name", roleName)):
        users = await _search_all(call, ops.SearchUsers, None, None, MAX_NAMES, "userName")
        return [_qualified(call, u) for u in users]
    group = await need(call, ops.GROUP, roleName, relations=True)
    members = [m for m in group.record.members or [] if m.get("type", "User") == "User"]
    return sorted((qualify(group.domain, m["display"]) for m in members
                   if m.get("display")), key=str.lower)


async def addRole(call: Call, roleName, userList, permissions):  # noqa: N802
    """The role with its users. WSO2's UI permissions (``permissions``) are accepted and
    not kept: what a role may do here is configured in ``[roles]``."""
    name = _required("A role name", roleName)
    if _is_everyone(name):
        raise Conflict(f"The role '{EVERYONE}' already exists")
    domain = call.names.split(name, group=True)[0]
    ids = await _user_ids(call, userList, domain)
    await call.run(ops.CreateGroup({"displayName": name,
                                    "members": [{"value": i} for i in ids]}))


async def deleteRole(call: Call, roleName):  # noqa: N802
    if _is_everyone(_required("A role name", roleName)):
        raise InvalidValue(f"The role '{EVERYONE}' cannot be deleted")
    group = await find(call, ops.GROUP, roleName)
    if group is None:
        raise NotFound("31806 - Cannot delete non-existing role")
    await call.run(ops.DeleteGroup(group.id))


async def updateRoleName(call: Call, roleName, newRoleName):  # noqa: N802
    new = _required("The new role name", newRoleName)
    if _is_everyone(_required("A role name", roleName)) or _is_everyone(new):
        raise InvalidValue(f"The role '{EVERYONE}' cannot be renamed")
    group = await need(call, ops.GROUP, roleName)
    if not is_qualified(new):  # a bare new name stays in the role's domain
        new = qualify(group.domain, new)
    await call.run(ops.PatchGroup(group.id, [PatchOperation("replace", "displayName", new)],
                                  with_members=False))


async def updateUserListOfRole(call: Call, roleName, deletedUsers, newUsers):  # noqa: N802
    if _is_everyone(_required("A role name", roleName)):
        raise InvalidValue(f"The members of '{EVERYONE}' cannot be changed")
    group = await need(call, ops.GROUP, roleName)
    add = await _user_ids(call, newUsers, group.domain)
    remove = await _user_ids(call, deletedUsers, group.domain)
    if add or remove:
        await call.run(ops.ChangeMembers(group.id, add=add, remove=remove))


async def updateRoleListOfUser(call: Call, userName, deletedRoles, newRoles):  # noqa: N802
    user = await need(call, ops.USER, userName)
    changes: list[tuple[ops.Entity, bool]] = []
    for roles, adding in ((deletedRoles, False), (newRoles, True)):
        for role in roles or []:
            if _is_everyone(role):
                if not adding:  # every user holds it, always
                    raise InvalidValue(f"The role '{EVERYONE}' cannot be removed from a user")
                continue
            group = await need(call, ops.GROUP, role)
            if group.domain != user.domain:
                raise InvalidValue(f"Role '{role}' is in the user store {group.domain}; a user "
                                   f"of {user.domain} can only join roles of {user.domain}")
            changes.append((group, adding))
    for group, adding in changes:  # every role checked first: no change made half-way
        await call.run(ops.ChangeMembers(group.id, add=[user.id] if adding else [],
                                         remove=[] if adding else [user.id]))
