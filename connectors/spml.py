"""The SPML 2.0 connector (DSML profile, SOAP 1.1, built with zeep, sent with aiohttp).

A user (and, where the target keeps groups, a group) is one PSO whose data
is DSML attributes. The connector says what happened; the dispatcher owns
retries, ordering and the remote-id mapping.

Identifiers. The remote id is the PSO's ``psoID/@ID``. When none is known,
the connector derives it from the name with ``options.id_format`` (default
``"{name}"``; a DN template such as ``"uid={name},ou=people,dc=example"``
escapes the name per RFC 4514) and sends it with ``addRequest``, so a
retried create finds what the first attempt made (``lookupRequest``) instead
of adding it twice. If the target answers ``addRequest`` with a psoID of its
own choosing, that ID becomes the remote id. Every psoID carries the
configured ``targetID`` and ``containerID``. SPML has no rename in its core:
a changed userName is sent as a changed ``uid`` of the same PSO.

What each change does:

* create/update without a remote id: ``lookupRequest`` of the derived psoID;
  found: ``modifyRequest``, else ``addRequest`` (``alreadyExists``: modify).
* update with a remote id: ``modifyRequest`` (``noSuchIdentifier``: the PSO
  vanished, ``addRequest`` re-creates it, possibly under a new remote id).
  A modify replaces every mapped attribute (``dsml:modification
  operation="replace"``; no values removes the attribute at the target).
* delete: ``deleteRequest``; ``noSuchIdentifier`` counts as deleted.
* passwords, only with ``provision_passwords``: ``setPasswordRequest`` of the
  password capability, after the add or modify, with the change's password,
  or ``default_password`` when this delivery added the PSO (never over an
  existing account's password). Never otherwise; never in the attributes.
* groups: only with ``options.groups = true`` (and ``provision_groups``): a
  PSO of ``group_objectclass`` whose ``member_attribute`` (default
  ``member``) lists the members' remote ids. Otherwise group changes are
  not sent and deliver returns ``Delivered(None)``.

Failures: see ``spml_wire.ERROR_RETRYABLE`` (SPML error codes) and
``spml_wire.interpret`` (HTTP status, SOAP faults, broken replies); timeouts
and connection errors are retryable.
"""

from __future__ import annotations

import asyncio
import base64

import aiohttp

from gateway.errors import ConfigError, GatewayError
from gateway.model.dialect import Dialect
from gateway.model.query import is_secret
from gateway.model.schema import ENTERPRISE_USER, GROUP, USER

from .base import Action, Change, Connector, Delivered, DeliveryError, EntityKind
from .config import ConnectorConfig
from .spml_wire import (
    ATTRIBUTE_NAME,
    CONTENT_TYPE,
    Messages,
    PsoId,
    Reply,
    Request,
    failure,
    interpret,
    wsdl_document,
)

E = ENTERPRISE_USER
DEFAULT_USER_ATTRIBUTES: dict[str, str] = {
    "uid": "userName",
    "cn": "name.formatted",
    "sn": "name.familyName",
    "givenName": "name.givenName",
    "displayName": "displayName",
    "mail": "emails[primary eq true].value",
    "telephoneNumber": 'phoneNumbers[type eq "work"].value',
    "mobile": 'phoneNumbers[type eq "mobile"].value',
    "title": "title",
    "preferredLanguage": "preferredLanguage",
    "employeeNumber": f"{E}:employeeNumber",
    "ou": f"{E}:department",
    "o": f"{E}:organization",
}
DEFAULT_GROUP_ATTRIBUTES: dict[str, str] = {"cn": "displayName"}
OBJECTCLASS = "objectclass"
DEFAULT_MAX_REPLY_BYTES = 1 << 20

OPTION_KEYS = {
    "target_id", "container_id", "group_container_id", "objectclass", "group_objectclass",
    "id_format", "group_id_format", "groups", "member_attribute", "group_attributes",
    "wss_password_digest", "max_reply_bytes",
}


def _escape_dn_value(value: str) -> str:
    """An RDN attribute value escaped per RFC 4514 §2.4."""
    out = []
    for i, ch in enumerate(value):
        if ch in '"+,;<>\\' or (ch in " #" and i == 0) or (ch == " " and i == len(value) - 1):
            out.append("\\" + ch)
        elif ch == "\0":
            out.append("\\00")
        else:
            out.append(ch)
    return "".join(out)


def _id_format(where: str, value) -> str:
    if not isinstance(value, str) or "{name}" not in value:
        raise ConfigError(f"{where} must be a string containing {{name}}")
    if "{" in value.replace("{name}", "") or "}" in value.replace("{name}", ""):
        raise ConfigError(f"{where}: the only placeholder is {{name}}")
    return value


