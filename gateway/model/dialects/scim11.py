"""The SCIM 1.1 dialect: its names and shapes to and from the canonical (SCIM 2.0-shaped)
model, by tables.

SCIM 1.1 (the ``scim-core-schema-01`` draft, WSO2 charon 1.x) has the same core
User and Group attributes as SCIM 2.0; what differs is said in the tables
below and nowhere else:

- the schema URNs (``urn:scim:schemas:core:1.0``; the enterprise extension
  ``urn:scim:schemas:extension:enterprise:1.0``, which WSO2 also accepts as
  ``urn:scim:schemas:extension:wso2:1.0`` under the key ``wso2Extension``);
- sub-attributes named otherwise (the enterprise ``manager.managerId`` is
  ``manager.value``) or absent (``$ref``; ``meta.resourceType``);
- dates written to the second (``2013-07-09T13:27:58Z``), as WSO2 and charon's
  ``yyyy-MM-dd'T'HH:mm:ss`` parser expect;
- ``"operation": "delete"`` on a value of a multi-valued attribute (PATCH).

Extensions without a SCIM 1.1 name (``urn:scim:wso2:schema``, configured ones)
keep their URN both ways.

Used by the SCIM 1.1 API (``gateway.scim11``) and by the SCIM connector for SCIM 1.1
targets (``connectors.scim_body``, ``connectors.scim_http``).
"""

from __future__ import annotations

import re
from datetime import datetime

from ...errors import InvalidSyntax, InvalidValue
from ..parsing import resolve_sort
from ..schema import (
    CORE_GROUP,
    CORE_USER,
    DATETIME,
    ENTERPRISE_USER,
    REFERENCE,
    STRING,
    ResourceType,
)

CORE = "urn:scim:schemas:core:1.0"
ENTERPRISE = "urn:scim:schemas:extension:enterprise:1.0"
WSO2 = "urn:scim:schemas:extension:wso2:1.0"
WSO2_KEY = "wso2Extension"

# canonical core schemas, written as the SCIM 1.1 core schema
CORE_SCHEMAS = (CORE_USER, CORE_GROUP)
# canonical extension -> its SCIM 1.1 names: the first is written, all are read (a name
# without "urn:" is a key of the resource, as WSO2's "wso2Extension")
EXTENSIONS: dict[str, tuple[str, ...]] = {
    ENTERPRISE_USER: (ENTERPRISE, WSO2, WSO2_KEY),
}
# sub-attributes named otherwise in SCIM 1.1: canonical schema -> attribute -> {canonical: 1.1}
RENAMED: dict[str, dict[str, dict[str, str]]] = {
    ENTERPRISE_USER: {"manager": {"value": "managerId"}},
}
# sub-attributes SCIM 1.1 does not have (left out on output)
NOT_IN_SCIM11 = frozenset({"$ref"})
# meta sub-attributes SCIM 1.1 has, and those of them that are dates
META = ("created", "lastModified", "location", "version")
META_DATES = ("created", "lastModified")
# the PATCH marker on a value of a multi-valued attribute
OPERATION, DELETE = "operation", "delete"

_EXT_OUT = {urn: names[0] for urn, names in EXTENSIONS.items()}
_EXT_IN = {name.lower(): urn for urn, names in EXTENSIONS.items() for name in names}
# longest first, so that "urn:...:wso2:1.0" is tried before a shorter name
_PREFIXES = sorted([*_EXT_IN.items(), (CORE.lower(), "")], key=lambda kv: -len(kv[0]))
_KEYS = {urn: [n.lower() for n in names if not n.lower().startswith("urn:")]
         for urn, names in EXTENSIONS.items()}
_IGNORED_IN = {"schemas", "id", "meta"}


# names ------------------------------------------------------------------------------------
def extension_urn(rtype: ResourceType, key: str) -> str | None:
    """The canonical URN of an extension named by a SCIM 1.1 key, None if it names none."""
    urn = _EXT_IN.get(key.lower())
    if urn is not None and rtype.extension(urn) is not None:
        return urn
    ext = rtype.extension(key) if key.lower().startswith("urn:") else None
    return ext.id if ext is not None else None


