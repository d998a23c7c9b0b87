"""SCIM 1.1 /Bulk (scim-api-01 §3.5).

The request is SCIM 2.0's in another dress (``schemas: [urn:scim:schemas:core:1.0]``,
``failOnErrors``, ``Operations`` of ``method``/``path``/``bulkId``/``version``/``data``),
so it is read, ordered and run by ``gateway.scim_common.bulk`` (``bulkId:`` references
in paths and data, resolved whatever their order; circular ones fail with 409). Each
operation's data is SCIM 1.1 (a PATCH is a partial resource) and runs through the
pipeline on its own (consecutive user creations are written together, as in SCIM 2.0).
Each result carries ``status: {"code": "201"}``, with a ``description`` when it failed,
as charon 1.x and the draft write them.
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
from ..model.dialects.scim11 import CORE, to_canonical
from ..scim_common import bulk as engine
from ..scim_common.bulk import BulkOp
from ..scim_common.http import PRINCIPAL, read_json, version_of
from . import members
from .http import base_url, respond
from .patch import parse_patch


def _status(code: int | str, description: str | None = None) -> dict:
    out = {"code": str(code)}
    if description:
        out["description"] = description
    return out


def _error(op: BulkOp, exc: GatewayError, location: str | None = None) -> dict:
    out: dict = {"method": op.method}
    if op.bulk_id:
        out["bulkId"] = op.bulk_id
    if location:
        out["location"] = location
    out["status"] = _status(exc.status, exc.detail)
    return out


async def _operation(op: BulkOp, data, pipeline, run) -> tuple[ops.Operation, str]:
    """The pipeline operation for one bulk operation, and its endpoint (Users, Groups)."""
    m = engine.PATH.match(op.path)
    if m is None:
        raise InvalidValue(f"Unsupported bulk path {op.path!r} (use /Users, /Groups, "
                           "/Users/{id} or /Groups/{id})")
    kind, rid = m["type"], m["id"]
    is_user = kind == "Users"
    rtype = pipeline.schemas.of(ops.USER if is_user else ops.GROUP)
    if_match = version_of(op.version) if op.version else None
    if op.method == "POST" and rid is not None:
        raise MethodNotAllowed(f"POST goes to /{kind}, not to one resource")
    if op.method != "POST" and rid is None:
        raise MethodNotAllowed(f"{op.method} needs a resource path /{kind}/{{id}}")
    if op.method == "DELETE":
        return (ops.DeleteUser(rid, if_match) if is_user else ops.DeleteGroup(rid, if_match)), kind
    if not isinstance(data, dict):
        raise InvalidSyntax(f"{op.method} needs 'data' with the resource")
    if op.method == "PATCH":
        patch = parse_patch(rtype, data)
        if is_user:
            return ops.PatchUser(rid, patch, if_match), kind

        async def group_domain():
            return (await run(ops.GetGroup(rid, with_members=False))).domain

        patch = await members.resolve_patch(run, patch, group_domain)
        return ops.PatchGroup(rid, patch, if_match, with_members=False), kind
    rep = to_canonical(rtype, data)
    if not is_user:
        key = next((k for k in rep if k.lower() == "members"), None)
        name = next((v for k, v in rep.items() if k.lower() == "displayname"), None)

        async def named_domain():
            return members.group_domain(name)

        if key is not None:
            rep[key] = await members.resolve(run, rep[key], named_domain)
    if op.method == "POST":
        return (ops.CreateUser(rep) if is_user else ops.CreateGroup(rep)), kind
    return (ops.ReplaceUser(rid, rep, if_match) if is_user
            else ops.ReplaceGroup(rid, rep, if_match)), kind


async def bulk(request: web.Request) -> web.Response:
    config = shared(request)[CONFIG]
    pipeline = shared(request)[PIPELINE]
    principal = request[PRINCIPAL]

    async def execute(operation: ops.Operation):
        return await pipeline.execute(principal, operation)

    async def translate(op: BulkOp, data) -> tuple[ops.Operation, str]:
        return await _operation(op, data, pipeline, execute)

    body = await read_json(request, config.bulk_max_payload_bytes)
    schemas = body.get("schemas")
    if schemas is not None and not isinstance(schemas, list):
        raise InvalidSyntax("'schemas' must be an array")
    # SCIM 1.1 names the core schema (SCIM 2.0 a message schema): any is taken
    operations, fail_on_errors = engine.parse_bulk(body, config.bulk_max_operations)
    wire = engine.Wire(translate=translate, failure=_error, status=_status, deleted=200)
    await engine.run(execute, operations, fail_on_errors, base_url(request), wire)
    return respond({
        "schemas": [CORE],
        "Operations": [op.response for op in operations if op.response is not None],
    })