def _classes(where: str, value) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value] if value else []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where} must be a string or a list of strings")
    return tuple(value)


class SpmlOptions:
    """``[outbound.connectors.options]`` of an ``spml`` connector."""

    def __init__(self, cfg: ConnectorConfig):
        raw = dict(cfg.options)
        where = f"outbound connector {cfg.name!r}: options"
        unknown = set(raw) - OPTION_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)} "
                              f"(known: {', '.join(sorted(OPTION_KEYS))})")

        def text(key: str) -> str | None:
            value = raw.get(key)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{where}.{key} must be a non-empty string")
            return value

        def flag(key: str) -> bool:
            value = raw.get(key, False)
            if not isinstance(value, bool):
                raise ConfigError(f"{where}.{key} must be true or false")
            return value

        self.target_id = text("target_id")
        self.container_id = text("container_id")
        self.group_container_id = text("group_container_id") or self.container_id
        self.objectclass = _classes(f"{where}.objectclass", raw.get("objectclass",
                                                                      "inetOrgPerson"))
        self.group_objectclass = _classes(f"{where}.group_objectclass",
                                          raw.get("group_objectclass", "groupOfNames"))
        self.id_format = _id_format(f"{where}.id_format", raw.get("id_format", "{name}"))
        self.group_id_format = _id_format(f"{where}.group_id_format",
                                          raw.get("group_id_format", "{name}"))
        self.groups = flag("groups")
        self.wss_password_digest = flag("wss_password_digest")
        self.member_attribute = text("member_attribute") or "member"
        if not ATTRIBUTE_NAME.match(self.member_attribute):
            raise ConfigError(f"{where}.member_attribute is not an LDAP attribute name")
        group_attributes = raw.get("group_attributes", {})
        if not isinstance(group_attributes, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in group_attributes.items()):
            raise ConfigError(f"{where}.group_attributes must be a table of "
                              "target = \"canonical path\"")
        self.group_attributes = group_attributes
        limit = raw.get("max_reply_bytes", DEFAULT_MAX_REPLY_BYTES)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1024:
            raise ConfigError(f"{where}.max_reply_bytes must be an integer >= 1024")
        self.max_reply_bytes = limit


def _dialect(name: str, rtype, defaults: dict[str, str], overrides: dict[str, str],
             where: str, reserved: set[str]) -> Dialect:
    """The defaults with the configuration's entries over them ("" drops a default)."""
    table = {k.lower(): (k, v) for k, v in defaults.items()}
    for key, path in overrides.items():
        table[key.lower()] = (key, path)
    table = {k: p for k, p in table.values() if p}
    for key in table:
        if not ATTRIBUTE_NAME.match(key):
            raise ConfigError(f"{where}: {key!r} is not an LDAP attribute name")
        if key.lower() in reserved:
            raise ConfigError(f"{where}: {key!r} is set by the connector, not mapped")
    try:
        dialect = Dialect(name, rtype, table)
    except GatewayError as exc:
        raise ConfigError(f"{where}: {exc.detail}") from None
    for key in table:
        if is_secret(dialect.leaf(key)):
            raise ConfigError(f"{where}: {key!r} maps a secret attribute; passwords go "
                              "through provision_passwords only")
    return dialect


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return str(value.get("value", ""))
    return str(value)