def _renamed_in(urn: str | None, path: str) -> str:
    """``manager.managerId`` -> ``manager.value`` (in ``urn``, or in whichever schema has it)."""
    attr, dot, sub = path.partition(".")
    if not dot:
        return path
    tables = [RENAMED.get(urn, {})] if urn else list(RENAMED.values())
    for table in tables:
        for name, subs in table.items():
            if name.lower() != attr.lower():
                continue
            for canonical, old in subs.items():
                if old.lower() == sub.lower():
                    return f"{attr}.{canonical}"
    return path


def canonical_path(text: str) -> str:
    """A SCIM 1.1 attribute path (filter, sortBy, attributes, meta.attributes) as canonical.

    ``urn:scim:schemas:extension:enterprise:1.0:employeeNumber`` (or with ``.`` after the
    URN, or WSO2's ``wso2Extension.employeeNumber``) -> the canonical enterprise URN path;
    ``urn:scim:schemas:core:1.0:userName`` -> ``userName``; renamed sub-attributes mapped.
    """
    path = text.strip()
    low = path.lower()
    for name, urn in _PREFIXES:
        if low == name:
            return urn or path
        if low.startswith(name) and len(low) > len(name) and low[len(name)] in ":.":
            rest = path[len(name) + 1:]
            for key in _KEYS.get(urn, ()):  # "urn:...:wso2:1.0:wso2Extension.costCenter"
                if rest.lower().startswith(key + "."):
                    rest = rest[len(key) + 1:]
            rest = _renamed_in(urn or None, rest)
            return f"{urn}:{rest}" if urn else rest
    return _renamed_in(None, path)


def canonical_attributes(text: str | None) -> str | None:
    """A comma-separated ``attributes`` list, each name canonical."""
    if not text:
        return text
    return ",".join(canonical_path(p) for p in text.split(",") if p.strip())


_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_TERM = re.compile(
    r"(?<![\w.:$/-])(?P<attr>[A-Za-z][\w.:$-]*)(?P<gap>\s+)"
    r"(?:(?P<pr>pr)\b|(?P<op>eq|ne|co|sw|ew|gt|ge|lt|le)\b"
    r"(?:(?P<gap2>\s+)(?P<value>[^\s\"'()\[\]]+))?)", re.IGNORECASE)
_NON_STRING = re.compile(r"^(?:true|false|null|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)$", re.IGNORECASE)


def canonical_filter(rtype: ResourceType, text: str) -> str:
    """A SCIM 1.1 filter with canonical attribute names (quoted values are left alone).

    WSO2's clients send values unquoted (``userName Eq 000111``): a bare value that would
    read as a number or boolean is quoted when the attribute compared is a string, so that
    it stays the string it was meant to be.
    """
    def term(m: re.Match) -> str:
        attr = canonical_path(m["attr"])
        if m["pr"]:
            return f"{attr}{m['gap']}{m['pr']}"
        value = m["value"]
        if value is None:
            return f"{attr}{m['gap']}{m['op']}"
        if _NON_STRING.match(value) and value.lower() != "null" and _is_text(rtype, attr):
            value = f'"{value}"'
        return f"{attr}{m['gap']}{m['op']}{m['gap2']}{value}"

    out, last = [], 0
    for quoted in _QUOTED.finditer(text):
        out.append(_TERM.sub(term, text[last:quoted.start()]))
        out.append(quoted[0])
        last = quoted.end()
    out.append(_TERM.sub(term, text[last:]))
    return "".join(out)


def _is_text(rtype: ResourceType, attr: str) -> bool:
    try:
        ref = resolve_sort(rtype, attr)
    except Exception:  # noqa: BLE001 - the filter parser reports bad names itself
        return False
    return ref.leaf.type in (STRING, REFERENCE, DATETIME)


