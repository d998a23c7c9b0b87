"""SCIM 2.0 /Users and /Groups handlers: wire in, canonical operation, wire out."""

from __future__ import annotations

from aiohttp import web

from .. import operations as ops
from ..errors import InvalidValue, NotSupported
from ..http_input import integer_param
from ..keys import CONFIG, PIPELINE, shared
from ..model.schema import ResourceType
from ..scim_common.http import (
    PRINCIPAL,
    expected_version,
    none_match,
    read_json,
    scim2_base_url,
)
from ..scim_common.render import Projection, project, projection, resource_json
from .http import LIST_RESPONSE, SEARCH_REQUEST, respond
from .patch import parse_patch


class ResourceHandlers:
    """The handlers of one resource type (User or Group)."""

    def __init__(self, kind: str, endpoint: str):
        self.kind = kind
        self.endpoint = endpoint
        self.is_user = kind == ops.USER
        self.relation = "groups" if self.is_user else "members"

    def rtype(self, request: web.Request) -> ResourceType:
        """The resource type in force (built-in schemas and configured extensions)."""
        return shared(request)[PIPELINE].schemas.of(self.kind)

    def routes(self) -> list[web.RouteDef]:
        ep = self.endpoint
        return [
            web.get(ep, self.list), web.post(ep, self.create),
            web.post(f"{ep}/.search", self.search),
            web.get(ep + "/{id}", self.get), web.put(ep + "/{id}", self.replace),
            web.patch(ep + "/{id}", self.patch), web.delete(ep + "/{id}", self.delete),
        ]

    # helpers -------------------------------------------------------------------------
    async def _run(self, request: web.Request, op: ops.Operation):
        return await shared(request)[PIPELINE].execute(request[PRINCIPAL], op)

    def _render(self, request: web.Request, entity: ops.Entity, proj: Projection) -> dict:
        rtype = self.rtype(request)
        return project(resource_json(entity, rtype, scim2_base_url(request)), rtype, proj)

    def _single(self, request: web.Request, entity: ops.Entity, proj: Projection,
                status: int = 200) -> web.Response:
        body = self._render(request, entity, proj)
        location = body.get("meta", {}).get("location") if status == 201 else None
        return respond(body, status, etag=entity.version, location=location)

    def projection_of(self, request: web.Request, params=None) -> Projection:
        params = request.query if params is None else params
        return projection(self.rtype(request), params.get("attributes"),
                          params.get("excludedAttributes"))

    async def _if_match(self, request: web.Request, rid: str) -> int | None:
        async def current() -> int:
            op = ops.GetUser(rid, False) if self.is_user else ops.GetGroup(rid, False)
            return (await self._run(request, op)).version

        return await expected_version(request.headers.get("If-Match"), current)

    # handlers ------------------------------------------------------------------------------
    async def create(self, request: web.Request) -> web.Response:
        body = await read_json(request, shared(request)[CONFIG].max_body_bytes)
        op = ops.CreateUser(body) if self.is_user else ops.CreateGroup(body)
        entity = await self._run(request, op)
        return self._single(request, entity, self.projection_of(request), 201)

    async def get(self, request: web.Request) -> web.Response:
        proj = self.projection_of(request)
        rid = request.match_info["id"]
        load = proj.wants(self.relation)
        op = ops.GetUser(rid, load) if self.is_user else ops.GetGroup(rid, load)
        entity = await self._run(request, op)
        if none_match(request, entity.version):
            return respond(None, 304, etag=entity.version)
        return self._single(request, entity, proj)

    async def replace(self, request: web.Request) -> web.Response:
        body = await read_json(request, shared(request)[CONFIG].max_body_bytes)
        rid = request.match_info["id"]
        if_match = await self._if_match(request, rid)
        op = (ops.ReplaceUser(rid, body, if_match) if self.is_user
              else ops.ReplaceGroup(rid, body, if_match))
        entity = await self._run(request, op)
        return self._single(request, entity, self.projection_of(request))

    async def patch(self, request: web.Request) -> web.Response:
        body = await read_json(request, shared(request)[CONFIG].max_body_bytes)
        operations = parse_patch(body)
        rid = request.match_info["id"]
        if_match = await self._if_match(request, rid)
        proj = self.projection_of(request)
        if self.is_user:
            entity = await self._run(request, ops.PatchUser(rid, operations, if_match))
            return self._single(request, entity, proj)
        # A group answers 204 unless the caller asks for attributes (RFC 7644 §3.5.2 allows
        # either; Entra ID and Okta expect 204): changing one member of a group of 100,000
        # must not read and send the other 99,999.
        asked = "attributes" in request.query or "excludedAttributes" in request.query
        entity = await self._run(request, ops.PatchGroup(
            rid, operations, if_match, with_members=asked and proj.wants("members")))
        if asked:
            return self._single(request, entity, proj)
        return respond(None, 204, etag=entity.version)

    async def delete(self, request: web.Request) -> web.Response:
        rid = request.match_info["id"]
        if_match = await self._if_match(request, rid)
        op = ops.DeleteUser(rid, if_match) if self.is_user else ops.DeleteGroup(rid, if_match)
        await self._run(request, op)
        return web.Response(status=204)

    async def list(self, request: web.Request) -> web.Response:
        return await self._search(request, request.query)

    async def search(self, request: web.Request) -> web.Response:
        body = await read_json(request, shared(request)[CONFIG].max_body_bytes)
        return await self._search(request, search_params(body))

    async def _search(self, request: web.Request, params) -> web.Response:
        proj = self.projection_of(request, params)
        results = await self.find(request, params, proj)
        rtype, base = self.rtype(request), scim2_base_url(request)
        resources = [project(resource_json(e, rtype, base), rtype, proj)
                     for e in results.entities]
        body = {"schemas": [LIST_RESPONSE], "totalResults": results.total}
        if results.start_index is not None:
            body["startIndex"] = results.start_index
        body["itemsPerPage"] = len(resources)
        if results.next_cursor is not None:
            body["nextCursor"] = results.next_cursor
        body["Resources"] = resources
        return respond(body)

    async def find(self, request: web.Request, params, proj: Projection) -> ops.Results:
        """The search that query parameters or a SearchRequest body describe."""
        filt = params.get("filter")
        if filt is not None and not isinstance(filt, str):
            raise InvalidValue("'filter' must be a string")
        order = params.get("sortOrder", params.get("sortOder"))  # WSO2 clients misspell it
        if order is not None and str(order).lower() not in ("ascending", "descending"):
            raise InvalidValue("'sortOrder' is 'ascending' or 'descending'")
        sort_by = params.get("sortBy")
        if sort_by is not None and not isinstance(sort_by, str):
            raise InvalidValue("'sortBy' must be a string")
        domain = params.get("domain")
        start = integer_param(params.get("startIndex"), "startIndex") or 1
        count = integer_param(params.get("count"), "count")
        if count is not None and count < 0:
            count = 0
        cursor = params.get("cursor")
        if cursor is not None:
            if not isinstance(cursor, str):
                raise InvalidValue("'cursor' must be a string")
            if params.get("startIndex") not in (None, ""):
                raise InvalidValue("Use either 'cursor' or 'startIndex' paging, not both")
        cls = ops.SearchUsers if self.is_user else ops.SearchGroups
        op = cls(filter=filt or None, sort_by=sort_by or None,
                 descending=str(order).lower() == "descending", start_index=max(1, start),
                 count=count, domain=domain or None, with_relations=proj.wants(self.relation),
                 cursor=cursor)
        return await self._run(request, op)


