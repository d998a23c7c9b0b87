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
from dataclasses import dataclass, field, replace

from gateway.errors import InvalidValue
from gateway.model.dialect import Dialect
from gateway.model.match import item_matches
from gateway.model.patch import apply_patch
from gateway.model.query import And, AttrRef, Compare, Node
from gateway.model.schema import ENTERPRISE_USER, ResourceType

from .account_state import (
    ACCOUNT_DISABLED,
    account_control,
    add_state,
    lock_attribute,
    without_state,
)

E = ENTERPRISE_USER

# ``mail`` is the user's primary e-mail, a work address (WSO2 maps its emailaddress claim,
# the primary e-mail, to ``mail``): it reads back as {"type": "work", "primary": true}, and
# takes the primary e-mail, a work e-mail or one of no type (``Mapping._slot_values``)
PRIMARY_EMAIL = 'emails[type eq "work" and primary eq true].value'

OPENLDAP_USER_MAP = {
    "uid": "userName",
    "cn": "name.formatted",
    "sn": "name.familyName",
    "givenName": "name.givenName",
    "displayName": "displayName",
    "mail": PRIMARY_EMAIL,
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
    "mail": PRIMARY_EMAIL,
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
        self.slots = _slots(self.users)
        self._slotted = {attr for slot in self.slots for attr, _ in slot.attrs}
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
        control = first_value(attrs.get("userAccountControl"))
        if self.flavor.is_ad and control not in (None, ""):  # (an entry may have none)
            data["active"] = not int(control) & ACCOUNT_DISABLED
        return add_state(self.flavor, attrs, data)

    # writing ---------------------------------------------------------------------------
    def user_entry(self, data: dict, current: dict | None = None) -> dict[str, list[str]]:
        """The LDAP attributes of a canonical user (every mapped attribute, [] if empty),
        over the entry's ``current`` attributes if it has one. The directory's lock is
        not among them (``account_state.lock_changes``)."""
        data = without_state(data)
        out: dict[str, list[str]] = {}
        held = self._slot_values(data)
        for attr in self.users.table:
            values = held.get(attr, []) if attr in self._slotted else self.users.read(data, attr)
            out[attr] = [_text(v) for v in values if v not in (None, "")]
            # an entry's further values (a second mail set in the directory), which a user
            # does not show, are kept while the value shown is unchanged
            old = [str(v) for v in values_list((current or {}).get(attr))]
            if attr in self._slotted and len(old) > 1 and out[attr] == old[:1]:
                out[attr] = old
        for attr in self.flavor.fill:
            if attr in out and not out[attr]:
                out[attr] = [data["userName"]]
        if self.flavor.is_ad:
            out["userAccountControl"] = [account_control(
                data.get("active", True), first_value((current or {}).get("userAccountControl")))]
        self._check_lossless(data, out)
        return out

    def _slot_values(self, data: dict) -> dict[str, list]:
        """The values of the LDAP attributes that hold one item of a multi-valued attribute
        (``mail``: one of ``emails``), each slot given at most one item: first an item its
        filter matches, then one that contradicts none of the filter's terms (an e-mail
        without a type, or without a primary flag, can be the primary work e-mail), the one
        that agrees with most of them, the primary first. What finds no slot is left for
        ``_check_lossless`` to refuse."""
        out: dict[str, list] = {}
        by_key: dict[str, list[_Slot]] = {}
        for slot in self.slots:
            by_key.setdefault(slot.ref.key, []).append(slot)
        for slots in by_key.values():
            ref = slots[0].ref
            items = [i for i in (ref.container(data) or {}).get(ref.attr.name) or []
                     if isinstance(i, dict)]
            if not items:
                continue
            taken: dict[int, int] = {}  # slot -> item
            for n, slot in enumerate(slots):
                for i, item in enumerate(items):
                    if i not in taken.values() and item_matches(slot.node, item):
                        taken[n] = i
                        break
            for n, slot in enumerate(slots):
                if n in taken or slot.terms is None:
                    continue
                fits = [(fit, i) for i, item in enumerate(items) if i not in taken.values()
                        for fit in [_fit(slot.terms, item)] if fit is not None]
                if fits:
                    taken[n] = max(fits, key=lambda f: (f[0], -f[1]))[1]
            for n, i in taken.items():
                for attr, sub in slots[n].attrs:
                    value = items[i].get(sub)
                    if value not in (None, ""):
                        out[attr] = [value]
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
                lost.append(key + _which(back.get(key), strip_flags(value)))
        if lost:
            raise InvalidValue(
                f"This LDAP user store has no attribute for: {', '.join(sorted(lost))} "
                "(map them in [userstores.<DOMAIN>.attributes], or set unmapped = \"ignore\")")


@dataclass
class _Slot:
    """The LDAP attributes holding one item of a multi-valued complex attribute: those whose
    paths share one value filter (``mail``: ``emails[type eq "work" and primary eq true]``;
    ``street``, ``l``, …: ``addresses[type eq "work"]``)."""

    ref: AttrRef
    node: Node  # the value filter
    terms: dict[str, str] | None  # its eq terms (sub-attribute -> value as lower-case text)
    attrs: list[tuple[str, str]] = field(default_factory=list)  # (LDAP attribute, sub)


def _eq_terms(node: Node) -> dict[str, str] | None:
    terms = node.terms if isinstance(node, And) else (node,)
    out = {}
    for term in terms:
        if not isinstance(term, Compare) or term.op != "eq" or term.ref.sub is None:
            return None
        out[term.ref.sub.name] = _lower(term.value)
    return out


def _lower(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value).lower()


def _slots(dialect: Dialect) -> list[_Slot]:
    slots: dict[tuple, _Slot] = {}
    for attr, path in dialect.table.items():
        pref = dialect.path(attr)
        if pref.value_filter is None or pref.sub is None or not pref.ref.attr.multi_valued \
                or not pref.ref.attr.is_complex:
            continue
        terms = _eq_terms(pref.value_filter)
        key = (pref.ref.key, frozenset(terms.items()) if terms is not None
               else path[:path.rindex("]")])
        slot = slots.setdefault(key, _Slot(pref.ref, pref.value_filter, terms))
        slot.attrs.append((attr, pref.sub.name))
    return list(slots.values())


def _fit(terms: dict[str, str], item: dict) -> tuple[int, bool] | None:
    """How well an item suits a slot's terms: (terms it agrees with, is it primary), or
    None when it contradicts one (another type). ``primary`` is a flag, never data: an
    item that is not primary contradicts nothing."""
    agree = 0
    for sub, want in terms.items():
        have = item.get(sub)
        if have is None:
            continue
        if _lower(have) == want:
            agree += 1
        elif sub != "primary":
            return None
    return agree, item.get("primary") is True


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
    # (as the directory matches them: a "Work" e-mail is the work e-mail)
    return have == want or str(have).lower() == str(want).lower()


def _which(have, want) -> str:
    """Which values of a multi-valued attribute the store cannot hold, as a note after its
    name: their types (``emails (type "home")``), or that it holds fewer of them."""
    if not isinstance(want, list) or not want or not all(isinstance(w, dict) for w in want):
        return ""
    have = have if isinstance(have, list) else []
    missing = [w for w in want if not any(_covers(h, w) for h in have)]
    held = {str(h.get("type")).lower() for h in have if isinstance(h, dict) and h.get("type")}
    types = sorted({str(w["type"]) for w in missing if w.get("type")
                    and str(w["type"]).lower() not in held})
    if types:
        return " (type " + ", ".join(f'"{t}"' for t in types) + ")"
    return f" ({len(want)} values; it holds {len(have)})" if len(want) > len(have) else ""


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