# representations in ----------------------------------------------------------------------------
def _value_in(urn: str | None, name: str, value, *, patch: bool):
    """One attribute's SCIM 1.1 value in canonical shape. Outside PATCH, values marked
    ``"operation": "delete"`` mean nothing and are dropped; in PATCH the marker is kept."""
    tables = [RENAMED.get(urn, {})] if urn else []
    renames = {old.lower(): new for table in tables for a, subs in table.items()
               if a.lower() == name.lower() for new, old in subs.items()}

    def item(v):
        if not isinstance(v, dict):
            return v
        return {renames.get(k.lower(), k): sub for k, sub in v.items()}

    if isinstance(value, list):
        items = [item(v) for v in value]
        if patch:
            return items
        return [{k: s for k, s in v.items() if k.lower() != OPERATION} if isinstance(v, dict)
                else v for v in items if not _is_delete(v)]
    return item(value)


def _is_delete(value) -> bool:
    if not isinstance(value, dict):
        return False
    op = next((v for k, v in value.items() if k.lower() == OPERATION), None)
    if op is None:
        return False
    if not isinstance(op, str) or op.lower() != DELETE:
        raise InvalidValue(f"'operation' can only be \"delete\", not {op!r}")
    return True


def to_canonical(rtype: ResourceType, body, *, patch: bool = False) -> dict:
    """A SCIM 1.1 resource (POST/PUT/PATCH body, bulk data) with canonical names.

    ``schemas``, ``id`` and ``meta`` are left out (PATCH reads ``meta.attributes`` itself);
    values are validated afterwards by the pipeline, against the canonical schema.
    """
    if not isinstance(body, dict):
        raise InvalidSyntax("The body must be a JSON object")
    out: dict = {}
    for key, value in body.items():
        if not isinstance(key, str) or key.lower() in _IGNORED_IN:
            continue
        urn = extension_urn(rtype, key)
        if urn is not None:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise InvalidValue(f"'{key}' takes an object")
            target = out.setdefault(urn, {})
            for name, sub_value in value.items():
                target[name] = _value_in(urn, name, sub_value, patch=patch)
            continue
        if key.lower().startswith("urn:"):  # one URN-qualified attribute
            path = canonical_path(key)
            head, _, name = path.rpartition(":")
            out[path] = _value_in(head or None, name, value, patch=patch)
            continue
        out[key] = _value_in(None, key, value, patch=patch)
    return out


def is_delete(value) -> bool:
    """Whether a value of a multi-valued attribute is marked ``"operation": "delete"``."""
    return _is_delete(value)


def without_operation(value: dict) -> dict:
    return {k: v for k, v in value.items() if k.lower() != OPERATION}


# representations out ----------------------------------------------------------------------------
def _datetime(text):
    if not isinstance(text, str):
        return text
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return text


def _attrs_out(urn: str, holder: dict, skip=()) -> dict:
    renames = RENAMED.get(urn, {})

    def item(name: str, value):
        if not isinstance(value, dict):
            return value
        subs = renames.get(name, {})
        return {subs.get(k, k): v for k, v in value.items() if k not in NOT_IN_SCIM11}

    out = {}
    for name, value in holder.items():
        if name in skip:
            out[name] = value
        elif isinstance(value, list):
            out[name] = [item(name, v) for v in value]
        else:
            out[name] = item(name, value)
    return out


def to_scim11(resource: dict) -> dict:
    """A rendered canonical resource (``gateway.scim_common.render``) as SCIM 1.1 JSON."""
    core = next((s for s in resource.get("schemas", ()) if s in CORE_SCHEMAS), CORE_USER)
    out: dict = {}
    plain = {}
    for key, value in resource.items():
        if key == "schemas":
            out["schemas"] = [CORE if s in CORE_SCHEMAS else _EXT_OUT.get(s, s) for s in value]
        elif key == "meta" and isinstance(value, dict):
            out["meta"] = {k: _datetime(value[k]) if k in META_DATES else value[k]
                           for k in META if k in value}
        elif key.startswith("urn:") and isinstance(value, dict):
            out[_EXT_OUT.get(key, key)] = _attrs_out(key, value)
        else:
            plain[key] = value
            out[key] = None  # keeps the order
    out.update(_attrs_out(core, plain))
    return out
