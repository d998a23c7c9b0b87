"""Attribute metadata as data: the canonical schemas of users and groups.

The canonical model is shaped after SCIM 2.0 (RFC 7643): core User and Group,
the enterprise extension, and our own extension for WSO2-style account
attributes (under WSO2's own URN, ``urn:scim:wso2:schema``). A canonical
resource is a plain dict in SCIM 2.0 JSON shape, core attributes at the top
level and extension attributes under their schema URN. Everything that
validates, filters, indexes or renders attributes reads these definitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

STRING = "string"
BOOLEAN = "boolean"
DECIMAL = "decimal"
INTEGER = "integer"
DATETIME = "dateTime"
BINARY = "binary"
REFERENCE = "reference"
COMPLEX = "complex"

READ_ONLY = "readOnly"
READ_WRITE = "readWrite"
IMMUTABLE = "immutable"
WRITE_ONLY = "writeOnly"

ALWAYS = "always"
NEVER = "never"
DEFAULT = "default"
REQUEST = "request"

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
WSO2_USER = "urn:scim:wso2:schema"


@dataclass(frozen=True)
class Attribute:
    name: str
    type: str = STRING
    multi_valued: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: str = READ_WRITE
    returned: str = DEFAULT
    uniqueness: str = "none"
    description: str = ""
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    sub_attributes: tuple[Attribute, ...] = ()
    _by_lower: dict[str, Attribute] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for sub in self.sub_attributes:
            self._by_lower[sub.name.lower()] = sub

    def sub(self, name: str) -> Attribute | None:
        return self._by_lower.get(name.lower())

    @property
    def is_complex(self) -> bool:
        return self.type == COMPLEX

    def to_scim(self) -> dict:
        """The attribute as RFC 7643 §7 describes it in a Schema resource."""
        out: dict = {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi_valued,
            "description": self.description or self.name,
            "required": self.required,
            "mutability": self.mutability,
            "returned": self.returned,
        }
        if self.type in (STRING, REFERENCE, BINARY):
            out["caseExact"] = self.case_exact
            out["uniqueness"] = self.uniqueness
        if self.canonical_values:
            out["canonicalValues"] = list(self.canonical_values)
        if self.reference_types:
            out["referenceTypes"] = list(self.reference_types)
        if self.sub_attributes:
            out["subAttributes"] = [s.to_scim() for s in self.sub_attributes]
        return out


@dataclass(frozen=True)
class Schema:
    id: str
    name: str
    description: str
    attributes: tuple[Attribute, ...]
    # Short, stable name used as the prefix of this schema's attributes in
    # storage keys (empty for a core schema).
    alias: str = ""
    _by_lower: dict[str, Attribute] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for attr in self.attributes:
            self._by_lower[attr.name.lower()] = attr

    def attribute(self, name: str) -> Attribute | None:
        return self._by_lower.get(name.lower())

    def key(self, attr: Attribute) -> str:
        """The storage key of a top-level attribute of this schema."""
        return f"{self.alias}:{attr.name}" if self.alias else attr.name

    def to_scim(self, location: str) -> dict:
        # core schemas also describe the attributes every resource has (id, externalId,
        # meta), as WSO2 does, so that clients learn id is returned always
        common = [] if self.alias else [a.to_scim() for a in (ID, EXTERNAL_ID, META)]
        return {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": common + [a.to_scim() for a in self.attributes],
            "meta": {"resourceType": "Schema", "location": f"{location}/Schemas/{self.id}"},
        }


def _multi(name: str, types: tuple[str, ...], value_type: str = STRING, **kw) -> Attribute:
    """A multi-valued complex attribute of the usual value/display/type/primary shape."""
    return Attribute(
        name,
        COMPLEX,
        multi_valued=True,
        sub_attributes=(
            Attribute("value", value_type, **kw),
            Attribute("display"),
            Attribute("type", canonical_values=types),
            Attribute("primary", BOOLEAN),
        ),
    )


# Attributes every resource has (RFC 7643 §3.1); held outside the schemas.
ID = Attribute(
    "id", case_exact=True, mutability=READ_ONLY, returned=ALWAYS, uniqueness="server"
)
EXTERNAL_ID = Attribute("externalId", case_exact=True)
META = Attribute(
    "meta",
    COMPLEX,
    mutability=READ_ONLY,
    sub_attributes=(
        Attribute("resourceType", case_exact=True, mutability=READ_ONLY),
        Attribute("created", DATETIME, mutability=READ_ONLY),
        Attribute("lastModified", DATETIME, mutability=READ_ONLY),
        Attribute("location", REFERENCE, case_exact=True, mutability=READ_ONLY,
                  reference_types=("uri",)),
        Attribute("version", case_exact=True, mutability=READ_ONLY),
    ),
)
SCHEMAS = Attribute(
    "schemas", REFERENCE, multi_valued=True, case_exact=True, mutability=READ_ONLY,
    returned=ALWAYS, reference_types=("uri",),
)
COMMON = (ID, EXTERNAL_ID, META, SCHEMAS)

USER_SCHEMA = Schema(
    CORE_USER,
    "User",
    "User Account",
    (
        Attribute("userName", required=True, uniqueness="server"),
        Attribute(
            "name",
            COMPLEX,
            sub_attributes=tuple(
                Attribute(n)
                for n in ("formatted", "familyName", "givenName", "middleName",
                          "honorificPrefix", "honorificSuffix")
            ),
        ),
        Attribute("displayName"),
        Attribute("nickName"),
        Attribute("profileUrl", REFERENCE, reference_types=("external",)),
        Attribute("title"),
        Attribute("userType"),
        Attribute("preferredLanguage"),
        Attribute("locale"),
        Attribute("timezone"),
        Attribute("active", BOOLEAN),
        Attribute("password", mutability=WRITE_ONLY, returned=NEVER, case_exact=True),
        _multi("emails", ("work", "home", "other")),
        _multi("phoneNumbers", ("work", "home", "mobile", "fax", "pager", "other")),
        _multi("ims", ("aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo")),
        _multi("photos", ("photo", "thumbnail"), REFERENCE, reference_types=("external",)),
        Attribute(
            "addresses",
            COMPLEX,
            multi_valued=True,
            sub_attributes=(
                *(Attribute(n) for n in ("formatted", "streetAddress", "locality", "region",
                                         "postalCode", "country")),
                Attribute("type", canonical_values=("work", "home", "other")),
                Attribute("primary", BOOLEAN),
            ),
        ),
        Attribute(
            "groups",
            COMPLEX,
            multi_valued=True,
            mutability=READ_ONLY,
            sub_attributes=(
                Attribute("value", mutability=READ_ONLY),
                Attribute("$ref", REFERENCE, mutability=READ_ONLY,
                          reference_types=("User", "Group")),
                Attribute("display", mutability=READ_ONLY),
                Attribute("type", mutability=READ_ONLY, canonical_values=("direct", "indirect")),
            ),
        ),
        _multi("entitlements", ()),
        _multi("roles", ()),
        _multi("x509Certificates", (), BINARY),
    ),
)

ENTERPRISE_SCHEMA = Schema(
    ENTERPRISE_USER,
    "EnterpriseUser",
    "Enterprise User",
    (
        Attribute("employeeNumber"),
        Attribute("costCenter"),
        Attribute("organization"),
        Attribute("division"),
        Attribute("department"),
        Attribute(
            "manager",
            COMPLEX,
            sub_attributes=(
                Attribute("value"),
                Attribute("$ref", REFERENCE, reference_types=("User",)),
                Attribute("displayName", mutability=READ_ONLY),
            ),
        ),
    ),
    alias="enterprise",
)

WSO2_SCHEMA = Schema(
    WSO2_USER,
    "WSO2User",
    "WSO2-style account attributes",
    (
        Attribute("accountLocked", BOOLEAN),
        Attribute("accountDisabled", BOOLEAN),
        Attribute("failedLoginAttempts", INTEGER),
        Attribute("unlockTime"),  # when a lock ends: milliseconds since 1970, as WSO2 has it
        Attribute("lastLoginTime"),
        Attribute("lastPasswordUpdateTime"),
        Attribute("askPassword", BOOLEAN),
        Attribute("emailVerified", BOOLEAN),
        Attribute("phoneVerified", BOOLEAN),
        Attribute("dateOfBirth"),
        Attribute("gender"),
        Attribute("country"),
        Attribute("stateOrProvince"),
        Attribute("otherPhone"),
        Attribute("userSource"),
    ),
    alias="wso2",
)

GROUP_SCHEMA = Schema(
    CORE_GROUP,
    "Group",
    "Group",
    (
        Attribute("displayName", required=True, uniqueness="server"),
        Attribute(
            "members",
            COMPLEX,
            multi_valued=True,
            sub_attributes=(
                Attribute("value", mutability=IMMUTABLE, case_exact=True),
                Attribute("$ref", REFERENCE, mutability=IMMUTABLE,
                          reference_types=("User", "Group")),
                Attribute("type", mutability=IMMUTABLE, canonical_values=("User", "Group")),
                Attribute("display", mutability=READ_ONLY),
            ),
        ),
    ),
)


@dataclass(frozen=True)
class ResourceType:
    name: str
    endpoint: str
    schema: Schema
    extensions: tuple[Schema, ...] = ()

    @cached_property
    def hidden(self) -> dict[str, tuple[set[str], dict[str, set[str]]]]:
        """Per schema id: the attributes never returned (writeOnly or returned=never), and
        per complex attribute its sub-attributes never returned."""
        return self._by_returned(lambda a: a.returned == NEVER or a.mutability == WRITE_ONLY)

    @cached_property
    def on_request(self) -> dict[str, tuple[set[str], dict[str, set[str]]]]:
        """Per schema id: the attributes returned only when asked for (returned=request)."""
        return self._by_returned(lambda a: a.returned == REQUEST)

    def _by_returned(self, test) -> dict[str, tuple[set[str], dict[str, set[str]]]]:
        out = {}
        for schema in self.schemas:
            top = {a.name for a in schema.attributes if test(a) and a.name != "password"}
            subs = {a.name: {s.name for s in a.sub_attributes if test(s)}
                    for a in schema.attributes if any(test(s) for s in a.sub_attributes)}
            if top or subs:
                out[schema.id] = (top, subs)
        return out

    @property
    def schemas(self) -> tuple[Schema, ...]:
        return (self.schema, *self.extensions)

    def extension(self, urn: str) -> Schema | None:
        urn_l = urn.lower()
        for ext in self.extensions:
            if ext.id.lower() == urn_l:
                return ext
        return None

    def schema_for(self, urn: str | None) -> Schema | None:
        if urn is None or urn.lower() == self.schema.id.lower():
            return self.schema
        return self.extension(urn)

    def to_scim(self, location: str) -> dict:
        return {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": self.name,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.schema.description,
            "schema": self.schema.id,
            "schemaExtensions": [{"schema": e.id, "required": False} for e in self.extensions],
            "meta": {"resourceType": "ResourceType",
                     "location": f"{location}/ResourceTypes/{self.name}"},
        }


USER = ResourceType("User", "/Users", USER_SCHEMA, (ENTERPRISE_SCHEMA, WSO2_SCHEMA))
GROUP = ResourceType("Group", "/Groups", GROUP_SCHEMA)
RESOURCE_TYPES = (USER, GROUP)
ALL_SCHEMAS = (USER_SCHEMA, ENTERPRISE_SCHEMA, WSO2_SCHEMA, GROUP_SCHEMA)
