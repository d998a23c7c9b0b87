"""The RemoteUserStoreManagerService contract (V1 and V2) as Spyne services.

One table lists WSO2's 35 operations: their parameters (names, order and
types as in WSO2's WSDL), their result, and the WSO2 permission that guards
them (from WSO2's ``services.xml``). ``build_service`` turns it into a Spyne
``Service`` class for V1 (void operations are one-way) or V2 (they return
``true``; every failure is the typed ``UserStoreException`` fault).

Each service method is an ``async def`` that only forwards to its handler
(``gateway.soap.handlers.BY_NAME``, by the operation's name): Spyne stores the
coroutine as the method's result, and the aiohttp adapter (``gateway.soap.app``)
awaits it before Spyne serialises the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from spyne import Fault, Service, rpc

from ..errors import InvalidValue
from . import handlers
from .models import (
    TNS,
    V1_TYPES,
    V2_TYPES,
    ArrayOfString,
    Bool,
    ClaimDTO,
    ClaimValue,
    Int,
    Long,
    PermissionDTO,
    String,
    Strings,
    VersionTypes,
)

ClaimValues = ClaimValue.customize(min_occurs=0, max_occurs="unbounded", nillable=True)
ClaimDTOs = ClaimDTO.customize(min_occurs=0, max_occurs="unbounded", nillable=True)
Permissions = PermissionDTO.customize(min_occurs=0, max_occurs="unbounded", nillable=True)
Arrays = ArrayOfString.customize(min_occurs=0, max_occurs="unbounded", nillable=True)
TENANT = object()  # placeholder: the version's Tenant type

# WSO2 permission paths (services.xml), below /permission/admin/manage/identity
IDENTITY = "/permission/admin/manage/identity"


@dataclass(frozen=True)
class Op:
    name: str
    params: tuple[tuple[str, object], ...]
    returns: object | None  # None: void (one-way in V1, boolean in V2)
    permission: str  # WSO2's AuthorizationAction

    @property
    def void(self) -> bool:
        return self.returns is None


def _op(name: str, params: str, returns, permission: str) -> Op:
    types = {"s": String, "s*": Strings, "i": Int, "b": Bool, "claims": ClaimValues,
             "perms": Permissions, "tenant": TENANT}
    parsed = []
    for item in params.split():
        pname, _, kind = item.partition(":")
        parsed.append((pname, types[kind or "s"]))
    return Op(name, tuple(parsed), returns, IDENTITY + permission)


USER_CREATE, USER_UPDATE, USER_DELETE = "/usermgt/create", "/usermgt/update", "/usermgt/delete"
USER_VIEW, USER_LIST = "/usermgt/view", "/usermgt/list"
ROLE_CREATE, ROLE_UPDATE, ROLE_DELETE = "/rolemgt/create", "/rolemgt/update", "/rolemgt/delete"
ROLE_VIEW, PROFILE_VIEW = "/rolemgt/view", "/userprofile/view"

# in the order of WSO2's schema (V1), which is also the order of the published WSDL
OPERATIONS: tuple[Op, ...] = (
    _op("updateUserListOfRole", "roleName deletedUsers:s* newUsers:s*", None, ROLE_UPDATE),
    _op("updateRoleName", "roleName newRoleName", None, ROLE_UPDATE),
    _op("updateRoleListOfUser", "userName deletedRoles:s* newRoles:s*", None, USER_UPDATE),
    _op("updateCredentialByAdmin", "userName newCredential", None, USER_UPDATE),
    _op("updateCredential", "userName newCredential oldCredential", None, USER_UPDATE),
    _op("setUserClaimValues", "userName claims:claims profileName", None, USER_UPDATE),
    _op("setUserClaimValue", "userName claimURI claimValue profileName", None, USER_UPDATE),
    _op("listUsers", "filter maxItemLimit:i", Strings, USER_LIST),
    _op("isReadOnly", "", Bool, USER_VIEW),
    _op("isExistingUser", "userName", Bool, ""),
    _op("isExistingRole", "roleName", Bool, ROLE_VIEW),
    _op("getUserListOfRole", "roleName", Strings, ROLE_VIEW),
    _op("getUserList", "claimUri claimValue profile", Strings, USER_LIST),
    _op("getUserId", "username", Int, USER_VIEW),
    _op("getUserClaimValuesForClaims", "userName claims:s* profileName", ClaimValues, USER_VIEW),
    _op("getUserClaimValues", "userName profileName", ClaimDTOs, USER_VIEW),
    _op("getUserClaimValue", "userName claim profileName", String, USER_VIEW),
    _op("getTenantIdofUser", "username", Int, USER_VIEW),
    _op("getTenantId", "", Int, USER_VIEW),
    _op("getRoleNames", "", Strings, USER_VIEW),
    _op("getRoleListOfUser", "userName", Strings, ROLE_VIEW),
    _op("getProperties", "tenant:tenant", Arrays, USER_VIEW),
    _op("getProfileNames", "userName", Strings, PROFILE_VIEW),
    _op("getPasswordExpirationTime", "username", Long, USER_VIEW),
    _op("getHybridRoles", "", Strings, ROLE_VIEW),
    _op("getAllProfileNames", "", Strings, PROFILE_VIEW),
    _op("deleteUserClaimValues", "userName claims:s* profileName", None, USER_DELETE),
    _op("deleteUserClaimValue", "userName claimURI profileName", None, USER_DELETE),
    _op("deleteUser", "userName", None, USER_DELETE),
    _op("deleteRole", "roleName", None, ROLE_DELETE),
    _op("authenticate", "userName credential", Bool, ""),
    _op("addUserClaimValues", "userName claims:claims profileName", None, USER_UPDATE),
    _op("addUserClaimValue", "userName claimURI claimValue profileName", None, USER_UPDATE),
    _op("addUser", "userName credential roleList:s* claims:claims profileName "
                   "requirePasswordChange:b", None, USER_CREATE),
    _op("addRole", "roleName userList:s* permissions:perms", None, ROLE_CREATE),
)
BY_NAME = {op.name: op for op in OPERATIONS}


@dataclass(frozen=True)
class Version:
    """One version of the service: its name, types and fault."""

    name: str  # the service name, also the last path segment of its endpoint
    v2: bool
    types: VersionTypes
    fault: type  # the fault detail element's type


def _fault_type(service_name: str, types: VersionTypes) -> type:
    """The fault detail: ``<ns:{service}UserStoreException><ns:UserStoreException/>``."""
    return type(f"{service_name}UserStoreException", (Fault,), {
        "__namespace__": TNS, "__type_name__": f"{service_name}UserStoreException",
        "_type_info": [("UserStoreException", types.user_store_exception.customize(
            min_occurs=0, nillable=True))]})


V1 = Version("RemoteUserStoreManagerService", False, V1_TYPES,
             _fault_type("RemoteUserStoreManagerService", V1_TYPES))
V2 = Version("RemoteUserStoreManagerServiceV2", True, V2_TYPES,
             _fault_type("RemoteUserStoreManagerServiceV2", V2_TYPES))


def _as_declared(name: str, declared, value):
    """A value as the WSDL declares its parameter, whatever ``xsi:type`` the request gave
    it (Spyne honours ``xsi:type``: ``maxItemLimit xsi:type="xs:string"`` arrives as a
    string). WSO2 reads simple values by the schema's type too; one that is not of it is
    the caller's mistake. A nil item of a repeated element is no item (Perl's SOAP::Lite
    sends a list it was not given as one ``xsi:nil`` element)."""
    if value is None:
        return None
    if isinstance(value, list):
        value = [v for v in value if v is not None]
    if declared is Int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                raise InvalidValue(f"{name} takes an xs:int, not {str(value)[:40]!r}") from None
        if not -(2**31) <= number < 2**31:
            raise InvalidValue(f"{name} takes an xs:int (32 bits)")
        return number
    if declared is Bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in ("true", "false", "1", "0"):
            raise InvalidValue(f"{name} takes an xs:boolean, not {str(value)[:40]!r}")
        return text in ("true", "1")
    if declared is String:
        return value if isinstance(value, str) else _text(value)
    if declared is Strings:
        items = value if isinstance(value, list) else [value]
        return [v if isinstance(v, str) else _text(v) for v in items if v is not None]
    return value


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise InvalidValue(f"A {type(value).__name__} was sent where a string is expected")


def _method(op: Op, version: Version):
    handler = handlers.BY_NAME[op.name]
    params = [version.types.tenant if t is TENANT else t for _n, t in op.params]
    returns = Bool if op.void and version.v2 else op.returns
    names = [n for n, _t in op.params]

    async def method(ctx, *args):
        args = [_as_declared(n, t, a) for n, t, a in zip(names, params, args, strict=False)]
        result = await handler(ctx.udc, *args)
        return True if op.void else result

    method.__name__ = op.name
    result = {} if returns is None else {"_returns": returns, "_out_variable_name": "return"}
    return rpc(*params, _args=tuple(n for n, _t in op.params), **result,
               _operation_name=op.name,
               _in_message_name=op.name, _out_message_name=f"{op.name}Response",
               _body_style="wrapped", _throws=[version.fault])(method)


def build_service(version: Version) -> type[Service]:
    methods = {op.name: _method(op, version) for op in OPERATIONS}
    return type(version.name, (Service,), {"__service_name__": version.name, **methods})
