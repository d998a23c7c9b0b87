"""The SCIM outbound connector: ``type = "scim2"`` (RFC 7643/7644) or ``"scim11"`` (SCIM 1.1
as WSO2's ``/wso2/scim`` and charon 1.x speak it).

The dispatcher owns retries, ordering and the remote-id mapping; this connector applies
one change and says what happened. Every delivery is idempotent, so that a retry after
a lost answer, a restart or a ``kill -9`` mid-delivery neither loses nor duplicates,
without relying on the target keeping names unique (RFC 7643 does not make a Group's
``displayName`` unique):

- ``find`` (an entity without a known remote id): ``externalId eq "<local id>"`` first
  (the dispatcher's changes carry the local id as ``externalId``: ``scim_body``), exact; else (or
  when the target refuses that filter) the name (``userName`` / ``displayName`` ``eq``;
  ``Eq`` for SCIM 1.1), skipping a resource that carries another ``externalId``
  (someone else's).
- create, first attempt: POST straight away. A create whose earlier attempt's outcome is
  unknown (``Change.uncertain``: a timeout, a dropped connection, a process killed
  mid-delivery) is looked up first (``find``) and updated when found. A POST answered
  409 (the target has it) is looked up and updated.
- update without a remote id: ``find``; found: update it; else POST.
- with a remote id: PUT (or PATCH, ``options.update = "patch"``); a 404 means the entity
  vanished at the target: ``find`` (an earlier attempt may have made it again), else it
  is created again, and the new remote id returned.
- delete: DELETE the remote id, or the entity ``find`` finds (so a create whose answer
  was lost leaves no copy behind); a 404 or nothing found is success (gone either way).
  A 404 for a mapped id also removes what ``find`` finds.
- password (a change with a password and no resource): a PATCH of ``password`` only.
- a 2xx to a POST whose body gives no id: the id is read from ``Location``, else found
  with ``find``; when neither finds it the delivery fails as retryable (the retry is
  uncertain: it finds it and updates it).

What is sent is ``scim_body``'s business; requests, replies and how failures are judged
(retryable or not, ``retry_after``) are ``scim_http``'s. Errors are always
``scim_http.ScimDeliveryError`` (a ``DeliveryError``); no aiohttp or JSON exception
escapes. Options (``[[outbound.connectors]] options``): ``update = "put" | "patch"``.
"""

from __future__ import annotations

import asyncio
import base64
import logging

import aiohttp
import orjson

from gateway.errors import ConfigError

from .base import Action, Change, Connector, Delivered, EntityKind
from .scim_body import AttributeMap, external_id, outgoing, password, wire_name
from .scim_http import (
    SCIM2_JSON,
    SCIM11,
    WIRES,
    Reply,
    Request,
    ScimDeliveryError,
    create_request,
    created_id,
    delete_request,
    failure,
    lookup_request,
    name_attribute,
    password_request,
    patch_request,
    read_lookup,
    replace_request,
    spc_request,
)

log = logging.getLogger("gateway.outbound.scim")

OPTIONS = {"update": ("put", "patch")}
MAX_STEPS = 4  # create -> 409 -> update -> 404 -> create: the target changing under us
FEATURES = ("patch", "bulk", "filter", "changePassword", "sort", "etag")


