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
advertised in ServiceProviderConfig and enforced with 413. Reading and ordering
the operations is shared with SCIM 1.1 (``gateway.scim_common.bulk``).
"""

from __future__ import annotations

from aiohttp import web

from .. import operations as ops
from ..errors import (
    CircularReference,
    FailedReference,
    GatewayError,
    InvalidSyntax,
    InvalidValue,
    MethodNotAllowed,
)
from ..keys import CONFIG, PIPELINE
from ..scim_common import bulk as shared
from ..scim_common.bulk import BulkOp
from ..scim_common.http import PRINCIPAL, read_json, scim2_base_url, version_of
from .http import error_body, respond
from .patch import parse_patch

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"


def _operation(op: BulkOp, data) -> tuple[ops.Operation, str]:
    """The pipeline operation for one bulk operation, and its resource type."""
    m = shared.PATH.match(op.path)
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
        principal, [shared.substitute(op.data, created) if op.depends else op.data for op in run])
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
    schemas = body.get("schemas")
    if schemas is not None and (not isinstance(schemas, list) or BULK_REQUEST not in schemas):
        raise InvalidSyntax(f"A bulk request has the schema {BULK_REQUEST}")
    operations, fail_on_errors = shared.parse_bulk(body, config.bulk_max_operations)
    ordered, cyclic = shared.order(operations)
    for op in cyclic:
        op.response = _error(op, CircularReference(
            "Circular bulkId references: these operations reference each other"))
    errors = 0  # operations in a cycle failed, but do not stop the others
    created: dict[str, str] = {}  # bulkId -> id
    failed: set[str] = {op.bulk_id for op in cyclic if op.bulk_id}
    base = scim2_base_url(request)
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
        location = None if op.method == "POST" else shared.location(base, op.path)
        try:
            missing = [r for r in op.depends if r not in created]
            if missing:
                ref = missing[0]
                if ref in failed:
                    raise FailedReference(f"bulkId '{ref}' refers to an operation that failed")
                raise InvalidValue(f"Unknown bulkId '{ref}'")
            head, _, tail = op.path.rpartition("/")
            op.path = f"{head}/{shared.substitute(tail, created)}" if head else op.path
            if op.method != "POST":
                location = shared.location(base, op.path)
            data = shared.substitute(op.data, created) if op.depends else op.data
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
