"""Between canonical resources and LDAP entries: the attribute map, as a dialect table.

Each flavor (OpenLDAP's inetOrgPerson/groupOfNames, Active Directory's
user/group) has a default map of LDAP attribute -> canonical path, which the
configuration extends or overrides (``attributes``). Reading an entry applies
the map through the canonical PATCH engine; writing reads the canonical
resource through it. A value the map cannot hold is refused (or, with
``unmapped = "ignore"``, dropped), never silently lost. The directory's own
account state (locks, AD's disabled flag) is read with every user and written
only as an explicit change (``account_state``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass, replace

from gateway.errors import InvalidValue
from gateway.model.dialect import Dialect
from gateway.model.patch import apply_patch
from gateway.model.schema import ENTERPRISE_USER, ResourceType

from .account_state import (
    ACCOUNT_DISABLED,
    account_control,
    add_state,
    lock_attribute,
    without_state,
)

E = ENTERPRISE_USER

OPENLDAP_USER_MAP = {
    "uid": "userName",
    "cn": "name.formatted",
    "sn": "name.familyName",
    "givenName": "name.givenName",
    "displayName": "displayName",
    "mail": 'emails[type eq "work"].value',
    "telephoneNumber": 'phoneNumbers[type eq "work"].value',
    "mobile": 'phoneNumbers[type eq "mobile"].value',
    "title": "title",
    "preferredLanguage": "preferredLanguage",
    "employeeNumber": f"{E}:employeeNumber",
    "departmentNumber": f"{E}:department",
    "o": f"{E}:organization",
    "street": 'addresses[type eq "work"].streetAddress',
    "l": 'addresses[type eq "work"].locality',
    "st": 'addresses[type eq "work"].region',
    "postalCode": 'addresses[type eq "work"].postalCode',
}

AD_USER_MAP = {
    "sAMAccountName": "userName",
    "sn": "name.familyName",
    "givenName": "name.givenName",
    "displayName": "displayName",
    "mail": 'emails[type eq "work"].value',
    "telephoneNumber": 'phoneNumbers[type eq "work"].value',
    "mobile": 'phoneNumbers[type eq "mobile"].value',
    "title": "title",
    "department": f"{E}:department",
    "company": f"{E}:organization",
    "employeeID": f"{E}:employeeNumber",
    "streetAddress": 'addresses[type eq "work"].streetAddress',
    "l": 'addresses[type eq "work"].locality',
    "st": 'addresses[type eq "work"].region',
    "postalCode": 'addresses[type eq "work"].postalCode',
}


@dataclass(frozen=True)
class Flavor:
    name: str
    user_classes: tuple[str, ...]
    group_classes: tuple[str, ...]
    user_rdn: str  # the RDN attribute of users
    user_name: str  # the LDAP attribute holding userName
    user_map: dict[str, str]
    id_attribute: str
    dn_attribute: str  # an attribute that holds the entry's own DN, for searches by DN
    version_attribute: str
    fill: tuple[str, ...]  # attributes the object class requires: userName when empty

    @property
    def is_ad(self) -> bool:
        return self.name == "ad"

    def with_id(self, id_attribute: str) -> Flavor:
        """The flavor with another id attribute (and the DN and version attributes of the
        kind of server that has it): entryUUID is OpenLDAP's, objectGUID AD's."""
        if not id_attribute or id_attribute == self.id_attribute:
            return self
        if id_attribute.lower() == "entryuuid":
            return replace(self, id_attribute="entryUUID", dn_attribute="entryDN",
                           version_attribute="entryCSN")
        return replace(self, id_attribute=id_attribute, dn_attribute="distinguishedName",
                       version_attribute="uSNChanged")


OPENLDAP = Flavor("openldap", ("inetOrgPerson",), ("groupOfNames",), "uid", "uid",
                  OPENLDAP_USER_MAP, "entryUUID", "entryDN", "entryCSN", ("cn", "sn"))
AD = Flavor("ad", ("user",), ("group",), "cn", "sAMAccountName", AD_USER_MAP,
            "objectGUID", "distinguishedName", "uSNChanged", ("sn",))
FLAVORS = {"openldap": OPENLDAP, "ad": AD}

# a groupOfNames must have a member: an empty group holds this (nonexistent) DN
EMPTY_MEMBER = "cn=empty-membership-placeholder"


def _generalized(value) -> str:
    """An LDAP time (datetime from ldap3, or text) as RFC 3339 UTC."""
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.UTC)
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    text = str(value)
    parsed = dt.datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_id(value) -> str:
    if isinstance(value, bytes | bytearray):  # AD objectGUID
        return str(uuid.UUID(bytes_le=bytes(value)))
    return str(value).lower()


def version_of(value) -> int:
    """The entry's change stamp (entryCSN, AD uSNChanged) as a version number: it changes
    with every modification (equality is all versions are compared by)."""
    text = str(value)
    if text.isdigit():
        return int(text)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=6).digest(), "big")


class Mapping:
    """One store's map between canonical users/groups and its directory entries."""

    def __init__(self, flavor: Flavor, users: ResourceType, groups: ResourceType,
                 extra: tuple[tuple[str, str], ...] = (), unmapped: str = "refuse",
                 user_classes: tuple[str, ...] = (), group_classes: tuple[str, ...] = ()):
        self.flavor = flavor
        table = dict(flavor.user_map)
        for attr, path in extra:
            table = {a: p for a, p in table.items() if a.lower() != attr.lower()}
            if path:
                table[attr] = path
        self.users = Dialect(f"ldap-{flavor.name}", users, table, multi_separator="\x00")
        self.groups_type = groups
        self.unmapped = unmapped
        self.user_classes = user_classes or flavor.user_classes
        self.group_classes = group_classes or flavor.group_classes
        # the directory's lock is read with every user (an operational attribute on
        # OpenLDAP: returned only when asked for by name)
        self.user_attributes = [*table, flavor.id_attribute, flavor.version_attribute,
                                "createTimestamp", "modifyTimestamp", lock_attribute(flavor)]
        if flavor.is_ad:
            self.user_attributes.append("userAccountControl")
        self.group_attributes = ["cn", "description", "member", flavor.id_attribute,
                                 flavor.version_attribute, "createTimestamp", "modifyTimestamp"]

    # reading -------------------------------------------------------------------------
    def meta(self, attrs: dict) -> tuple[str, int, str, str]:
        """(id, version, created, lastModified) of an entry."""
        f = self.flavor
        created = attrs.get("createTimestamp") or attrs.get("whenCreated")
        modified = attrs.get("modifyTimestamp") or attrs.get("whenChanged") or created
        return (entry_id(first_value(attrs.get(f.id_attribute))),
                version_of(first_value(attrs.get(f.version_attribute)) or 0),
                _generalized(first_value(created)) if created else "1970-01-01T00:00:00Z",
                _generalized(first_value(modified)) if modified else "1970-01-01T00:00:00Z")

    def user_data(self, attrs: dict) -> dict:
        """The canonical attributes of a user entry."""
        from gateway.model.patch import PatchOperation

        name = first_value(attrs.get(self.flavor.user_name))
        ops = []
        for attr in self.users.table:
            values = [v for v in values_list(attrs.get(attr)) if v not in (None, "")]
            if not values or attr == self.flavor.user_name:
                continue
            leaf = self.users.leaf(attr)
            value = values if leaf.attr.multi_valued and leaf.sub is None \
                and not leaf.attr.is_complex else str(values[0])
            ops.append(PatchOperation("replace", self.users.table[attr], value))
        data = apply_patch(self.users.rtype, {"userName": str(name)}, ops).resource
        if self.flavor.is_ad and attrs.get("userAccountControl") is not None:
            data["active"] = not int(first_value(attrs["userAccountControl"])) & ACCOUNT_DISABLED
        return add_state(self.flavor, attrs, data)

    # writing ---------------------------------------------------------------------------
    def user_entry(self, data: dict, current: dict | None = None) -> dict[str, list[str]]:
        """The LDAP attributes of a canonical user (every mapped attribute, [] if empty),
        over the entry's ``current`` attributes if it has one. The directory's lock is
        not among them (``account_state.lock_changes``)."""
        data = without_state(data)
        out: dict[str, list[str]] = {}
        for attr in self.users.table:
            values = self.users.read(data, attr)
            out[attr] = [_text(v) for v in values if v not in (None, "")]
        for attr in self.flavor.fill:
            if attr in out and not out[attr]:
                out[attr] = [data["userName"]]
        if self.flavor.is_ad:
            out["userAccountControl"] = [account_control(
                data.get("active", True), first_value((current or {}).get("userAccountControl")))]
        self._check_lossless(data, out)
        return out

    def _check_lossless(self, data: dict, entry: dict[str, list[str]]) -> None:
        """Refuse what the map cannot hold, so that nothing is silently dropped."""
        if self.unmapped == "ignore":
            return
        back = self.user_data({**entry, self.flavor.user_name: [data["userName"]]})
        lost = []
        for key, value in data.items():
            if key == "active" and self.flavor.is_ad is False:
                if value is False:
                    lost.append("active (false)")
                continue
            if not _covers(back.get(key), strip_flags(value)):
                lost.append(key)
        if lost:
            raise InvalidValue(
                f"This LDAP user store has no attribute for: {', '.join(sorted(lost))} "
                "(map them in [userstores.<DOMAIN>.attributes], or set unmapped = \"ignore\")")


def _covers(have, want) -> bool:
    """``have`` holds every value of ``want`` (``primary`` flags and ``display`` aside)."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_covers(have.get(k), v) for k, v in want.items())
    if isinstance(want, list):
        if not isinstance(have, list):
            return not want
        return all(any(_covers(h, w) for h in have) for w in want)
    if want is None:
        return True
    if isinstance(want, bool) and have is None:
        return False
    return have == want or str(have) == str(want)


def strip_flags(value):
    """A canonical value without the ``primary``/``display`` sub-attributes of its items
    (the directory keeps neither)."""
    if isinstance(value, list):
        return [strip_flags(v) for v in value]
    if isinstance(value, dict):
        return {k: strip_flags(v) for k, v in value.items() if k not in ("primary", "display")}
    return value


def first_value(value):
    if isinstance(value, list):
        return value[0] if value else None
    return value


def values_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _text(value) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return str(value)
