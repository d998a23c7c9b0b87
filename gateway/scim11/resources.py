"""SCIM 1.1 /Users and /Groups: wire in, canonical operation, pipeline, wire out.

Rendering is SCIM 2.0's (``gateway.scim_common.render``: names with their domain,
``groups`` and ``members``, ``attributes`` projection), then written as SCIM 1.1 by
``gateway.model.dialects.scim11.to_scim11``. Differences from SCIM 2.0 on the wire
(scim-api-01): DELETE answers ``200 OK`` with no body; lists carry ``schemas:
[urn:scim:schemas:core:1.0]``; PATCH is a partial resource (``patch.py``).
"""

from __future__ import annotations

from aiohttp import web

from .. import operations as ops
from ..errors import InvalidValue
from ..http_input import integer_param as integer
from ..keys import CONFIG, PIPELINE, shared
from ..model.dialects.scim11 import (
    CORE,
    canonical_attributes,
    canonical_filter,
    to_canonical,
    to_scim11,
)
from ..model.schema import ResourceType
from ..scim_common.http import PRINCIPAL, none_match, read_json, version_of
from ..scim_common.render import Projection, project, projection, resource_json
from . import members
from .http import base_url, respond
from .patch import parse_patch


def _members_key(rep: dict) -> str | None:
    return next((k for k in rep if k.lower() == "members"), None)