def search_params(body: dict) -> dict:
    """A SearchRequest body (RFC 7644 §3.4.3) as the query parameters it stands for."""
    schemas = body.get("schemas")
    if schemas is not None and (not isinstance(schemas, list) or SEARCH_REQUEST not in schemas):
        raise InvalidValue(f"A search body has the schema {SEARCH_REQUEST}")
    params = {}
    for key, value in body.items():
        if key in ("attributes", "excludedAttributes") and value is not None:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InvalidValue(f"'{key}' must be an array of attribute names")
            value = ",".join(value)
        elif key in ("domain", "cursor") and value is not None and not isinstance(value, str):
            raise InvalidValue(f"'{key}' must be a string")
        params[key] = value
    return params


USERS = ResourceHandlers(ops.USER, "/Users")
GROUPS = ResourceHandlers(ops.GROUP, "/Groups")


class MeHandlers:
    """/Me (RFC 7644 §3.11): the authenticated store user's own resource.

    GET, PUT and PATCH work on the caller's user without further permissions
    (self-service, within ``[auth] self_service_attributes``); DELETE needs
    ``users:delete``. API clients, and bearer tokens whose subject is no store
    user, are not users of a store: /Me answers them 501. A reply with the user
    carries its permanent URI in ``Location`` (RFC 7644 §3.11).
    """

    def routes(self) -> list[web.RouteDef]:
        return [web.route(method, "/Me", self.handle)
                for method in ("GET", "PUT", "PATCH", "DELETE")]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        principal = request[PRINCIPAL]
        if principal.user_id is None:
            raise NotSupported("/Me is for users of a user store; this caller is "
                               f"{principal.kind!r} {principal.name!r}")
        request.match_info["id"] = principal.user_id
        handler = {"GET": USERS.get, "PUT": USERS.replace, "PATCH": USERS.patch,
                   "DELETE": USERS.delete}[request.method]
        response = await handler(request)
        if response.status in (200, 304):
            response.headers["Location"] = f"{scim2_base_url(request)}/Users/{principal.user_id}"
        return response


ME = MeHandlers()
