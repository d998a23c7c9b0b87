"""SCIM 2.0 /Bulk (RFC 7644 §3.7).

Operations run one by one through the pipeline, each committing or failing on
its own. ``bulkId`` references (``"bulkId:qwerty"`` as a path id or as any
value in the data, e.g. group members or a manager) are resolved to the ids
the referenced operations created, whatever their order in the request: an
operation runs after the ones it references; operations that reference each
other in a circle fail with 409; a reference to an unknown or failed
operation fails with 400/409 for the referencing operation only.
``failOnErrors`` stops the job after that many errors. The limits
(``[limits] bulk_max_operations`` and ``bulk_max_payload_bytes``) are
advertised in ServiceProviderConfig and enforced with 413.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from aiohttp import web

from .. import operations as ops
from ..errors import (
    CircularReference,
    FailedReference,
    GatewayError,
    InvalidSyntax,
    InvalidValue,
    MethodNotAllowed,
    PayloadTooLarge,
)
from ..keys import CONFIG, PIPELINE
from .http import error_body, read_json, respond, version_of
from .patch import parse_patch
from .resources import PRINCIPAL, base_url

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
_REF = "bulkId:"
_PATH = re.compile(r"^/(?P<type>Users|Groups)(?:/(?P<id>[^/]+))?$")


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
        if value.startswith(_REF):
            out.add(value[len(_REF):])
    elif isinstance(value, list):
        for v in value:
            _refs(v, out)
    elif isinstance(value, dict):
        for v in value.values():
            _refs(v, out)


def _substitute(value, ids: dict[str, str]):
    if isinstance(value, str) and value.startswith(_REF):
        return ids[value[len(_REF):]]
    if isinstance(value, list):
        return [_substitute(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, ids) for k, v in value.items()}
    return value


def parse_bulk(body: dict, max_operations: int) -> tuple[list[BulkOp], int | None]:
    schemas = body.get("schemas")
    if schemas is not None and (not isinstance(schemas, list) or BULK_REQUEST not in schemas):
        raise InvalidSyntax(f"A bulk request has the schema {BULK_REQUEST}")
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


def _order(operations: list[BulkOp]) -> tuple[list[BulkOp], list[BulkOp]]:
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


def _location(base: str, path: str) -> str | None:
    m = _PATH.match(path)
    if m is None or m["id"] is None or m["id"].startswith(_REF):
        return None
    return f"{base}/{m['type']}/{m['id']}"


def _operation(op: BulkOp, data) -> tuple[ops.Operation, str]:
    """The pipeline operation for one bulk operation, and its resource type."""
    m = _PATH.match(op.path)
    if m is None:
        raise InvalidValue(f"Unsupported bulk path {op.path!r} (use /Users, /Groups, "
                           "/Users/{id} or /Groups/{id})")
    kind, rid = m["type"], m["id"]
    is_user = kind == "Users"
    if_match = version_of(op.version) if op.version else None
    if op.method == "POST":
        if rid is not None:
            raise MethodNotAllowed(f"POST goes to /{kind}, not to one resource")
        if not op.bulk_id:
            raise InvalidValue("A POST in a bulk request needs a bulkId")
        if not isinstance(data, dict):
            raise InvalidSyntax("POST needs 'data' with the resource")
        return (ops.CreateUser(data) if is_user else ops.CreateGroup(data)), kind
    if rid is None:
        raise MethodNotAllowed(f"{op.method} needs a resource path /{kind}/{{id}}")
    if op.method == "DELETE":
        return (ops.DeleteUser(rid, if_match) if is_user else ops.DeleteGroup(rid, if_match)), kind
    if not isinstance(data, dict):
        raise InvalidSyntax(f"{op.method} needs 'data' with the resource or PatchOp")
    if op.method == "PUT":
        return (ops.ReplaceUser(rid, data, if_match) if is_user
                else ops.ReplaceGroup(rid, data, if_match)), kind
    patch = parse_patch(data)
    return (ops.PatchUser(rid, patch, if_match) if is_user
            else ops.PatchGroup(rid, patch, if_match, with_members=False)), kind


MAX_RUN = 500  # user creations written in one transaction (holding SQLite's write lock)


def _user_creations(ordered: list[BulkOp], start: int, created: dict[str, str],
                    fail_on_errors: int | None) -> list[BulkOp]:
    """The run of POST /Users operations starting at ``start`` that can be written together:
    their references are all resolved already (none points into the run itself). With
    failOnErrors each operation runs alone, so that the job stops exactly where it must."""
    if fail_on_errors is not None:
        return []
    run: list[BulkOp] = []
    for op in ordered[start:start + MAX_RUN]:
        if (op.method != "POST" or op.path != "/Users" or not op.bulk_id
                or not isinstance(op.data, dict) or any(r not in created for r in op.depends)):
            break
        run.append(op)
    return run if len(run) > 1 else []


async def _create_users(pipeline, principal, run: list[BulkOp], created: dict[str, str],
                        failed: set[str], base: str) -> int:
    """Write a run of user creations together; each still succeeds or fails on its own."""
    results = await pipeline.create_users(
        principal, [_substitute(op.data, created) if op.depends else op.data for op in run])
    errors = 0
    for op, result in zip(run, results, strict=True):
        if isinstance(result, GatewayError):
            errors += 1
            failed.add(op.bulk_id)
            op.response = _error(op, result)
            continue
        created[op.bulk_id] = result.id
        op.response = {"method": "POST", "bulkId": op.bulk_id,
                       "location": f"{base}/Users/{result.id}",
                       "version": f'W/"{result.version}"', "status": "201"}
    return errors


def _error(op: BulkOp, exc: GatewayError, location: str | None = None) -> dict:
    out = {"method": op.method, "status": str(exc.status), "response": error_body(exc)}
    if op.bulk_id:
        out["bulkId"] = op.bulk_id
    if location:
        out["location"] = location
    return out


async def bulk(request: web.Request) -> web.Response:
    config = request.config_dict[CONFIG]
    pipeline = request.config_dict[PIPELINE]
    principal = request[PRINCIPAL]
    body = await read_json(request, config.bulk_max_payload_bytes)
    operations, fail_on_errors = parse_bulk(body, config.bulk_max_operations)
    ordered, cyclic = _order(operations)
    for op in cyclic:
        op.response = _error(op, CircularReference(
            "Circular bulkId references: these operations reference each other"))
    errors = 0  # operations in a cycle failed, but do not stop the others
    created: dict[str, str] = {}  # bulkId -> id
    failed: set[str] = {op.bulk_id for op in cyclic if op.bulk_id}
    base = base_url(request)
    position = 0
    while position < len(ordered):
        if fail_on_errors is not None and errors >= fail_on_errors:
            break
        run = _user_creations(ordered, position, created, fail_on_errors)
        if run:
            errors += await _create_users(pipeline, principal, run, created, failed, base)
            position += len(run)
            continue
        op = ordered[position]
        position += 1
        location = None if op.method == "POST" else _location(base, op.path)
        try:
            missing = [r for r in op.depends if r not in created]
            if missing:
                ref = missing[0]
                if ref in failed:
                    raise FailedReference(f"bulkId '{ref}' refers to an operation that failed")
                raise InvalidValue(f"Unknown bulkId '{ref}'")
            head, _, tail = op.path.rpartition("/")
            op.path = f"{head}/{_substitute(tail, created)}" if head else op.path
            if op.method != "POST":
                location = _location(base, op.path)
            data = _substitute(op.data, created) if op.depends else op.data
            operation, kind = _operation(op, data)
            result = await pipeline.execute(principal, operation)
        except GatewayError as exc:
            errors += 1
            if op.bulk_id:
                failed.add(op.bulk_id)
            op.response = _error(op, exc, location)
            continue
        out: dict = {"method": op.method}
        if op.bulk_id:
            out["bulkId"] = op.bulk_id
        if op.method == "DELETE":
            out["location"] = location
            out["status"] = "204"
        else:
            out["location"] = f"{base}/{kind}/{result.id}"
            out["version"] = f'W/"{result.version}"'
            out["status"] = "201" if op.method == "POST" else "200"
            if op.method == "POST" and op.bulk_id:
                created[op.bulk_id] = result.id
        op.response = out
    return respond({
        "schemas": [BULK_RESPONSE],
        "Operations": [op.response for op in operations if op.response is not None],
    })