class ResourceHandlers:
    """The handlers of one resource type (User or Group)."""

    def __init__(self, kind: str, endpoint: str):
        self.kind = kind
        self.endpoint = endpoint
        self.is_user = kind == ops.USER
        self.relation = "groups" if self.is_user else "members"

    def routes(self) -> list[web.RouteDef]:
        ep = self.endpoint
        return [
            web.get(ep, self.list), web.post(ep, self.create),
            web.get(ep + "/{id}", self.get), web.put(ep + "/{id}", self.replace),
            web.patch(ep + "/{id}", self.patch), web.delete(ep + "/{id}", self.delete),
        ]

    # helpers -------------------------------------------------------------------------------
    def rtype(self, request: web.Request) -> ResourceType:
        return shared(request)[PIPELINE].schemas.of(self.kind)

    @staticmethod
    def runner(request: web.Request):
        pipeline, principal = shared(request)[PIPELINE], request[PRINCIPAL]

        async def run(op: ops.Operation):
            return await pipeline.execute(principal, op)

        return run

    def render(self, request: web.Request, entity: ops.Entity, proj: Projection) -> dict:
        rtype = self.rtype(request)
        return to_scim11(project(resource_json(entity, rtype, base_url(request)), rtype, proj))

    def single(self, request: web.Request, entity: ops.Entity, proj: Projection,
               status: int = 200) -> web.Response:
        body = self.render(request, entity, proj)
        location = body.get("meta", {}).get("location") if status == 201 else None
        return respond(body, status, etag=entity.version, location=location)

    def projection(self, request: web.Request, params=None) -> Projection:
        params = request.query if params is None else params
        return projection(self.rtype(request), canonical_attributes(params.get("attributes")),
                          canonical_attributes(params.get("excludedAttributes")))

    async def representation(self, request: web.Request, run) -> dict:
        """The request body as a canonical representation; group members given by name are
        looked up (an unqualified name also in the domain the group's name is written with)."""
        body = await read_json(request, shared(request)[CONFIG].max_body_bytes)
        rep = to_canonical(self.rtype(request), body)
        key = None if self.is_user else _members_key(rep)
        if key is not None:
            name = next((v for k, v in rep.items() if k.lower() == "displayname"), None)

            async def hint():
                return members.group_domain(name)

            rep[key] = await members.resolve(run, rep[key], hint)
        return rep

    # handlers ---------------------------------------------------------------------------------
    async def create(self, request: web.Request) -> web.Response:
        run = self.runner(request)
        rep = await self.representation(request, run)
        entity = await run(ops.CreateUser(rep) if self.is_user else ops.CreateGroup(rep))
        return self.single(request, entity, self.projection(request), 201)

    async def get(self, request: web.Request) -> web.Response:
        proj = self.projection(request)
        rid = request.match_info["id"]
        load = proj.wants(self.relation)
        op = ops.GetUser(rid, load) if self.is_user else ops.GetGroup(rid, load)
        entity = await self.runner(request)(op)
        if none_match(request, entity.version):
            return respond(None, 304, etag=entity.version)
        return self.single(request, entity, proj)

    async def replace(self, request: web.Request) -> web.Response:
        run = self.runner(request)
        rid = request.match_info["id"]
        rep = await self.representation(request, run)
        if_match = version_of(request.headers.get("If-Match"))
        op = (ops.ReplaceUser(rid, rep, if_match) if self.is_user
              else ops.ReplaceGroup(rid, rep, if_match))
        entity = await run(op)
        return self.single(request, entity, self.projection(request))

    async def patch(self, request: web.Request) -> web.Response:
        run = self.runner(request)
        rid = request.match_info["id"]
        body = await read_json(request, shared(request)[CONFIG].max_body_bytes)
        operations = parse_patch(self.rtype(request), body)
        if_match = version_of(request.headers.get("If-Match"))
        proj = self.projection(request)
        if self.is_user:
            entity = await run(ops.PatchUser(rid, operations, if_match))
            return self.single(request, entity, proj)

        async def hint():
            return (await run(ops.GetGroup(rid, with_members=False))).domain

        operations = await members.resolve_patch(run, operations, hint)
        # as over SCIM 2.0: 204 unless attributes are asked for, so that changing one member
        # of a large group does not read and send all the others (scim-api-01 allows both)
        asked = "attributes" in request.query or "excludedAttributes" in request.query
        entity = await run(ops.PatchGroup(rid, operations, if_match,
                                          with_members=asked and proj.wants("members")))
        if asked:
            return self.single(request, entity, proj)
        return respond(None, 204, etag=entity.version)

    async def delete(self, request: web.Request) -> web.Response:
        if_match = version_of(request.headers.get("If-Match"))
        rid = request.match_info["id"]
        op = ops.DeleteUser(rid, if_match) if self.is_user else ops.DeleteGroup(rid, if_match)
        await self.runner(request)(op)
        return web.Response(status=200)  # SCIM 1.1: 200 OK (SCIM 2.0 says 204)

    async def list(self, request: web.Request) -> web.Response:
        params = request.query
        rtype = self.rtype(request)
        proj = self.projection(request)
        filt = params.get("filter")
        order = params.get("sortOrder", params.get("sortOder"))  # WSO2 clients misspell it
        if order is not None and order.lower() not in ("ascending", "descending"):
            raise InvalidValue("'sortOrder' is 'ascending' or 'descending'")
        sort_by = params.get("sortBy")
        start = integer(params.get("startIndex"), "startIndex") or 1
        count = integer(params.get("count"), "count")
        if count is not None and count < 0:
            count = 0
        cls = ops.SearchUsers if self.is_user else ops.SearchGroups
        op = cls(filter=canonical_filter(rtype, filt) if filt else None,
                 sort_by=canonical_attributes(sort_by) or None,
                 descending=(order or "").lower() == "descending", start_index=max(1, start),
                 count=count, domain=params.get("domain") or None,
                 with_relations=proj.wants(self.relation))
        results: ops.Results = await self.runner(request)(op)
        base = base_url(request)
        resources = [to_scim11(project(resource_json(e, rtype, base), rtype, proj))
                     for e in results.entities]
        return respond({
            "schemas": [CORE],
            "totalResults": results.total,
            "itemsPerPage": len(resources),
            "startIndex": results.start_index or max(1, start),
            "Resources": resources,
        })


USERS = ResourceHandlers(ops.USER, "/Users")
GROUPS = ResourceHandlers(ops.GROUP, "/Groups")
