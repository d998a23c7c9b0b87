"""The WSO2 user-admin types as Spyne models, in WSO2's namespaces and element order.

Element names, order, namespaces and XML Schema types follow WSO2's own WSDLs
(``shared/reference/wso2/RemoteUserStoreManagerService*.wsdl``): every element
``minOccurs="0"``, strings ``nillable``, ``xs:int``/``xs:long``/``xs:boolean``/
``xs:date`` where WSO2 has them. V1 and V2 differ in ``Tenant``,
``RealmConfiguration`` and ``UserStoreException`` (V2 adds ``errorCode``), so
each version gets its own set, built from one field list.
"""

from __future__ import annotations

from dataclasses import dataclass

from spyne import Boolean, ComplexModel, Date, Integer32, Integer64, Unicode
from spyne.model.complex import SelfReference

TNS = "http://service.ws.um.carbon.wso2.org"
NS_COMMON = "http://common.mgt.user.carbon.wso2.org/xsd"
NS_DAO = "http://dao.service.ws.um.carbon.wso2.org/xsd"
NS_API = "http://api.user.carbon.wso2.org/xsd"
NS_CORE = "http://core.user.carbon.wso2.org/xsd"
NS_TENANT = "http://tenant.core.user.carbon.wso2.org/xsd"

# the simple types of WSO2's schema, all optional
String = Unicode(min_occurs=0, nillable=True)
Strings = Unicode(min_occurs=0, max_occurs="unbounded", nillable=True)
Int = Integer32(min_occurs=0, nillable=False)
Long = Integer64(min_occurs=0, nillable=False)
Bool = Boolean(min_occurs=0, nillable=False)
DateValue = Date(min_occurs=0, nillable=True)

_SCALARS = {"": String, "*": Strings, "int": Int, "long": Long, "bool": Bool, "date": DateValue}


def fields(spec: str, **refs) -> list[tuple[str, object]]:
    """``"name other:int list* realm=Realm"`` -> Spyne ``_type_info`` in that order."""
    out = []
    for item in spec.split():
        if "=" in item:
            name, ref = item.split("=")
            out.append((name, refs[ref]))
        elif item.endswith("*"):
            out.append((item[:-1], Strings))
        else:
            name, _, kind = item.partition(":")
            out.append((name, _SCALARS[kind]))
    return out


class Item(dict):
    """A value of one of these complex types as plain data (``Item(claimURI=..., value=...)``):
    what the handlers return and the reply writer reads (by attribute, as it reads Spyne's
    own instances); a Spyne instance costs ~25 µs to build."""

    __slots__ = ()

    def __getattr__(self, name: str):
        return self.get(name)


class ClaimValue(ComplexModel):
    __namespace__ = NS_COMMON
    _type_info = fields("claimURI value")


class ClaimDTO(ComplexModel):
    __namespace__ = NS_DAO
    _type_info = fields("claimUri description dialectURI displayOrder:int displayTag regEx "
                        "required:bool supportedByDefault:bool value")


class PermissionDTO(ComplexModel):
    __namespace__ = NS_DAO
    _type_info = fields("action resourceId")


class ArrayOfString(ComplexModel):
    __namespace__ = TNS
    _type_info = [("array", Strings)]


def _realm_spec(v2: bool) -> str:
    return ("addAdmin adminPassword adminRoleName "
            + ("adminUserId " if v2 else "") + "adminUserName "
            + ("associatedOrganizationUUID " if v2 else "")
            + "authorizationManagerClass authzProperties* description everyOneRoleName "
            + ("isOverrideUsernameClaimFromInternalUsername " if v2 else "")
            + "multipleCredentialProps* passwordsExternallyManaged:bool persistedTimestamp:date "
            "primary:bool realmClassName realmProperties* secondaryRealmConfig=self "
            "tenantId:int " + ("tenantUniqueId " if v2 else "")
            + "userStoreClass userStoreProperties*")


def _tenant_spec(v2: bool) -> str:
    return ("active:bool adminFirstName adminFullName adminLastName adminName adminPassword "
            + ("adminUserId associatedOrganizationUUID claimsMap* " if v2 else "")
            + "createdDate:date domain email id:int "
            + ("provisioningMethod " if v2 else "") + "realmConfig=realm"
            + (" tenantUniqueID" if v2 else ""))


@dataclass(frozen=True)
class VersionTypes:
    """The version-specific types of one service version."""

    tenant: type  # tenant.core Tenant, the type of getProperties' argument
    user_store_exception: type  # core UserStoreException, the fault detail's child


def _version_types(v2: bool) -> VersionTypes:
    suffix = "V2" if v2 else "V1"

    realm = type(f"RealmConfiguration{suffix}", (ComplexModel,), {
        "__namespace__": NS_API, "__type_name__": "RealmConfiguration",
        "_type_info": fields(_realm_spec(v2), self=SelfReference)})
    realm = realm.customize(min_occurs=0, nillable=True)

    api_tenant = type(f"ApiTenant{suffix}", (ComplexModel,), {
        "__namespace__": NS_API, "__type_name__": "Tenant",
        "_type_info": fields(_tenant_spec(v2), realm=realm)})
    tenant = type(f"Tenant{suffix}", (api_tenant,), {
        "__namespace__": NS_TENANT, "__type_name__": "Tenant", "_type_info": []})

    # WSO2's extends an empty api.user UserStoreException: the same elements on the wire
    core_exc = type(f"UserStoreException{suffix}", (ComplexModel,), {
        "__namespace__": NS_CORE, "__type_name__": "UserStoreException",
        "_type_info": fields("errorCode") if v2 else []})
    return VersionTypes(tenant.customize(min_occurs=0, nillable=True), core_exc)


V1_TYPES = _version_types(v2=False)
V2_TYPES = _version_types(v2=True)
