"""What the SCIM connector sends for a change: the canonical resource as the target's resource.

The body is built from ``Change.resource`` (canonical: SCIM 2.0-shaped, core attributes
at the top level, extensions under their URN), in this order:

1. Left out: what the target holds or works out itself: ``id``, ``meta``, ``schemas``
   (rebuilt), a user's ``groups`` (memberships travel on groups), ``password`` (see 3).
   ``userName``/``displayName`` are sent as the resource has them (a PRIMARY name bare,
   another domain's as ``DOMAIN/name``).
2. Groups: ``members`` is ``[{"value": remote id}]`` for every member of the resource
   found in ``Change.member_remote_ids`` (local id -> remote id), in the resource's
   order; members not provisioned at this connector are left out. With
   ``member_remote_ids`` None, ``members`` is not sent at all (a PUT then empties the
   group at the target, as RFC 7644 PUT does; a PATCH leaves its members alone).
3. Users: ``password`` is ``Change.password`` when ``provision_passwords`` is on; on a
   create (POST) without one, ``default_password`` when configured. An update never
   sends the default password.
4. ``schemas``: the core schema and the URN of every extension sent.
5. SCIM 1.1 targets: converted by ``gateway.model.dialects.scim11.to_scim11``
   (``urn:scim:schemas:core:1.0``, the enterprise 1.0 URN, ``manager.managerId``).
6. ``externalId`` is ``Change.external_id`` when it has one: the dispatcher's local id
   (RFC 7643 §3.1: the provisioning client's identifier for the resource; the gateway is
   that client), so that the connector finds what an earlier attempt made by an exact
   lookup (``externalId eq "<local id>"``) rather than by a name the target need not
   keep unique. A client's own ``externalId`` is sent instead with ``attributes = {
   externalId = "externalId" }`` (``""``: none is sent).
7. ``attributes`` (``AttributeMap``), last, in the target's own vocabulary.

``attributes``: ``target attribute = "source"``, for extra or renamed attributes::

    attributes = { externalId = "id", nickName = "userName", title = "",
                   "name.formatted" = "displayName", userType = "'contractor'",
                   "urn:scim:schemas:extension:enterprise:1.0:employeeNumber" =
                       "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber" }

- A target is ``attr``, ``attr.sub``, ``URN:attr`` or ``URN:attr.sub`` as the target
  names it (SCIM 1.1 names for ``scim11``); a URN target adds the URN to ``schemas``.
  On a multi-valued attribute, ``attr.sub`` sets the sub-attribute of its primary value
  (else its first; a new ``[{sub: value}]`` when it has none).
- A source is ``id`` (the local id), ``domain`` (the local user store domain), a
  literal string in single quotes (``'contractor'``), ``""`` (nothing: the target
  attribute is not sent), or a canonical path ``attr``, ``attr.sub``, ``URN:attr``,
  ``URN:attr.sub`` (``emails.value`` is the primary e-mail, else the first).
- When the source has no value the target attribute is not sent, so a renamed
  attribute never carries a stale value. Names are matched without regard to case.
"""

from __future__ import annotations

import copy

import orjson

from gateway.errors import ConfigError
from gateway.model.dialects.scim11 import to_scim11
from gateway.model.schema import CORE_GROUP, CORE_USER

from .base import Change, EntityKind
from .scim_http import ScimDeliveryError

SERVER_HELD = frozenset({"id", "meta", "schemas", "groups", "members", "password"})
NOT_TARGETS = frozenset({"id", "meta", "schemas"})


def core_schema(kind: EntityKind) -> str:
    return CORE_USER if kind == EntityKind.USER else CORE_GROUP


def _key(holder: dict, name: str) -> str | None:
    low = name.lower()
    return next((k for k in holder if isinstance(k, str) and k.lower() == low), None)


def _get(holder, name: str):
    if not isinstance(holder, dict):
        return None
    key = _key(holder, name)
    return None if key is None else holder[key]


def _split(path: str) -> tuple[str | None, str, str | None]:
    """``URN:attr.sub`` -> (URN, attr, sub); the URN is what precedes the last ':'."""
    urn = None
    if path.lower().startswith("urn:"):
        urn, _, path = path.rpartition(":")
    attr, _, sub = path.partition(".")
    return urn, attr, sub or None


def _item(values: list) -> dict | None:
    """The primary value of a multi-valued attribute, else its first (complex ones only)."""
    items = [v for v in values if isinstance(v, dict)]
    return next((v for v in items if v.get("primary") is True), items[0] if items else None)