def auth_headers(cfg) -> dict[str, str]:
    """The credentials header of ``cfg.auth``; ConfigError when one is missing."""
    where = f"connector {cfg.name!r}"
    if cfg.auth == "none":
        headers = {}
    elif cfg.auth == "basic":
        if not cfg.username:
            raise ConfigError(f"{where}: auth = \"basic\" needs a username")
        raw = f"{cfg.username}:{cfg.password or ''}".encode()
        headers = {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
    elif cfg.auth == "bearer":
        if not cfg.token:
            raise ConfigError(f"{where}: auth = \"bearer\" needs a token")
        headers = {"Authorization": f"Bearer {cfg.token}"}
    elif cfg.auth == "api_key":
        if not cfg.api_key or not cfg.api_key_header:
            raise ConfigError(f"{where}: auth = \"api_key\" needs api_key (and api_key_header)")
        headers = {cfg.api_key_header: cfg.api_key}
    else:
        raise ConfigError(f"{where}: SCIM connectors take auth none, basic, bearer or api_key, "
                          f"not {cfg.auth!r}")
    if any(c in "\r\n" for kv in headers.items() for c in "".join(kv)):
        raise ConfigError(f"{where}: credentials cannot contain line breaks")
    return headers


class ScimConnector(Connector):
    """One SCIM 2.0 or 1.1 target over the process's shared ``aiohttp.ClientSession``."""

    def __init__(self, cfg, session: aiohttp.ClientSession):
        where = f"connector {cfg.name!r}"
        wire = WIRES.get(cfg.type)
        if wire is None:
            raise ConfigError(f"{where}: a SCIM connector's type is scim2 or scim11")
        if not cfg.url.lower().startswith(("http://", "https://")):
            raise ConfigError(f"{where}: url must be an http:// or https:// URL")
        unknown = set(cfg.options) - set(OPTIONS)
        if unknown:
            raise ConfigError(f"{where}: unknown options {sorted(unknown)} "
                              f"(SCIM connectors take {', '.join(OPTIONS)})")
        update = cfg.options.get("update", "put")
        if not isinstance(update, str) or update.lower() not in OPTIONS["update"]:
            raise ConfigError(f"{where}: options.update is \"put\" or \"patch\"")
        if cfg.timeout_seconds <= 0:
            raise ConfigError(f"{where}: timeout_seconds must be positive")
        self.cfg = cfg
        self.name = cfg.name
        self.session = session
        self.wire = wire
        self.base = cfg.url.rstrip("/")
        self.patch = update.lower() == "patch"
        self.attributes = AttributeMap(cfg.attributes)
        self.headers = {"Accept": f"{SCIM2_JSON}, application/json", **auth_headers(cfg)}
        self.timeout = aiohttp.ClientTimeout(total=cfg.timeout_seconds)
        self.ssl = bool(cfg.verify_tls)

    # transport --------------------------------------------------------------------------------
    async def send(self, req: Request) -> Reply:
        """One HTTP exchange; transport failures become ScimDeliveryError."""
        url = self.base + req.path
        headers = dict(self.headers)
        data = None
        what = f"{req.method} {url}"
        if req.body is not None:
            try:
                data = orjson.dumps(req.body)
            except orjson.JSONEncodeError as exc:  # a resource that is not JSON: a bug upstream
                raise ScimDeliveryError(f"{what}: the resource cannot be written as JSON: {exc}",
                                        retryable=False) from exc
            headers["Content-Type"] = self.wire.content_type
        try:
            async with self.session.request(
                    req.method, url, params=list(req.params) or None, data=data,
                    headers=headers, timeout=self.timeout, ssl=self.ssl,
                    allow_redirects=False) as resp:
                body = await resp.read()
                reply = Reply(resp.status, resp.headers, body)
        except TimeoutError as exc:  # asyncio.TimeoutError is TimeoutError on 3.11
            raise ScimDeliveryError(f"{what}: no answer within {self.cfg.timeout_seconds:g}s",
                                    retryable=True) from exc
        except (aiohttp.ClientConnectorCertificateError, aiohttp.InvalidURL) as exc:
            # a certificate or URL problem is not fixed by trying again
            raise ScimDeliveryError(f"{what}: {type(exc).__name__}: {exc}",
                                    retryable=False) from exc
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
            raise ScimDeliveryError(f"{what}: {type(exc).__name__}: {exc}",
                                    retryable=True) from exc
        log.debug("%s %s -> %s", req.method, url, reply.status)
        return reply

    # Connector -----------------------------------------------------------------------------------
    async def lookup(self, kind: EntityKind, name: str) -> str | None:
        reply = await self.send(lookup_request(self.wire, kind, name))
        return read_lookup(self.wire, kind, name, reply)

    async def find(self, change: Change, body: dict | None = None) -> str | None:
        """The remote id of ``change``'s entity: by the ``externalId`` it is sent with
        (exact), else by name, skipping resources that carry another ``externalId``.
        ``body``: what is sent for it (None for a delete)."""
        kind = change.kind
        ext = external_id(body) if body is not None else self.attributes.external_id(change)
        if ext is not None:
            reply = await self.send(lookup_request(self.wire, kind, ext, "externalId"))
            try:
                rid = read_lookup(self.wire, kind, ext, reply, "externalId")
            except ScimDeliveryError as exc:
                if exc.retryable:
                    raise
                rid = None  # a target that cannot filter on externalId: by name, then
            if rid is not None:
                return rid
        name = wire_name(change, body) if body is not None else change.name
        if not name:
            return None
        also = ("externalId",) if ext is not None else ()
        reply = await self.send(lookup_request(self.wire, kind, name, name_attribute(kind),
                                               also))
        return read_lookup(self.wire, kind, name, reply, external_id=ext)

    async def health(self) -> str:
        reply = await self.send(spc_request(self.wire))
        if not reply.ok:
            raise failure(reply, "reading the service provider configuration")
        try:
            body = reply.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ScimDeliveryError(f"{self.base}{self.wire.spc_path} did not answer with "
                                    "a SCIM service provider configuration",
                                    retryable=True, target_status=reply.status)
        features = [f for f in FEATURES
                    if isinstance(body.get(f), dict) and body[f].get("supported") is True]
        return (f"SCIM {self.wire.version} at {self.base}: reachable; supports "
                f"{', '.join(features) or 'no optional features'}")

    async def deliver(self, change: Change, remote_id: str | None) -> Delivered:
        if change.action == Action.DELETE:
            return await self._delete(change, remote_id)
        if change.action == Action.PASSWORD:
            if change.kind != EntityKind.USER or password(change, self.cfg, creating=False) is None:
                return Delivered(remote_id)  # nothing this connector sends
            if change.resource is None:
                return await self._password(change, remote_id)
        if change.resource is None:
            raise ScimDeliveryError(f"{change.action} of {change.kind} '{change.name}' carries "
                                    "no resource", retryable=False)
        return await self._upsert(change, remote_id)

    async def close(self) -> None:
        """Nothing to release: the session is the process's, closed by its owner."""

    # flows -------------------------------------------------------------------------------------
    async def _upsert(self, change: Change, remote_id: str | None) -> Delivered:
        kind = change.kind
        scim11 = self.wire is SCIM11
        update = outgoing(change, self.cfg, self.attributes, scim11=scim11, creating=False)
        name = wire_name(change, update)
        # a first create goes straight to POST; one whose earlier attempt may have reached
        # the target, and an update without a mapping, look the entity up first
        rid = remote_id
        if rid is None and (change.action != Action.CREATE or change.uncertain):
            rid = await self.find(change, update)
        look_first = False  # after a 404: an earlier attempt may have made it again
        for _ in range(MAX_STEPS):
            if rid is None and look_first:
                look_first = False
                rid = await self.find(change, update)
            if rid is None:
                body = outgoing(change, self.cfg, self.attributes, scim11=scim11, creating=True)
                reply = await self.send(create_request(kind, body))
                if reply.status == 409:  # it exists: a create whose answer was lost
                    rid = await self.find(change, update)
                    if rid is None:
                        raise failure(reply, f"creating {kind} '{name}' (not found by "
                                      "externalId or name)")
                    continue
                if not reply.ok:
                    raise failure(reply, f"creating {kind} '{name}'")
                new = created_id(reply) or await self.find(change, update)
                if new is None:
                    raise ScimDeliveryError(
                        f"creating {kind} '{name}': the target answered {reply.status} without "
                        "an id, and it is not found", retryable=True,
                        target_status=reply.status)
                return Delivered(new)
            req = (patch_request(self.wire, kind, rid, update) if self.patch
                   else replace_request(kind, rid, update))
            reply = await self.send(req)
            if reply.status == 404:  # it vanished at the target: create it again
                rid, look_first = None, True
                continue
            if not reply.ok:
                raise failure(reply, f"updating {kind} '{name}' ({rid})")
            return Delivered(rid)
        raise ScimDeliveryError(f"{change.action} of {kind} '{name}': the target keeps changing "
                                "(created and removed concurrently)", retryable=True)

    async def _delete(self, change: Change, remote_id: str | None) -> Delivered:
        rid = remote_id if remote_id else await self.find(change)
        for _ in range(MAX_STEPS):
            if rid is None:
                return Delivered(None)  # not found: nothing to delete
            reply = await self.send(delete_request(change.kind, rid))
            if reply.ok:
                return Delivered(None)
            if reply.status != 404:
                raise failure(reply, f"deleting {change.kind} '{change.name}' ({rid})")
            if remote_id is None or rid != remote_id:
                return Delivered(None)  # already gone
            # the mapped one is gone: a copy an earlier attempt made again may be there
            found = await self.find(change)
            rid = found if found != remote_id else None
        raise ScimDeliveryError(f"deleting {change.kind} '{change.name}': the target keeps "
                                "changing", retryable=True)

    async def _password(self, change: Change, remote_id: str | None) -> Delivered:
        secret = password(change, self.cfg, creating=False)
        rid = remote_id if remote_id else await self.lookup(change.kind, change.name)
        missing = ScimDeliveryError(f"setting the password of '{change.name}': no such user at "
                                    "the target", retryable=False, target_status=404)
        if rid is None:
            raise missing
        reply = await self.send(password_request(self.wire, rid, secret))
        if reply.status == 404:
            raise missing
        if not reply.ok:
            raise failure(reply, f"setting the password of '{change.name}' ({rid})")
        return Delivered(rid)
