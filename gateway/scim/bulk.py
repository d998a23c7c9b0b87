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
    GatewayError,
    InvalidSyntax,
    InvalidValue,
    MethodNotAllowed,
)
from ..keys import CONFIG, PIPELINE, shared
from ..scim_common import bulk as engine
from ..scim_common.bulk import BulkOp
from ..scim_common.http import PRINCIPAL, read_json, scim2_base_url, version_of
from .http import error_body, respond
from .patch import parse_patch

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"


def _operation(op: BulkOp, data) -> tuple[ops.Operation, str]:
    """The pipeline operation for one bulk operation, and its resource type."""
    m = engine.PATH.match(op.path)
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


def _error(op: BulkOp, exc: GatewayError, location: str | None = None) -> dict:
    out = {"method": op.method, "status": str(exc.status), "response": error_body(exc)}
    if op.bulk_id:
        out["bulkId"] = op.bulk_id
    if location:
        out["location"] = location
    return out


async def _translate(op: BulkOp, data) -> tuple[ops.Operation, str]:
    return _operation(op, data)


WIRE = engine.Wire(translate=_translate, failure=_error, status=str, deleted=204)


async def bulk(request: web.Request) -> web.Response:
    config = shared(request)[CONFIG]
    pipeline = shared(request)[PIPELINE]
    principal = request[PRINCIPAL]
    body = await read_json(request, config.bulk_max_payload_bytes)
    schemas = body.get("schemas")
    if schemas is not None and (not isinstance(schemas, list) or BULK_REQUEST not in schemas):
        raise InvalidSyntax(f"A bulk request has the schema {BULK_REQUEST}")
    operations, fail_on_errors = engine.parse_bulk(body, config.bulk_max_operations)

    async def execute(operation: ops.Operation):
        return await pipeline.execute(principal, operation)

    await engine.run(execute, operations, fail_on_errors, scim2_base_url(request), WIRE)
    return respond({
        "schemas": [BULK_RESPONSE],
        "Operations": [op.response for op in operations if op.response is not None],
    })