class SpmlConnector(Connector):
    def __init__(self, cfg: ConnectorConfig, session: aiohttp.ClientSession):
        self.name = cfg.name
        self.cfg = cfg
        self.options = opts = SpmlOptions(cfg)
        where = f"outbound connector {cfg.name!r}"
        self.users = _dialect("spml-user", USER, DEFAULT_USER_ATTRIBUTES,
                              dict(cfg.attributes), f"{where}: attributes", {OBJECTCLASS})
        self.groups = _dialect("spml-group", GROUP, DEFAULT_GROUP_ATTRIBUTES,
                               opts.group_attributes, f"{where}: options.group_attributes",
                               {OBJECTCLASS, opts.member_attribute.lower()})
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=cfg.timeout_seconds)
        self._ssl = bool(cfg.verify_tls)  # False: no certificate check
        self._headers = {"Content-Type": CONTENT_TYPE, "SOAPAction": '""',
                         "Accept": "text/xml"}
        self._wsse = None
        self._secrets = [s for s in (cfg.password, cfg.token, cfg.api_key) if s]

        def need(*keys: str) -> None:
            missing = [k for k in keys if getattr(cfg, k) is None]
            if missing:
                raise ConfigError(f"{where}: auth = {cfg.auth!r} needs {', '.join(missing)}")

        if cfg.auth == "basic":
            need("username", "password")
            token = base64.b64encode(f"{cfg.username}:{cfg.password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        elif cfg.auth == "wss":
            need("username", "password")
            from zeep.wsse.username import UsernameToken

            self._wsse = UsernameToken(cfg.username, cfg.password,
                                       use_digest=opts.wss_password_digest)
        elif cfg.auth == "bearer":
            need("token")
            self._headers["Authorization"] = f"Bearer {cfg.token}"
        elif cfg.auth == "api_key":
            need("api_key")
            self._headers[cfg.api_key_header] = cfg.api_key
        self._messages: Messages | None = None
        self._loading = asyncio.Lock()

    # --- identifiers and data ----------------------------------------------------------

    def supports(self, kind: EntityKind) -> bool:
        return kind is EntityKind.USER or (self.options.groups and self.cfg.provision_groups)

    def derived_id(self, kind: EntityKind, name: str) -> str:
        """The psoID ID an entity gets from its name (options.id_format)."""
        fmt = self.options.id_format if kind is EntityKind.USER else self.options.group_id_format
        before = fmt.split("{name}", 1)[0]
        value = _escape_dn_value(name) if "=" in before else name
        return fmt.replace("{name}", value)

    def pso(self, kind: EntityKind, pso_id: str) -> PsoId:
        container = (self.options.container_id if kind is EntityKind.USER
                     else self.options.group_container_id)
        return PsoId(pso_id, self.options.target_id, container)

    def attributes(self, change: Change) -> dict[str, list[str]]:
        """Every mapped DSML attribute of the entity (an empty list: no value)."""
        resource = change.resource or {}
        dialect = self.users if change.kind is EntityKind.USER else self.groups
        out = {name: [_text(v) for v in dialect.read(resource, name) if v is not None]
               for name in dialect.table}
        if change.kind is EntityKind.GROUP and change.member_remote_ids is not None:
            out[self.options.member_attribute] = sorted(set(change.member_remote_ids.values()))
        return out

    def _objectclass(self, kind: EntityKind) -> tuple[str, ...]:
        return self.options.objectclass if kind is EntityKind.USER \
            else self.options.group_objectclass

    # --- the connector interface -----------------------------------------------------------

    async def deliver(self, change: Change, remote_id: str | None) -> Delivered:
        if not self.supports(change.kind):
            return Delivered(None)  # the target keeps no groups: nothing to send
        if change.action is Action.DELETE:
            return await self._delete(change, remote_id)
        if change.action is Action.PASSWORD:
            return await self._password(change, remote_id)
        return await self._upsert(change, remote_id)

    async def lookup(self, kind: EntityKind, name: str) -> str | None:
        if not self.supports(kind):
            return None
        pso = self.pso(kind, self.derived_id(kind, name))
        return await self._find(pso)

    async def health(self) -> str:
        messages = await self._msgs()
        reply = await self._send(messages.list_targets())
        if not reply.ok:
            raise failure("listTargetsRequest", reply)
        wanted = self.options.target_id
        if wanted is not None and wanted not in reply.target_ids:
            raise DeliveryError(f"listTargetsRequest: the target offers no targetID {wanted!r} "
                                f"(it offers {', '.join(map(str, reply.target_ids)) or 'none'})",
                                retryable=False)
        shown = ", ".join(t or "(no id)" for t in reply.target_ids)
        return f"SPML 2.0 target up: {len(reply.target_ids)} target(s): {shown}"

    async def close(self) -> None:
        self._messages = None  # the aiohttp session is the process's, not ours

    # --- operations ----------------------------------------------------------------------

    async def _upsert(self, change: Change, remote_id: str | None) -> Delivered:
        kind = change.kind
        attrs = self.attributes(change)
        fresh = self.pso(kind, self.derived_id(kind, change.name))
        if remote_id is not None:
            rid, added = await self._modify_or_add(kind, self.pso(kind, remote_id), attrs, fresh)
        else:
            found = await self._find(fresh)
            if found is not None:
                rid, added = await self._modify_or_add(kind, self.pso(kind, found), attrs, fresh)
            else:
                rid, added = await self._add(kind, fresh, attrs)
        if kind is EntityKind.USER and self.cfg.provision_passwords:
            password = change.password or (self.cfg.default_password if added else None)
            if password:
                await self._set_password(self.pso(kind, rid), password)
        return Delivered(rid)

    async def _modify_or_add(self, kind, pso: PsoId, attrs, fresh: PsoId) -> tuple[str, bool]:
        messages = await self._msgs()
        reply = await self._send(messages.modify(pso, attrs))
        if reply.ok:
            return pso.id, False
        if reply.error == "noSuchIdentifier":  # the PSO vanished at the target: re-create it
            return await self._add(kind, fresh, attrs)
        raise failure("modifyRequest", reply)

    async def _add(self, kind: EntityKind, pso: PsoId, attrs) -> tuple[str, bool]:
        messages = await self._msgs()
        data = {OBJECTCLASS: list(self._objectclass(kind)), **attrs}
        reply = await self._send(messages.add(pso, data))
        if reply.ok:
            return reply.pso_id or pso.id, True
        if reply.error != "alreadyExists":
            raise failure("addRequest", reply)
        again = await self._send(messages.modify(pso, attrs))  # ours from an earlier attempt
        if again.ok:
            return pso.id, False
        if again.error == "noSuchIdentifier":
            raise DeliveryError(f"addRequest: {pso.id!r} exists, then modifyRequest: it does "
                                "not (changing at the target)", retryable=True)
        raise failure("modifyRequest", again)

    async def _find(self, pso: PsoId) -> str | None:
        messages = await self._msgs()
        reply = await self._send(messages.lookup(pso))
        if reply.ok:
            return reply.pso_id or pso.id
        if reply.error == "noSuchIdentifier":
            return None
        raise failure("lookupRequest", reply)

    async def _delete(self, change: Change, remote_id: str | None) -> Delivered:
        kind = change.kind
        pso = self.pso(kind, remote_id if remote_id is not None
                       else self.derived_id(kind, change.name))
        messages = await self._msgs()
        reply = await self._send(messages.delete(pso))
        if reply.ok or reply.error == "noSuchIdentifier":  # gone already: deleted
            return Delivered(None)
        raise failure("deleteRequest", reply)

    async def _password(self, change: Change, remote_id: str | None) -> Delivered:
        if change.kind is not EntityKind.USER or not self.cfg.provision_passwords \
                or not change.password:
            return Delivered(remote_id)  # passwords are not provisioned: nothing to send
        pso_id = remote_id if remote_id is not None else self.derived_id(change.kind,
                                                                             change.name)
        await self._set_password(self.pso(change.kind, pso_id), change.password)
        return Delivered(pso_id)

    async def _set_password(self, pso: PsoId, password: str) -> None:
        messages = await self._msgs()
        reply = await self._send(messages.set_password(pso, password), secret=password)
        if not reply.ok:
            raise self._scrubbed(failure("setPasswordRequest", reply), password)

    # --- transport ---------------------------------------------------------------------------

    async def _msgs(self) -> Messages:
        if self._messages is None:
            async with self._loading:
                if self._messages is None:  # the WSDL: file I/O, once per process
                    document = await asyncio.to_thread(wsdl_document)
                    self._messages = Messages(document, wsse=self._wsse)
        return self._messages

    def _scrubbed(self, exc: DeliveryError, *extra: str) -> DeliveryError:
        detail = exc.detail
        for secret in (*self._secrets, *extra):
            if secret:
                detail = detail.replace(secret, "***")
        if detail == exc.detail:
            return exc
        return DeliveryError(detail, retryable=exc.retryable)

    async def _send(self, request: Request, secret: str | None = None) -> Reply:
        """POST one request; the reply, or a DeliveryError (never carrying a secret)."""
        op = request.operation
        try:
            async with self._session.post(
                    self.cfg.url, data=request.body, headers=self._headers,
                    timeout=self._timeout, ssl=self._ssl, allow_redirects=False,
                    raise_for_status=False) as resp:
                body = await self._read(resp, op)
                status = resp.status
            return interpret(status, body, request)
        except DeliveryError as exc:
            raise self._scrubbed(exc, secret or "") from None
        except TimeoutError as exc:
            raise DeliveryError(f"{op}: no reply within {self.cfg.timeout_seconds:g}s",
                                retryable=True) from exc
        except aiohttp.ClientError as exc:
            error = self._scrubbed(DeliveryError(f"{op}: {type(exc).__name__}: {exc}",
                                                 retryable=True), secret or "")
            raise error from exc

    async def _read(self, resp: aiohttp.ClientResponse, op: str) -> bytes:
        limit = self.options.max_reply_bytes
        if resp.content_length is not None and resp.content_length > limit:
            raise DeliveryError(f"{op}: a reply of {resp.content_length} bytes "
                                f"(the limit is {limit})", retryable=True)
        chunks, size = [], 0
        async for chunk in resp.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > limit:
                raise DeliveryError(f"{op}: a reply over {limit} bytes", retryable=True)
            chunks.append(chunk)
        return b"".join(chunks)
