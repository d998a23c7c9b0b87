"""``/Bulk`` requests of both SCIM versions: reading the operations and ordering them.

SCIM 1.1's bulk request (scim-api-01 §3.5) is SCIM 2.0's (RFC 7644 §3.7) in another
dress: ``failOnErrors`` and ``Operations`` of ``method``/``path``/``bulkId``/``version``/
``data``. ``bulkId`` references (``"bulkId:qwerty"`` as a path id or as any value in
the data) are collected here, resolved with :func:`substitute` to the ids the referenced
operations created, and :func:`order` runs an operation after the ones it references,
whatever their order in the request. Each version checks its own message schema,
turns an operation into a pipeline operation and writes the results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import InvalidSyntax, InvalidValue, PayloadTooLarge

REF = "bulkId:"
PATH = re.compile(r"^/(?P<type>Users|Groups)(?:/(?P<id>[^/]+))?$")


@dataclass
class BulkOp:
    index: int
    method: str
    path: str
    bulk_id: str | None
    version: str | None
    data: object
    depends: set[str] = field(default_factory=set)
    response: dict | None = None


def _refs(value, out: set[str]) -> None:
    if isinstance(value, str):
        if value.startswith(REF):
            out.add(value[len(REF):])
    elif isinstance(value, list):
        for v in value:
            _refs(v, out)
    elif isinstance(value, dict):
        for v in value.values():
            _refs(v, out)


def substitute(value, ids: dict[str, str]):
    """``value`` with every ``bulkId:`` reference replaced by the id it was created with."""
    if isinstance(value, str) and value.startswith(REF):
        return ids[value[len(REF):]]
    if isinstance(value, list):
        return [substitute(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, ids) for k, v in value.items()}
    return value


def parse_bulk(body: dict, max_operations: int) -> tuple[list[BulkOp], int | None]:
    """The operations of a bulk request and its ``failOnErrors`` (``schemas`` is not read)."""
    operations = body.get("Operations")
    if not isinstance(operations, list):
        raise InvalidSyntax("A bulk request needs an 'Operations' array")
    if len(operations) > max_operations:
        raise PayloadTooLarge(f"At most {max_operations} operations per bulk request")
    fail_on_errors = body.get("failOnErrors")
    if fail_on_errors is not None and (not isinstance(fail_on_errors, int)
                                       or isinstance(fail_on_errors, bool)
                                       or fail_on_errors < 1):
        raise InvalidValue("failOnErrors must be a positive integer")
    out, seen = [], set()
    for i, item in enumerate(operations):
        if not isinstance(item, dict):
            raise InvalidSyntax(f"Operations[{i}] must be an object")
        method = item.get("method")
        path = item.get("path")
        bulk_id = item.get("bulkId")
        if not isinstance(method, str) or method.upper() not in ("POST", "PUT", "PATCH",
                                                                 "DELETE"):
            raise InvalidValue(f"Operations[{i}].method must be POST, PUT, PATCH or DELETE")
        if not isinstance(path, str):
            raise InvalidValue(f"Operations[{i}].path is required")
        if bulk_id is not None:
            if not isinstance(bulk_id, str) or not bulk_id:
                raise InvalidValue(f"Operations[{i}].bulkId must be a non-empty string")
            if bulk_id in seen:
                raise InvalidValue(f"bulkId '{bulk_id}' is used twice")
            seen.add(bulk_id)
        version = item.get("version")
        op = BulkOp(i, method.upper(), path, bulk_id,
                    version if isinstance(version, str) else None, item.get("data"))
        _refs(op.path.rpartition("/")[2], op.depends)
        _refs(op.data, op.depends)
        out.append(op)
    return out, fail_on_errors


def order(operations: list[BulkOp]) -> tuple[list[BulkOp], list[BulkOp]]:
    """(operations in an order that honours bulkId references, those in a cycle).

    Tarjan's strongly connected components, iterative (a chain of ``maxOperations``
    references must not hit the recursion limit): a component is emitted after every
    component it references, and an operation is circular when its component has more
    than one operation or it references itself.
    """
    by_id = {op.bulk_id: op.index for op in operations if op.bulk_id}
    edges = [[by_id[r] for r in sorted(op.depends) if r in by_id] for op in operations]
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    components: list[list[int]] = []
    for root in range(len(operations)):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = len(index)
                stack.append(v)
                on_stack.add(v)
            if i < len(edges[v]):
                work.append((v, i + 1))
                w = edges[v][i]
                if w not in index:
                    work.append((w, 0))
                continue
            for w in edges[v]:
                if w in on_stack:
                    low[v] = min(low[v], low[w])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                components.append(component)
    cyclic = {i for c in components for i in c if len(c) > 1 or i in edges[i]}
    ordered = [operations[i] for c in components for i in sorted(c) if i not in cyclic]
    return ordered, [op for op in operations if op.index in cyclic]


def location(base: str, path: str) -> str | None:
    """The URL of the resource a bulk path names (None for a collection or a reference)."""
    m = PATH.match(path)
    if m is None or m["id"] is None or m["id"].startswith(REF):
        return None
    return f"{base}/{m['type']}/{m['id']}"
