"""Which rows of ``user_values``/``group_values`` a canonical resource gives.

One row per leaf value: (attr key, sub-attribute, item number, value). The
value is lower-cased unless the attribute is caseExact (that is how the
filter translation compares), booleans are ``true``/``false``, numbers go to
``num``, date-times are stored normalised to UTC. Values longer than
``INDEX_LENGTH`` keep their first characters in the indexed ``value`` column
and the whole text in ``full``, so that comparisons stay exact. Attributes
held in columns of their own are left out.
"""

from __future__ import annotations

from gateway.model.query import normalise_datetime
from gateway.model.schema import BOOLEAN, DATETIME, DECIMAL, INTEGER, Attribute, ResourceType

INDEX_LENGTH = 512  # characters of a value that are indexed; the whole value is kept apart

# canonical top-level attribute keys held in columns (or tables) of their own
COLUMN_ATTRS = {
    "User": {"userName", "password", "groups"},
    "Group": {"displayName", "members"},
}


def index_value(attr: Attribute, value) -> tuple[str | None, float | None]:
    """The (value, num) an attribute value is stored and compared as."""
    kind = attr.type
    if kind == BOOLEAN:
        return ("true" if value else "false"), None
    if kind in (INTEGER, DECIMAL):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, None
        return None, float(value)
    if not isinstance(value, str):
        return None, None
    if kind == DATETIME:
        try:
            value = normalise_datetime(value)
        except ValueError:
            pass
    elif not attr.case_exact:
        value = value.lower()
    return value, None


def rows(rtype: ResourceType, entity: int, data: dict, unique_only: bool = False) -> list[dict]:
    """The rows of one resource (with ``unique_only``: those of attributes declared unique,
    other than the names held in unique columns)."""
    out: list[dict] = []
    skip = COLUMN_ATTRS[rtype.name]
    for schema in rtype.schemas:
        holder = data.get(schema.id) if schema.alias else data
        if not isinstance(holder, dict):
            continue
        for attr in schema.attributes:
            if not schema.alias and attr.name in skip:
                continue
            if unique_only and (attr.uniqueness == "none" or attr.is_complex):
                continue
            value = holder.get(attr.name)
            if value is None:
                continue
            key = schema.key(attr)
            items = value if attr.multi_valued else [value]
            for i, item in enumerate(items):
                if attr.is_complex:
                    if not isinstance(item, dict):
                        continue
                    for sub in attr.sub_attributes:
                        sv = item.get(sub.name)
                        if sv is not None:
                            _row(out, entity, key, sub, sub.name, i, sv)
                else:
                    _row(out, entity, key, attr, "", i, item)
    return out


def _row(out: list, entity: int, key: str, attr: Attribute, sub: str, item: int, value) -> None:
    v, num = index_value(attr, value)
    if v is None and num is None:
        return
    full = None
    if v is not None and len(v) > INDEX_LENGTH:
        v, full = v[:INDEX_LENGTH], v
    out.append({"entity": entity, "attr": key, "sub": sub, "item": item, "value": v,
                "full": full, "num": num})
