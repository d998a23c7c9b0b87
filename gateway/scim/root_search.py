"""``POST /scim2/.search``: one search across every resource type (RFC 7644 §3.4.3).

The SearchRequest is the one ``/Users/.search`` and ``/Groups/.search`` take.
Resources come Users first, then Groups, each type in its own order (``sortBy``
sorts within a type: an attribute of one type says nothing of the other's), and
``startIndex``/``count`` page over that sequence, so the pages of one search fit
together. A type the caller may not list (``users:list``, ``groups:list``) is left
out; a filter or an ``attributes`` name that means nothing for one type leaves
that type out (or its resources without the attribute); one that means nothing
for any type is 400. ``cursor`` paging is per type and not taken here.
"""

from __future__ import annotations

from aiohttp import web

from ..errors import Forbidden, GatewayError, InvalidFilter, InvalidValue
from ..http_input import integer_param
from ..keys import CONFIG, shared
from ..scim_common.http import PRINCIPAL, read_json, scim2_base_url
from ..scim_common.render import project, projection, resource_json
from .http import LIST_RESPONSE, respond
from .resources import GROUPS, USERS, ResourceHandlers, search_params


def _names_for(handlers: ResourceHandlers, request: web.Request, names: str | None,
               everywhere: dict[str, int]) -> str | None:
    """The attribute names of a list that mean something for this type (counted)."""
    if not names:
        return names
    kept = []
    for name in (n.strip() for n in names.split(",")):
        if not name:
            continue
        try:
            projection(handlers.rtype(request), name, None)
        except GatewayError:
            continue
        kept.append(name)
        everywhere[name] = everywhere.get(name, 0) + 1
    return ",".join(kept) if kept else ""


async def root_search(request: web.Request) -> web.Response:
    body = await read_json(request, shared(request)[CONFIG].max_body_bytes)
    params = search_params(body)
    if params.get("cursor") is not None:
        raise InvalidValue("A search at the root pages by startIndex; cursors are per type")
    caller = request[PRINCIPAL]
    kinds = [h for h in (USERS, GROUPS)
             if caller.allows("users:list" if h.is_user else "groups:list")]
    if not kinds:
        raise Forbidden(f"'{caller.name}' may list neither users nor groups")
    cfg = shared(request)[CONFIG]
    start = max(1, integer_param(params.get("startIndex"), "startIndex") or 1)
    count = integer_param(params.get("count"), "count")
    count = cfg.default_count if count is None else max(0, min(count, cfg.max_results))

    named: dict[str, dict[str, int]] = {"attributes": {}, "excludedAttributes": {}}
    resources, total, refused = [], 0, []
    offset, wanted, base = start, count, scim2_base_url(request)
    for handlers in kinds:
        mine = {**params, "startIndex": offset, "count": wanted}
        for key in named:
            mine[key] = _names_for(handlers, request, params.get(key), named[key])
        if params.get("attributes") and not mine["attributes"]:
            mine["attributes"] = "id"  # none of the asked attributes is this type's
        proj = handlers.projection_of(request, mine)
        try:
            results = await handlers.find(request, mine, proj)
        except InvalidFilter as exc:  # the filter speaks of another type's attributes
            refused.append(exc)
            continue
        rtype = handlers.rtype(request)
        resources += [project(resource_json(e, rtype, base), rtype, proj)
                      for e in results.entities]
        total += results.total
        wanted = max(0, wanted - len(results.entities))
        offset = max(1, offset - results.total)
    if len(refused) == len(kinds):
        raise refused[0]
    for key, counted in named.items():
        unknown = [n for n in (params.get(key) or "").split(",")
                   if n.strip() and n.strip() not in counted]
        if unknown:
            raise InvalidValue(f"'{unknown[0].strip()}' in {key} is no attribute of any "
                               "resource type")
    return respond({"schemas": [LIST_RESPONSE], "totalResults": total, "startIndex": start,
                    "itemsPerPage": len(resources), "Resources": resources})