class AttributeMap:
    """The ``attributes`` table of a connector, checked once."""

    def __init__(self, pairs: tuple[tuple[str, str], ...]):
        self.pairs: list[tuple[str, str]] = []
        for target, source in pairs:
            self._check(target, "target")
            if source not in ("", "id", "domain") and not self._literal(source):
                self._check(source, "source")
            self.pairs.append((target, source))

    @staticmethod
    def _literal(source: str) -> bool:
        return len(source) >= 2 and source[0] == source[-1] == "'"

    @staticmethod
    def _check(path: str, what: str) -> None:
        urn, attr, sub = _split(path)
        if not attr or (sub is not None and "." in sub) or (urn is not None and urn == "urn"):
            raise ConfigError(f"attributes: {what} {path!r} is not attr, attr.sub, URN:attr "
                              "or URN:attr.sub")
        if what == "target" and urn is None and attr.lower() in NOT_TARGETS:
            raise ConfigError(f"attributes: {path!r} is held by the target and cannot be set")

    def external_id(self, change: Change) -> str | None:
        """The ``externalId`` sent for ``change`` when it is known without the resource
        (a delete): ``Change.external_id``, unless ``attributes`` maps ``externalId``."""
        mapped = [src for target, src in self.pairs if target.lower() == "externalid"]
        if mapped:
            return change.entity_id if mapped[-1] == "id" else None
        return change.external_id

    def source(self, source: str, change: Change, resource: dict):
        if source == "id":
            return change.entity_id
        if source == "domain":
            return change.domain
        if self._literal(source):
            return source[1:-1]
        urn, attr, sub = _split(source)
        holder = resource if urn is None else _get(resource, urn)
        value = _get(holder, attr)
        if sub is None:
            return copy.deepcopy(value)
        if isinstance(value, list):
            value = _item(value)
        return copy.deepcopy(_get(value, sub))

    def apply(self, body: dict, change: Change, resource: dict) -> None:
        """Set (or, without a value, remove) every target attribute of ``body``."""
        for target, source in self.pairs:
            value = None if source == "" else self.source(source, change, resource)
            if value is None or value == [] or value == {}:
                _remove(body, target)
            else:
                _assign(body, target, value)


def _holder(body: dict, urn: str | None, create: bool) -> dict | None:
    if urn is None:
        return body
    key = _key(body, urn)
    holder = body.get(key) if key is not None else None
    if isinstance(holder, dict) or not create:
        return holder if isinstance(holder, dict) else None
    holder = body[key or urn] = {}
    schemas = body.setdefault("schemas", [])
    if not any(isinstance(s, str) and s.lower() == urn.lower() for s in schemas):
        schemas.append(urn)
    return holder


def _assign(body: dict, target: str, value) -> None:
    urn, attr, sub = _split(target)
    holder = _holder(body, urn, create=True)
    key = _key(holder, attr) or attr
    if sub is None:
        holder[key] = value
        return
    current = holder.get(key)
    if isinstance(current, list):
        item = _item(current)
        if item is None:
            item = {}
            current.append(item)
        item[_key(item, sub) or sub] = value
    elif isinstance(current, dict):
        current[_key(current, sub) or sub] = value
    else:
        holder[key] = {sub: value}


def _remove(body: dict, target: str) -> None:
    urn, attr, sub = _split(target)
    holder = _holder(body, urn, create=False)
    if holder is None:
        return
    key = _key(holder, attr)
    if key is None:
        return
    if sub is None:
        del holder[key]
    else:
        values = holder[key] if isinstance(holder[key], list) else [holder[key]]
        for item in values:
            if isinstance(item, dict) and _key(item, sub) is not None:
                del item[_key(item, sub)]
    if urn is not None and not holder:  # an emptied extension goes, and its schema
        del body[_key(body, urn)]
        body["schemas"] = [s for s in body.get("schemas", []) if s.lower() != urn.lower()]


def members(change: Change) -> list[dict] | None:
    """``[{"value": remote id}]`` for the members provisioned at this connector."""
    mapping = change.member_remote_ids
    if mapping is None:
        return None
    local = (change.resource or {}).get("members")
    ids = ([m.get("value") for m in local if isinstance(m, dict)] if isinstance(local, list)
           else list(mapping))
    out, seen = [], set()
    for local_id in ids:
        remote = mapping.get(local_id) if isinstance(local_id, str) else None
        if remote and remote not in seen:
            seen.add(remote)
            out.append({"value": remote})
    return out


def password(change: Change, cfg, *, creating: bool) -> str | None:
    if cfg.provision_passwords and change.password:
        return change.password
    if creating and change.kind == EntityKind.USER and cfg.default_password:
        return cfg.default_password
    return None


def outgoing(change: Change, cfg, attributes: AttributeMap, *, scim11: bool,
             creating: bool) -> dict:
    """The body of a POST or PUT for ``change`` (see the module's rules)."""
    resource = change.resource or {}
    body: dict = {"schemas": [core_schema(change.kind)]}
    for key, value in resource.items():
        if not isinstance(key, str) or key.lower() in SERVER_HELD:
            continue
        body[key] = value
        if key.lower().startswith("urn:") and isinstance(value, dict):
            body["schemas"].append(key)
    # a copy of its own (what follows changes it; the resource is shared): resources are
    # JSON, and a JSON round trip copies them several times faster than copy.deepcopy
    try:
        body = orjson.loads(orjson.dumps(body))
    except orjson.JSONEncodeError as exc:  # a resource that is not JSON: a bug upstream
        raise ScimDeliveryError(f"the resource cannot be written as JSON: {exc}",
                                retryable=False) from exc
    if change.kind == EntityKind.GROUP:
        sent = members(change)
        if sent is not None:
            body["members"] = sent
    else:
        secret = password(change, cfg, creating=creating)
        if secret:
            body["password"] = secret
    if scim11:
        body = to_scim11(body)
    if change.external_id:
        _assign(body, "externalId", change.external_id)
    attributes.apply(body, change, resource)
    return body


def external_id(body: dict | None) -> str | None:
    """The ``externalId`` a body carries (what the connector looks the entity up by)."""
    value = _get(body, "externalId")
    return value if isinstance(value, str) and value else None


def wire_name(change: Change, body: dict) -> str:
    """The name the target knows the entity by: the one sent, else ``Change.name``."""
    attr = "userName" if change.kind == EntityKind.USER else "displayName"
    value = _get(body, attr)
    return value if isinstance(value, str) and value else change.name
