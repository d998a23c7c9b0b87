"""SCIM 2.0 and 1.1 requests and replies, without I/O: the connector sends what is built here.

Everything the two versions do differently on the wire is in ``Wire``; building a
request and reading a reply are pure functions, so they are tested without a peer.

How a reply is judged (``failure``):

- 2xx is success; 3xx is a permanent error (redirects are not followed: credentials
  would go wherever the target points; fix the URL instead).
- 408, 409, 425, 429 and 5xx (except 501 and 505, which retrying cannot change) are
  retryable; any other 4xx is permanent.
- ``Retry-After`` (seconds, or an HTTP date) is read on every failure and exposed as
  ``ScimDeliveryError.retry_after`` (seconds, or None).
- The detail names the operation, the status and the target's own message (SCIM 2.0
  ``detail``/``scimType``, SCIM 1.1 ``Errors[].description``), never what was sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote

import orjson

from gateway.model.dialects.scim11 import CORE as SCIM11_CORE

from .base import DeliveryError, EntityKind

SCIM2_JSON = "application/scim+json"
JSON = "application/json"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MAX_DETAIL = 300  # characters of the target's message kept in an error


class ScimDeliveryError(DeliveryError):
    """A failed SCIM call: ``target_status`` is the target's HTTP status (None when no
    answer came), ``retry_after`` the seconds its ``Retry-After`` asked for (or None)."""

    def __init__(self, detail: str, *, retryable: bool, target_status: int | None = None,
                 retry_after: float | None = None):
        super().__init__(detail, retryable=retryable)
        self.target_status = target_status
        self.retry_after = retry_after


@dataclass(frozen=True)
class Wire:
    """What SCIM 2.0 (RFC 7644) and SCIM 1.1 (scim-api-01, charon 1.x) write differently."""

    version: str
    content_type: str
    eq: str  # the filter operator, as the target's own clients write it
    spc_path: str  # the service provider configuration endpoint
    list_404_is_empty: bool  # charon 1.x answers an empty filtered list with 404
    lookup_attributes: bool  # ask only for the name (``attributes=``) when looking up


SCIM2 = Wire("2.0", SCIM2_JSON, "eq", "/ServiceProviderConfig", False, True)
SCIM11 = Wire("1.1", JSON, "Eq", "/ServiceProviderConfigs", True, False)
WIRES = {"scim2": SCIM2, "scim11": SCIM11}


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # below the base URL: "/Users", "/Groups/<id>"
    params: tuple[tuple[str, str], ...] = ()
    body: dict | None = None


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self):
        """The parsed body; ValueError when it is not JSON."""
        return orjson.loads(self.body)


def name_attribute(kind: EntityKind) -> str:
    return "userName" if kind == EntityKind.USER else "displayName"


def endpoint(kind: EntityKind) -> str:
    return "/Users" if kind == EntityKind.USER else "/Groups"


def resource_path(kind: EntityKind, remote_id: str) -> str:
    return f"{endpoint(kind)}/{quote(remote_id, safe='')}"


def quoted(value: str) -> str:
    """A filter string literal (RFC 7644 §3.4.2.2: JSON string rules)."""
    return orjson.dumps(value).decode()


# requests -------------------------------------------------------------------------------------
def lookup_request(d: Wire, kind: EntityKind, name: str, attr: str | None = None,
                   also: tuple[str, ...] = ()) -> Request:
    """``GET`` of the resources whose ``attr`` (default: the name attribute) is ``name``;
    ``also``: more attributes to ask for (SCIM 2.0 ``attributes``)."""
    attr = attr or name_attribute(kind)
    params = [("filter", f"{attr} {d.eq} {quoted(name)}")]
    if d.lookup_attributes:
        params.append(("attributes", ",".join((attr, *also))))
    return Request("GET", endpoint(kind), tuple(params))


def create_request(kind: EntityKind, body: dict) -> Request:
    return Request("POST", endpoint(kind), body=body)


def replace_request(kind: EntityKind, remote_id: str, body: dict) -> Request:
    return Request("PUT", resource_path(kind, remote_id), body=body)


def patch_request(d: Wire, kind: EntityKind, remote_id: str, body: dict) -> Request:
    """A PATCH that makes the target hold what ``body`` (a full resource) says.

    SCIM 2.0: one ``replace`` without a path carrying every attribute but ``members``, and
    for groups a ``replace`` of ``members`` (a ``remove`` when there are none). SCIM 1.1:
    the resource as a partial one, its multi-valued attributes named in
    ``meta.attributes`` so that they are replaced rather than added to. Attributes the
    resource no longer has are not removed at the target (a change carries no "before");
    use PUT (the default) where that matters.
    """
    return Request("PATCH", resource_path(kind, remote_id), body=patch_body(d, body))


def patch_body(d: Wire, body: dict) -> dict:
    if d is SCIM11:
        lists = [k for k, v in body.items() if isinstance(v, list) and k != "schemas"]
        out = dict(body)
        if lists:
            out["meta"] = {"attributes": lists}
        return out
    value = {k: v for k, v in body.items() if k not in ("schemas", "members")}
    ops: list[dict] = [{"op": "replace", "value": value}] if value else []
    if "members" in body:
        members = body["members"]
        ops.append({"op": "replace", "path": "members", "value": members} if members
                   else {"op": "remove", "path": "members"})
    return {"schemas": [PATCH_OP], "Operations": ops}


def password_request(d: Wire, remote_id: str, password: str) -> Request:
    """Only the password of a user."""
    if d is SCIM11:
        body = {"schemas": [SCIM11_CORE], "password": password}
    else:
        body = {"schemas": [PATCH_OP],
                "Operations": [{"op": "replace", "path": "password", "value": password}]}
    return Request("PATCH", resource_path(EntityKind.USER, remote_id), body=body)


def delete_request(kind: EntityKind, remote_id: str) -> Request:
    return Request("DELETE", resource_path(kind, remote_id))


def spc_request(d: Wire) -> Request:
    return Request("GET", d.spc_path)


# replies ---------------------------------------------------------------------------------------
def read_lookup(d: Wire, kind: EntityKind, name: str, reply: Reply, attr: str | None = None,
                external_id: str | None = None) -> str | None:
    """The id of the resource whose ``attr`` (default: its name) is ``name`` in a filtered
    list, or None.

    Names are compared without regard to case (userName and displayName are caseExact
    false in both versions); an exact match wins over one differing only in case. An
    ``externalId`` (caseExact) must match exactly. ``external_id``: a resource carrying
    another ``externalId`` is someone else's and is not taken. When the target returns no
    values of ``attr`` at all, a single result is taken as the one filtered for.
    """
    if reply.status == 404 and d.list_404_is_empty:
        return None
    if not reply.ok:
        raise failure(reply, f"looking up {kind} '{name}'")
    try:
        body = reply.json()
    except ValueError:
        raise ScimDeliveryError(f"looking up {kind} '{name}': the target answered "
                                f"{reply.status} with a body that is not JSON",
                                retryable=True, target_status=reply.status) from None
    resources = body.get("Resources") if isinstance(body, dict) else None
    if resources is None and isinstance(body, dict) and body.get("totalResults") == 0:
        return None
    if not isinstance(resources, list):
        raise ScimDeliveryError(f"looking up {kind} '{name}': the answer is not a SCIM list",
                                retryable=True, target_status=reply.status)
    attr = attr or name_attribute(kind)
    found = [r for r in resources if isinstance(r, dict) and isinstance(r.get("id"), str)
             and r["id"]]
    if external_id is not None:
        found = [r for r in found if not isinstance(_get(r, "externalId"), str)
                 or _get(r, "externalId") == external_id]
    named = [r for r in found if isinstance(_get(r, attr), str)]
    exact = [r for r in named if _get(r, attr) == name]
    folded = [r for r in named if _get(r, attr).casefold() == name.casefold()]
    if exact:
        return exact[0]["id"]
    if folded and attr.lower() != "externalid":
        return folded[0]["id"]
    if not named and len(found) == 1:
        return found[0]["id"]
    return None


def _get(resource: dict, attr: str):
    low = attr.lower()
    return next((v for k, v in resource.items() if k.lower() == low), None)


def created_id(reply: Reply) -> str | None:
    """The id of a created resource: from the body, else from the ``Location`` header
    (RFC 7644 §3.3: the last path segment); None when neither says."""
    try:
        body = reply.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("id"), str) and body["id"]:
        return body["id"]
    location = reply.headers.get("Location")
    if location:
        segment = location.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        if segment and segment not in ("Users", "Groups"):
            return unquote(segment)
    return None


def retryable_status(status: int) -> bool:
    if status in (408, 409, 425, 429):
        return True
    return 500 <= status < 600 and status not in (501, 505)


def retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date); None when absent or bad."""
    raw = headers.get("Retry-After")
    if not raw:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return float(raw)
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def target_message(reply: Reply) -> str:
    """What the target said about a failure (SCIM 2.0 or 1.1 error body, else text)."""
    try:
        body = reply.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        errors = body.get("Errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            text = str(errors[0].get("description") or "")
        else:
            text = str(body.get("detail") or "")
            if body.get("scimType"):
                text = f"{text} (scimType {body['scimType']})"
    else:
        text = reply.body[:MAX_DETAIL].decode("utf-8", "replace")
    text = " ".join(text.split())
    return text[:MAX_DETAIL]


def failure(reply: Reply, what: str) -> ScimDeliveryError:
    """The error for a reply that is not a success."""
    message = target_message(reply)
    detail = f"{what}: the target answered {reply.status}" + (f": {message}" if message else "")
    if 300 <= reply.status < 400:
        location = reply.headers.get("Location")
        detail += f" (redirect to {location}; redirects are not followed)" if location else ""
        return ScimDeliveryError(detail, retryable=False, target_status=reply.status)
    return ScimDeliveryError(detail, retryable=retryable_status(reply.status),
                             target_status=reply.status, retry_after=retry_after(reply.headers))
