"""``/Bulk`` requests of both SCIM versions: reading the operations and ordering them.

SCIM 1.1's bulk request (scim-api-01 §3.5) is SCIM 2.0's (RFC 7644 §3.7) in another
dress: ``failOnErrors`` and ``Operations`` of ``method``/``path``/``bulkId``/``version``/
``data``. ``bulkId`` references (``"bulkId:qwerty"`` as a path id or as any value in
the data) are collected here, resolved with :func:`substitute` to the ids the referenced
operations created, and :func:`order` runs an operation after the ones it references,
whatever their order in the request; :func:`run` executes them through the pipeline,
each committing or failing on its own, consecutive user creations written together.
Each version checks its own message schema and gives :func:`run` its :class:`Wire`: how
an operation becomes a pipeline operation and how a result is written.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .. import operations as ops
from ..errors import (
    CircularReference,
    FailedReference,
    GatewayError,
    InvalidSyntax,
    InvalidValue,
    PayloadTooLarge,
)

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


MAX_RUN = 500  # user creations written in one transaction (holding SQLite's write lock)


@dataclass(frozen=True)
class Wire:
    """What differs between the SCIM versions' bulk requests."""
    # the pipeline operation of one bulk operation (its references resolved), and the
    # endpoint of its result (Users, Groups)
    translate: Callable[[BulkOp, object], Awaitable[tuple[ops.Operation, str]]]
    # a failed operation's result: (operation, error, location or None) -> dict
    failure: Callable[[BulkOp, GatewayError, str | None], dict]
    # the ``status`` of a result that succeeded, from its HTTP code
    status: Callable[[int], object]
    deleted: int  # the code of a DELETE that succeeded


async def run(execute, operations: list[BulkOp], fail_on_errors: int | None, base: str,
              wire: Wire) -> None:
    """Run the operations with ``execute`` (the pipeline's, for the caller), leaving each
    one's result in its ``response``."""
    ordered, cyclic = order(operations)
    for op in cyclic:
        op.response = wire.failure(op, CircularReference(
            "Circular bulkId references: these operations reference each other"), None)
    job = _Job(execute, wire, base, fail_on_errors)
    job.failed.update(op.bulk_id for op in cyclic if op.bulk_id)
    position = 0
    while position < len(ordered) and not job.stopped:
        batch = _user_creations(ordered, position, job.created, fail_on_errors)
        if batch:
            await job.create_users(batch)
            position += len(batch)
            continue
        await job.one(ordered[position])
        position += 1


def _user_creations(ordered: list[BulkOp], start: int, created: dict[str, str],
                    fail_on_errors: int | None) -> list[BulkOp]:
    """The run of POST /Users operations starting at ``start`` that can be written together:
    their references are all resolved already (none points into the run itself). With
    failOnErrors each operation runs alone, so that the job stops exactly where it must."""
    if fail_on_errors is not None:
        return []
    batch: list[BulkOp] = []
    for op in ordered[start:start + MAX_RUN]:
        if (op.method != "POST" or op.path != "/Users" or not op.bulk_id
                or not isinstance(op.data, dict) or any(r not in created for r in op.depends)):
            break
        batch.append(op)
    return batch if len(batch) > 1 else []


class _Job:
    def __init__(self, execute, wire: Wire, base: str, fail_on_errors: int | None):
        self.execute = execute
        self.wire = wire
        self.base = base
        self.fail_on_errors = fail_on_errors
        self.errors = 0  # operations in a cycle failed, but do not stop the others
        self.created: dict[str, str] = {}  # bulkId -> id
        self.failed: set[str] = set()

    @property
    def stopped(self) -> bool:
        return self.fail_on_errors is not None and self.errors >= self.fail_on_errors

    def _fail(self, op: BulkOp, exc: GatewayError, location: str | None = None) -> None:
        self.errors += 1
        if op.bulk_id:
            self.failed.add(op.bulk_id)
        op.response = self.wire.failure(op, exc, location)

    def _succeed(self, op: BulkOp, kind: str, result, location: str | None) -> None:
        out: dict = {"method": op.method}
        if op.bulk_id:
            out["bulkId"] = op.bulk_id
        if op.method == "DELETE":
            out["location"] = location
            out["status"] = self.wire.status(self.wire.deleted)
        else:
            out["location"] = f"{self.base}/{kind}/{result.id}"
            out["version"] = f'W/"{result.version}"'
            out["status"] = self.wire.status(201 if op.method == "POST" else 200)
            if op.method == "POST" and op.bulk_id:
                self.created[op.bulk_id] = result.id
        op.response = out

    async def one(self, op: BulkOp) -> None:
        where = None
        try:
            missing = [r for r in op.depends if r not in self.created]
            if missing:
                ref = missing[0]
                if ref in self.failed:
                    raise FailedReference(f"bulkId '{ref}' refers to an operation that failed")
                raise InvalidValue(f"Unknown bulkId '{ref}'")
            head, _, tail = op.path.rpartition("/")
            op.path = f"{head}/{substitute(tail, self.created)}" if head else op.path
            if op.method != "POST":
                where = location(self.base, op.path)
            data = substitute(op.data, self.created) if op.depends else op.data
            operation, kind = await self.wire.translate(op, data)
            result = await self.execute(operation)
        except GatewayError as exc:
            self._fail(op, exc, where)
            return
        self._succeed(op, kind, result, where)

    async def create_users(self, batch: list[BulkOp]) -> None:
        """A run of user creations in one pipeline operation; each still succeeds or fails
        on its own."""
        wanted: list[tuple[BulkOp, str, dict]] = []
        for op in batch:
            try:
                data = substitute(op.data, self.created) if op.depends else op.data
                operation, kind = await self.wire.translate(op, data)
            except GatewayError as exc:
                self._fail(op, exc)
                continue
            if not isinstance(operation, ops.CreateUser) or operation.groups:
                await self.one(op)  # not a plain creation after all
                continue
            wanted.append((op, kind, operation.representation))
        if not wanted:
            return
        try:
            results = await self.execute(ops.CreateUsers(tuple(rep for *_, rep in wanted)))
        except GatewayError as exc:  # not allowed to create users: each fails with it
            results = [exc] * len(wanted)
        for (op, kind, _rep), result in zip(wanted, results, strict=True):
            if isinstance(result, GatewayError):
                self._fail(op, result)
            else:
                self._succeed(op, kind, result, None)
