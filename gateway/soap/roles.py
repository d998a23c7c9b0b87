"""The role operations of RemoteUserStoreManagerService: roles are the gateway's groups.

A role holds users of its own store only; WSO2's hybrid roles ``Internal/…`` and
``Application/…`` are groups of PRIMARY that keep their prefix and hold users of any
store (the pipeline finds each in its own store). ``Internal/everyone``
is implicit: every user holds it, it is listed with the roles, and it cannot be created,
renamed, deleted or have its members changed.
"""

from __future__ import annotations

from .. import operations as ops
from ..errors import Conflict, InvalidValue, NotFound
from ..model.patch import PatchOperation
from ..names import PRIMARY, is_qualified, qualify
from . import wso2_messages as wso2
from .call import Call, find, need, qualified, required, search_all, user_ids

EVERYONE = "Internal/everyone"  # WSO2's implicit role of every user
MAX_NAMES = 10_000  # the most names one list reply carries (getRoleNames, getUserListOfRole)
HYBRID_FILTER = 'displayName sw "Internal/" or displayName sw "Application/"'


def is_everyone(name: str) -> bool:
    return name.lower() == EVERYONE.lower()


def wso2_role_name(call: Call, name: str) -> str:
    """A role's name as WSO2 writes it in a message: hybrid roles whole, others without
    their domain."""
    return name if call.names.is_hybrid(name) else wso2.domain_free(name)


def _everyone_unchangeable() -> InvalidValue:
    return InvalidValue(wso2.message(wso2.UPDATE_EVERYONE))


def roles_of(user: ops.Entity) -> list[str]:
    """The names of a user's roles (the user read with its groups), as WSO2 lists them:
    hybrid roles holding a user of another store are PRIMARY's (their ``domain``)."""
    names = [qualify(g.get("domain", user.domain), g["display"])
             for g in user.record.groups or []]
    return sorted(names, key=str.lower) + [EVERYONE]


def is_hybrid_role(call: Call, group: ops.Entity) -> bool:
    """Whether a role is one of WSO2's hybrid roles, which hold users of every store."""
    return group.domain.upper() == PRIMARY and call.names.is_hybrid(qualified(group))


async def member_ids(call: Call, names: list[str] | None, domain: str,
                     hybrid: bool) -> list[str]:
    """The ids of the users named as a role's members: of the role's store, or of any
    store for a hybrid role."""
    if not hybrid:
        return await user_ids(call, names, domain)
    return [(await need(call, ops.USER, name)).id for name in names or []]


async def isExistingRole(call: Call, roleName):  # noqa: N802 - WSO2's operation names
    if is_everyone(required("A role name", roleName)):
        return True
    return await find(call, ops.GROUP, roleName) is not None


async def getRoleNames(call: Call):  # noqa: N802
    groups = await search_all(call, ops.SearchGroups, None, None, MAX_NAMES, "displayName")
    return [qualified(g) for g in groups] + [EVERYONE]


async def getHybridRoles(call: Call):  # noqa: N802
    groups = await search_all(call, ops.SearchGroups, HYBRID_FILTER, PRIMARY,
                              MAX_NAMES, "displayName")
    return [qualified(g) for g in groups] + [EVERYONE]


async def getRoleListOfUser(call: Call, userName):  # noqa: N802
    user = await need(call, ops.USER, userName, relations=True)
    return roles_of(user)


async def getUserListOfRole(call: Call, roleName):  # noqa: N802
    if is_everyone(required("A role name", roleName)):
        users = await search_all(call, ops.SearchUsers, None, None, MAX_NAMES, "userName")
        return [qualified(u) for u in users]
    group = await need(call, ops.GROUP, roleName, relations=True)
    members = [m for m in group.record.members or [] if m.get("type", "User") == "User"]
    return sorted((qualify(m.get("domain", group.domain), m["display"]) for m in members
                   if m.get("display")), key=str.lower)


async def addRole(call: Call, roleName, userList, permissions):  # noqa: N802
    """The role with its users. WSO2's UI permissions (``permissions``) are accepted and
    not kept: what a role may do here is configured in ``[roles]``."""
    name = required("A role name", roleName)
    if is_everyone(name):
        raise Conflict(wso2.message(wso2.ROLE_EXISTS, name))
    domain = call.names.split(name, group=True)[0]
    ids = await member_ids(call, userList, domain,
                           domain.upper() == PRIMARY and call.names.is_hybrid(name))
    try:
        await call.run(ops.CreateGroup({"displayName": name,
                                        "members": [{"value": i} for i in ids]}))
    except Conflict:
        raise Conflict(wso2.message(wso2.ROLE_EXISTS, wso2_role_name(call, name))) from None


async def deleteRole(call: Call, roleName):  # noqa: N802
    if is_everyone(required("A role name", roleName)):
        raise InvalidValue(wso2.message(wso2.DELETE_EVERYONE))
    group = await find(call, ops.GROUP, roleName)
    if group is None:
        raise NotFound(wso2.message(wso2.DELETE_MISSING_ROLE))
    await call.run(ops.DeleteGroup(group.id))


async def updateRoleName(call: Call, roleName, newRoleName):  # noqa: N802
    new = required("The new role name", newRoleName)
    if is_everyone(required("A role name", roleName)) or is_everyone(new):
        raise _everyone_unchangeable()
    group = await need(call, ops.GROUP, roleName)
    if not is_qualified(new):  # a bare new name stays in the role's domain
        new = qualify(group.domain, new)
    try:
        await call.run(ops.PatchGroup(group.id, [PatchOperation("replace", "displayName", new)],
                                      with_members=False))
    except Conflict:
        raise Conflict(wso2.message(wso2.ROLE_EXISTS, wso2_role_name(call, new))) from None


async def updateUserListOfRole(call: Call, roleName, deletedUsers, newUsers):  # noqa: N802
    if is_everyone(required("A role name", roleName)):
        raise _everyone_unchangeable()
    group = await need(call, ops.GROUP, roleName)
    hybrid = is_hybrid_role(call, group)
    add = await member_ids(call, newUsers, group.domain, hybrid)
    remove = await member_ids(call, deletedUsers, group.domain, hybrid)
    if add or remove:
        await call.run(ops.ChangeMembers(group.id, add=add, remove=remove))


async def updateRoleListOfUser(call: Call, userName, deletedRoles, newRoles):  # noqa: N802
    user = await need(call, ops.USER, userName)
    changes: list[tuple[ops.Entity, bool]] = []
    for roles, adding in ((deletedRoles, False), (newRoles, True)):
        for role in roles or []:
            if is_everyone(role):  # every user holds it, always: WSO2 refuses either way
                raise _everyone_unchangeable()
            group = await need(call, ops.GROUP, role)
            if group.domain != user.domain and not is_hybrid_role(call, group):
                raise InvalidValue(f"Role '{role}' is in the user store {group.domain}; a user "
                                   f"of {user.domain} can only join roles of {user.domain} "
                                   "and hybrid roles")
            changes.append((group, adding))
    for group, adding in changes:  # every role checked first: no change made half-way
        await call.run(ops.ChangeMembers(group.id, add=[user.id] if adding else [],
                                         remove=[] if adding else [user.id]))


HANDLERS = (isExistingRole, getRoleNames, getHybridRoles, getRoleListOfUser, getUserListOfRole,
            addRole, deleteRole, updateRoleName, updateUserListOfRole, updateRoleListOfUser)
