"""Resolved SCIM filters into SQLAlchemy expressions with bound parameters.

Attributes held in columns compare on the column; every other attribute is a
semi-join (``seq IN (SELECT entity FROM *_values WHERE attr = ... AND value
...)``) that the (attr, sub, value) index answers. ``sw`` becomes an index
range; ``co``/``ew`` use LIKE with escaped patterns (SQLite runs with
``case_sensitive_like`` so caseExact holds there too). Values are always
bound parameters: no text of a filter ever becomes SQL.
"""

from __future__ import annotations

from sqlalchemy import and_, case, false, func, literal, not_, or_, select, true
from sqlalchemy.sql.elements import ColumnElement

from gateway.errors import InvalidFilter
from gateway.model.query import (
    And,
    AttrRef,
    Compare,
    Node,
    Not,
    Or,
    Present,
    ValueFilter,
)
from gateway.model.schema import DECIMAL, INTEGER, REFERENCE, STRING, ResourceType

from . import tables as t
from .indexing import INDEX_LENGTH, index_value

_ESCAPE = "\\"


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _successor(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``."""
    while prefix:
        code = ord(prefix[-1]) + 1
        if code == 0xD800:
            code = 0xE000
        if code <= 0x10FFFF:
            return prefix[:-1] + chr(code)
        prefix = prefix[:-1]
    return None


def compare_text(col, op: str, value: str) -> ColumnElement:
    """Compare a text column whose content is already in comparison form."""
    if op == "eq":
        return col == value
    if op == "ne":
        return or_(col.is_(None), col != value)
    if op == "sw":
        upper = _successor(value)
        if upper is None:
            return col.like(_like_escape(value) + "%", escape=_ESCAPE)
        return and_(col >= value, col < upper)
    if op == "co":
        return col.like("%" + _like_escape(value) + "%", escape=_ESCAPE)
    if op == "ew":
        return col.like("%" + _like_escape(value), escape=_ESCAPE)
    return {"gt": col > value, "ge": col >= value, "lt": col < value, "le": col <= value}[op]


def _operand(ref: AttrRef, op: str, value):
    """The filter value in the form the store compares (lower-cased unless caseExact)."""
    if op in ("co", "sw", "ew"):
        return value if ref.leaf.case_exact else value.lower()
    stored, _num = index_value(ref.leaf, value)
    return stored


class FilterCompiler:
    def __init__(self, rtype: ResourceType):
        self.rtype = rtype
        kind = self.kind = rtype.name
        if kind == "User":
            self.main, self.values = t.users, t.user_values
            self.name_col = t.users.c.user_name_ci
        else:
            self.main, self.values = t.groups, t.group_values
            self.name_col = t.groups.c.display_name_ci
        # aliases built once (building them is a noticeable share of a lookup's cost);
        # each name is used at one nesting level only, so sibling subqueries may share it
        self._alias = {name: self.values.alias(name) for name in ("v", "a", "b", "x", "s", "sp")}
        self._g2 = t.groups.alias("g2")

    # entry ------------------------------------------------------------------
    def point(self, node: Node | None) -> tuple[str, str] | None:
        """For a filter that is one ``eq`` on a column with an index of its own (``id``,
        ``externalId``, ``userName`` of a user, ``displayName`` of a group): the lookup
        (``id``, ``external`` or ``name``) and the value as stored; else None."""
        if not isinstance(node, Compare) or node.op != "eq" or not isinstance(node.value, str):
            return None
        column = self._column(node.ref)
        if column is None or column[0] is None:
            return None
        col, kind = column
        if kind == "ci":
            return "name", node.value.lower()
        if col is self.main.c.id:
            return "id", node.value
        if col is self.main.c.external_id:
            return "external", _operand(node.ref, "eq", node.value)
        return None

    def value_point(self, node: Node | None) -> tuple[str, str, str] | None:
        """For a filter that is one ``eq`` on a string attribute held in the values table
        (``emails.value``, ``name.familyName``, an extension's string): (attribute key,
        sub-attribute or "", the value as stored), the same conditions ``compile`` makes;
        else None."""
        if not isinstance(node, Compare) or node.op != "eq" or not isinstance(node.value, str):
            return None
        ref = node.ref
        if self._column(ref) is not None or self._relation_attr(ref) is not None \
                or ref.leaf.type not in (STRING, REFERENCE):
            return None
        if ref.sub is not None:
            sub = ref.sub.name
        elif not ref.attr.is_complex:
            sub = ""
        else:
            return None
        value = _operand(ref, "eq", node.value)
        if not isinstance(value, str) or len(value) >= INDEX_LENGTH:
            return None
        return ref.key, sub, value

    def compile(self, node: Node) -> ColumnElement:
        if isinstance(node, And):
            return and_(*(self.compile(n) for n in node.terms))
        if isinstance(node, Or):
            return or_(*(self.compile(n) for n in node.terms))
        if isinstance(node, Not):
            return not_(self.compile(node.expr))
        if isinstance(node, Present | Compare):
            column = self._column(node.ref)
            if column is not None:
                return self._on_column(node, *column)
            special = self._relation(node)
            if special is not None:
                return special
            return self._on_values(node)
        if isinstance(node, ValueFilter):
            return self._value_filter(node)
        raise InvalidFilter("Unsupported filter expression")

    # columns ------------------------------------------------------------------
    def _column(self, ref: AttrRef):
        """(column, kind) for attributes held in a column of the main table."""
        m = self.main.c
        key, sub = ref.key, ref.sub.name if ref.sub else None
        if ref.is_common:
            if key == "id":
                return m.id, "exact"
            if key == "externalId":
                return m.external_id, "exact"
            if key == "meta":
                if sub == "created":
                    return m.created, "exact"
                if sub == "lastModified":
                    return m.last_modified, "exact"
                if sub == "resourceType":
                    return None, "resourceType"
                raise InvalidFilter(f"'meta.{sub}' cannot be filtered on")
            if key == "schemas":
                return None, "schemas"
        if self.kind == "User" and key == "userName":
            return self.name_col, "ci"
        if self.kind == "Group" and key == "displayName":
            return self.name_col, "ci"
        if self.kind == "User" and key == "password":
            raise InvalidFilter("'password' cannot be filtered on")
        return None

    def _schemas(self, node) -> ColumnElement:
        """``schemas eq "<urn>"``: the core schema always, an extension when it has values."""
        if isinstance(node, Present):
            return true()
        if node.op not in ("eq", "ne") or not isinstance(node.value, str):
            raise InvalidFilter("'schemas' can only be compared with eq or ne")
        rtype = self.rtype
        urn = node.value.lower()
        if urn == rtype.schema.id.lower():
            hit = true()
        else:
            ext = rtype.extension(urn)
            if ext is None:
                hit = false()
            else:
                v = self._alias["x"]
                hit = self.main.c.seq.in_(select(v.c.entity).where(
                    v.c.attr >= f"{ext.alias}:", v.c.attr < f"{ext.alias};"))
        return hit if node.op == "eq" else not_(hit)

    def _on_column(self, node, col, kind) -> ColumnElement:
        if kind == "schemas":
            return self._schemas(node)
        if kind == "resourceType":
            if isinstance(node, Present):
                return true()
            hit = isinstance(node.value, str) and node.value.lower() == self.kind.lower()
            if node.op == "eq":
                return true() if hit else false()
            if node.op == "ne":
                return false() if hit else true()
            return true() if _py_text(node.op, self.kind.lower(), node.value.lower()) else false()
        if isinstance(node, Present):
            return and_(col.is_not(None), col != "")
        value = node.value
        if kind == "ci":
            value = value.lower()
        elif isinstance(value, str) and node.op not in ("co", "sw", "ew"):
            value = _operand(node.ref, node.op, value)
        return compare_text(col, node.op, value)

    # the values tables ----------------------------------------------------------
    def _cond(self, v, node: Compare | Present, attr_match=True) -> ColumnElement:
        ref = node.ref
        conds = []
        if attr_match:
            conds.append(v.c.attr == ref.key)
        if ref.sub is not None:
            conds.append(v.c.sub == ref.sub.name)
        elif not ref.attr.is_complex:
            conds.append(v.c.sub == "")
        if isinstance(node, Present):
            conds.append(or_(v.c.value.is_(None), v.c.value != ""))
            return and_(*conds)
        op = node.op
        if ref.leaf.type in (INTEGER, DECIMAL):
            num = float(node.value)
            op_eq = "eq" if op == "ne" else op
            conds.append({"eq": v.c.num == num, "gt": v.c.num > num, "ge": v.c.num >= num,
                          "lt": v.c.num < num, "le": v.c.num <= num}[op_eq])
            return and_(*conds)
        value = _operand(ref, op, node.value)
        if value is None:
            return false()
        whole = func.coalesce(v.c.full, v.c.value)
        if op in ("eq", "ne"):
            conds.append(v.c.value == value[:INDEX_LENGTH])
            if len(value) >= INDEX_LENGTH:
                conds.append(whole == value)
        elif op == "sw" and len(value) <= INDEX_LENGTH:
            conds.append(compare_text(v.c.value, op, value))  # an index range
        elif op == "sw":
            conds.append(v.c.value == value[:INDEX_LENGTH])
            conds.append(compare_text(whole, op, value))
        else:
            conds.append(compare_text(whole, op, value))
        return and_(*conds)

    def _on_values(self, node: Compare | Present) -> ColumnElement:
        v = self._alias["v"]
        sub = select(v.c.entity).where(self._cond(v, node))
        if isinstance(node, Compare) and node.op == "ne":
            return self.main.c.seq.not_in(sub)
        return self.main.c.seq.in_(sub)

    def _value_filter(self, node: ValueFilter) -> ColumnElement:
        """``attr[expr]``: some value (item) of the attribute satisfies every part of expr."""
        if self._relation_attr(node.ref) is not None:
            return self._relation(node)
        anchor = self._alias["a"]
        expr = node.expr
        terms = list(expr.terms) if isinstance(expr, And) else [expr]
        lead = next((x for x in terms if isinstance(x, Compare) and x.op != "ne"), None)
        conds = [anchor.c.attr == node.ref.key]
        rest = terms
        if lead is not None:
            conds.append(self._cond(anchor, lead, attr_match=False))
            rest = [x for x in terms if x is not lead]
        for term in rest:
            conds.append(self._item_expr(term, anchor))
        return self.main.c.seq.in_(select(anchor.c.entity).where(and_(*conds)))

    def _item_expr(self, node: Node, anchor) -> ColumnElement:
        if isinstance(node, And):
            return and_(*(self._item_expr(n, anchor) for n in node.terms))
        if isinstance(node, Or):
            return or_(*(self._item_expr(n, anchor) for n in node.terms))
        if isinstance(node, Not):
            return not_(self._item_expr(node.expr, anchor))
        negate = isinstance(node, Compare) and node.op == "ne"
        b = self._alias["b"]
        exists = (
            select(literal(1))
            .where(b.c.entity == anchor.c.entity, b.c.attr == anchor.c.attr,
                   b.c.item == anchor.c.item, self._cond(b, node, attr_match=False))
            .exists()
        )
        return not_(exists) if negate else exists

    # memberships ------------------------------------------------------------------
    def _relation_attr(self, ref: AttrRef) -> str | None:
        if ref.is_common:
            return None
        if self.kind == "User" and ref.key == "groups":
            return "groups"
        if self.kind == "Group" and ref.key == "members":
            return "members"
        return None

    def _relation_source(self, which: str):
        """(query source, column selected, outer column, {sub-attribute: (expr, lower-case?)})."""
        m = t.memberships
        if which == "groups":
            g = t.groups
            cols = {"value": (g.c.id, False), "display": (g.c.display_name_ci, True),
                    "type": (literal("direct"), True)}
            return m.join(g, g.c.seq == m.c.group_seq), m.c.member_id, self.main.c.id, cols
        u, g2 = t.users, self._g2
        source = (m.outerjoin(u, u.c.id == m.c.member_id)
                  .outerjoin(g2, g2.c.id == m.c.member_id))
        cols = {"value": (m.c.member_id, False), "type": (func.lower(m.c.member_type), True),
                "display": (func.coalesce(u.c.user_name_ci, g2.c.display_name_ci), True)}
        return source, m.c.group_seq, self.main.c.seq, cols

    def _row_pred(self, node: Node, cols: dict, which: str) -> ColumnElement:
        """A filter over one membership (one value of groups/members)."""
        if isinstance(node, And):
            return and_(*(self._row_pred(n, cols, which) for n in node.terms))
        if isinstance(node, Or):
            return or_(*(self._row_pred(n, cols, which) for n in node.terms))
        if isinstance(node, Not):
            return not_(self._row_pred(node.expr, cols, which))
        sub = node.ref.sub.name if node.ref.sub else "value"
        if sub not in cols:
            raise InvalidFilter(f"'{which}.{sub}' cannot be filtered on")
        expr, lower = cols[sub]
        if isinstance(node, Present):
            return expr.is_not(None)
        value = node.value.lower() if lower and isinstance(node.value, str) else node.value
        if node.op == "ne":
            return or_(expr.is_(None), expr != value)
        return compare_text(expr, node.op, value)

    def _relation(self, node: Compare | Present | ValueFilter) -> ColumnElement | None:
        which = self._relation_attr(node.ref)
        if which is None:
            return None
        source, selected, outer, cols = self._relation_source(which)
        q = select(selected).select_from(source)
        if isinstance(node, ValueFilter):
            return outer.in_(q.where(self._row_pred(node.expr, cols, which)))
        if isinstance(node, Present):
            return outer.in_(q)
        if node.op == "ne":  # no value of the attribute equals it
            return outer.not_in(q.where(self._row_pred(Compare(node.ref, "eq", node.value),
                                                       cols, which)))
        return outer.in_(q.where(self._row_pred(node, cols, which)))

    # sorting --------------------------------------------------------------------------
    def sort_key(self, ref: AttrRef):
        column = self._column(ref)
        if column is not None and column[0] is not None:
            return column[0]
        if self._relation_attr(ref) is not None:
            raise InvalidFilter(f"Cannot sort by '{ref.dotted}'")
        # RFC 7644 §3.4.2.3: a multi-valued attribute sorts by its primary value, else
        # its first one
        v, p = self._alias["s"], self._alias["sp"]
        conds = [v.c.entity == self.main.c.seq, v.c.attr == ref.key]
        if ref.sub is not None:
            conds.append(v.c.sub == ref.sub.name)
        col = v.c.num if ref.leaf.type in (INTEGER, DECIMAL) else func.coalesce(v.c.full,
                                                                                 v.c.value)
        primary = (select(literal(1)).where(p.c.entity == v.c.entity, p.c.attr == v.c.attr,
                                            p.c.item == v.c.item, p.c.sub == "primary",
                                            p.c.value == "true").exists())
        return (select(col).where(*conds).order_by(case((primary, 0), else_=1), v.c.item)
                .limit(1).scalar_subquery())


def _py_text(op: str, actual: str, expected: str) -> bool:
    return {
        "co": expected in actual, "sw": actual.startswith(expected),
        "ew": actual.endswith(expected), "gt": actual > expected, "ge": actual >= expected,
        "lt": actual < expected, "le": actual <= expected,
    }.get(op, False)
