"""What the pipeline does about accounts: passwords (policy, history, hashing, checks),
lockout and the WSO2 account state, and the bootstrap administrator."""

from __future__ import annotations

import dataclasses
import secrets
import time

from userstores.base import (
    QUIET,
    UNCHANGED,
    PlainPassword,
    Record,
    UserStore,
)

from .. import operations as ops
from ..audit import Event
from ..auth.guard import Throttled
from ..auth.principal import SYSTEM
from ..errors import (
    Conflict,
    Forbidden,
    GatewayError,
    InvalidValue,
    NotFound,
    VersionMismatch,
)
from ..model.account import (
    is_locked,
    locked_until,
    password_expires,
    password_set_now,
    sign_in_refusal,
)
from ..model.schema import WSO2_USER
from ..names import SEPARATOR, is_qualified, qualify
from .common import (
    ADMIN_ROLE,
    CHANGE,
    Replacing,
    log,
)


class AccountOperations:
    """Mixed into :class:`gateway.pipeline.core.Pipeline`."""

    async def _hash(self, password: str | None, store: UserStore,
                    replacing: Replacing | None = None) -> str | None:
        """What the store keeps of a password: an argon2 hash, or, for a store that keeps
        passwords itself, the password (policy-checked) in clear. ``replacing``: the
        password of an existing account, which must not repeat its recent ones."""
        if password is None:
            return None
        self.passwords.check_policy(password)
        if store.capabilities.native_passwords:
            return PlainPassword(password)
        if replacing is not None:
            await self.history.check(store.domain, replacing.user_id, replacing.previous,
                                     password)
        return await self.passwords.hash(password, policy=False)

    async def _replacing(self, store: UserStore, rec: Record, password: str | None
                         ) -> Replacing | None:
        """With ``[passwords] history``: the account whose password ``password`` is about
        to replace, with the hash it replaces."""
        if password is None or not self.history.depth \
                or store.capabilities.native_passwords:
            return None
        found = await store.get_password_hash(rec.data["userName"])
        return Replacing(rec.id, found[1] if found and found[0].id == rec.id else None)

    async def _replaced(self, store: UserStore, replacing: Replacing | None) -> None:
        """The password of ``replacing`` was replaced: the history remembers the old one."""
        if replacing is not None:
            await self.history.superseded(store.domain, replacing.user_id,
                                          replacing.previous)

    async def _check_password(self, op: ops.CheckPassword, *, renewing: bool = False
                              ) -> ops.Entity | None:
        """The user when the password is right and the account may sign in (not disabled,
        not locked), else None: the same answer and the same cost for every refusal.

        Throttled logins are refused (429) before any hash is computed; a failure counts
        towards the account's lockout (``gateway.auth.guard``). ``renewing``: the old
        password of a change, which an expired password still is."""
        if op.anywhere and not is_qualified(op.user_name) and "\x00" not in op.user_name:
            store, bare = await self._resolve(ops.USER, op.user_name, anywhere=True)
            op = dataclasses.replace(op, user_name=qualify(store.domain, bare), anywhere=False)
        account, shown = self._account_names(op.user_name)
        decision = Event.now(shown, "CheckPassword", kind=ops.USER, target=shown,
                             outcome="refused",
                             **({"address": op.source} if op.source else {}))
        try:
            admission = await self.guard.admit(account, op.source)
        except Throttled:
            self.audit.note(dataclasses.replace(decision, detail="throttled"))
            raise
        entity = await self._verify_password(op)
        if entity is None:
            until = await self.guard.failed(admission)
            if until:
                await self._lock(account, until)
            self.audit.note(dataclasses.replace(decision, detail="invalid credentials" + (
                "; the account is now locked" if until else "")))
            return None
        data = entity.record.data
        decision.target_id = entity.id
        refusal = sign_in_refusal(data) or ("locked" if admission.locked_until else None) \
            or ("password expired" if self._password_expired(data) and not renewing else None)
        if refusal is not None:
            self.audit.note(dataclasses.replace(decision, detail=refusal))
            return None
        self.audit.note(dataclasses.replace(decision, outcome="success"))
        if admission.had_failures:
            await self.guard.cleared(account)
        if (data.get(WSO2_USER) or {}).get("accountLocked") is True:
            await self._unlock(entity)  # its lock ran out: the account says so again
        return entity

    def _account_names(self, user_name: str) -> tuple[str, str]:
        """The one spelling of an account's name that lockout and throttling count by
        (``DOMAIN/name``, PRIMARY's too), and the name as the audit trail shows it
        (qualified, PRIMARY's bare); a name of no store stays as given."""
        try:
            domain, bare = self.names.split(user_name)
        except GatewayError:
            return user_name, user_name
        return f"{domain}{SEPARATOR}{bare}", qualify(domain, bare)

    async def _lock(self, account: str, until: float) -> None:
        """Record an automatic lockout on the account (WSO2's accountLocked, unlockTime);
        a store that cannot take it (read-only, a directory) leaves it to the guard."""
        try:
            store, bare = self.stores.split(account)
            rec = await store.get_user_by_name(bare, with_groups=False)
        except GatewayError:  # no such domain or name: nothing to lock but the count
            return
        if rec is not None and await self._set_lock(store, rec.id, until):
            await self._credentials_changed(rec.id)
            log.info("account %s locked after %d failed logins", account,
                     self.config.security.lockout_attempts)

    async def _unlock(self, entity: ops.Entity) -> None:
        """The account's lockout ran out: the account says so again."""
        await self._set_lock(self.stores.get(entity.domain), entity.record.id, None)

    async def _set_lock(self, store: UserStore, user_id: str, until: float | None) -> bool:
        """Write an automatic lockout until ``until`` on an account, or clear it (None)."""
        return await self._set_wso2(store, user_id, locked_until(until) if until is not None
                                    else {"accountLocked": None, "unlockTime": None})

    async def _set_wso2(self, store: UserStore, user_id: str, changes: dict) -> bool:
        """Set (a value) or remove (None) WSO2 account attributes of an account, on its
        latest version and without provisioning them (the account's own state)."""
        if store.capabilities.read_only:
            return False
        for _attempt in range(3):
            try:
                rec = await store.get_user(user_id, with_groups=False)
                if rec is None:
                    return False
                wso2 = {**(rec.data.get(WSO2_USER) or {}), **changes}
                wso2 = {k: v for k, v in wso2.items() if v is not None}
                data = {k: v for k, v in rec.data.items() if k != WSO2_USER}
                if wso2:
                    data[WSO2_USER] = wso2
                await store.replace_user(user_id, data, expected_version=rec.version,
                                         password_hash=UNCHANGED, change=QUIET)
                return True
            except VersionMismatch:
                continue  # changed meanwhile: on the newer version
            except GatewayError as exc:
                log.warning("could not record the account state of %s: %s", user_id,
                            exc.detail)
                return False
        return False

    def _stamp_password(self, data: dict, password: str | None, store: UserStore) -> None:
        """With ``[passwords] max_age_days``, note in ``data`` when its password is set
        (WSO2's lastPasswordUpdateTime, in milliseconds); a directory keeps its own."""
        if password is None or not self._tracks_password_age(store):
            return
        data[WSO2_USER] = {**(data.get(WSO2_USER) or {}), **password_set_now()}

    def _tracks_password_age(self, store: UserStore) -> bool:
        return self.config.passwords.max_age_days > 0 and not store.capabilities.native_passwords

    def _password_expired(self, data: dict) -> bool:
        return password_expires(data, self.config.passwords.max_age_days) < time.time() * 1000

    async def _verify_password(self, op: ops.CheckPassword) -> ops.Entity | None:
        """The user when the password is right, whatever the account's state, else None
        (same cost either way)."""
        try:
            if "\x00" in op.user_name:
                raise InvalidValue("no such name")
            store, bare = self.stores.split(op.user_name)
        except InvalidValue:
            await self.passwords.verify(None, op.password)
            return None
        if store.capabilities.native_passwords:  # the store checks (LDAP: a bind)
            rec = await store.check_password(bare, op.password)
            return None if rec is None else ops.Entity(ops.USER, store.domain, rec)
        found = await store.get_password_hash(bare)
        rec, stored = found if found else (None, None)
        if not await self.passwords.verify(stored, op.password) or rec is None:
            return None
        if self.passwords.needs_rehash(stored) and not store.capabilities.read_only:
            try:
                await store.set_password_hash(rec.id, await self.passwords.hash(
                    op.password, policy=False), change=QUIET)  # the same password
            except Exception:  # noqa: BLE001 - a failed upgrade must not fail the login
                log.warning("could not upgrade the password hash of %s", rec.id)
        return ops.Entity(ops.USER, store.domain, rec)

    async def _change_password(self, op: ops.ChangePassword) -> ops.Entity:
        store, bare = self.stores.split(op.user_name)
        if op.old_password is not None:
            ok = await self._check_password(ops.CheckPassword(op.user_name, op.old_password),
                                            renewing=True)
            if ok is None:
                raise Forbidden("The current password is wrong")
        rec = await store.get_user_by_name(bare, with_groups=False)
        if rec is None:
            raise NotFound(f"User '{op.user_name}' not found")
        self._touching(["password"], ops.Entity(ops.USER, store.domain, rec))
        replacing = (await self._replacing(store, rec, op.new_password) if op.history
                     else None)
        await self._writable(store).set_password_hash(rec.id, await self._hash(
            op.new_password, store, replacing), change=CHANGE.get())
        await self._replaced(store, replacing)
        if self._tracks_password_age(store):
            await self._set_wso2(store, rec.id, password_set_now())
        await self._credentials_changed(rec.id)
        return ops.Entity(ops.USER, store.domain, rec)

    async def _credentials_changed(self, user_id: str | None) -> None:
        for listener in self.credential_listeners:
            await listener(user_id)

    async def _account_changed(self, user_id: str, domain: str, before: dict, after: dict,
                               password: str | None) -> None:
        """Logins remembered for a user end when its password or its state (disabled,
        locked, password expired) changed; an account unlocked by an administrator starts
        afresh."""
        was, now = sign_in_refusal(before), sign_in_refusal(after)
        if password is not None or was != now \
                or self._password_expired(before) != self._password_expired(after):
            await self._credentials_changed(user_id)
        if is_locked(before) and not is_locked(after):
            await self.guard.cleared(f"{domain}/{after['userName']}")

    async def ensure_admin(self, user_name: str | None, password: str | None) -> str | None:
        """The bootstrap administrator; returns a generated password to print, if any.

        With a name and password from the environment: that user exists, has that
        password and is in the ``admin`` role of its store. Without: ``admin`` is created
        with a random password only while the PRIMARY store has no member of its
        ``admin`` role at all (a fresh database), never over an existing account. Every
        change goes through ``execute`` as the gateway itself (audited); it goes on to
        outbound connectors only with ``[auth] provision_bootstrap_admin``."""
        caller = dataclasses.replace(SYSTEM,
                                     provision=self.config.provision_bootstrap_admin)
        name = user_name or "admin"
        store, _bare = self.stores.split(name)
        if store.capabilities.read_only:  # e.g. a directory the gateway only reads
            log.warning("the user store %s is read-only: no administrator is made there; "
                        "administer the gateway with an API client ([[clients]])", store.domain)
            return None
        role_name = qualify(store.domain, ADMIN_ROLE)
        role = await self._existing(ops.GetGroupByName(role_name), caller)
        if password is None and role is not None and role.record.members:
            return None  # administered already: nothing is made or changed
        user = await self._existing(ops.GetUserByName(name), caller)
        generated = None
        if user is None:
            if password is None:  # every class of character: any min_classes holds
                generated = secrets.token_urlsafe(15) + "aZ7-"
            try:
                user = await self.execute(caller, ops.CreateUser(
                    {"userName": name, "password": password or generated}))
            except Conflict:  # another worker or host sharing the database made it now
                return None
        elif password is None:  # an account of that name that is no administrator
            log.warning("no account holds the role %s, and '%s' exists already: it is not "
                        "made an administrator; set %s and %s to choose one", role_name,
                        name, "GATEWAY_ADMIN_USER", "GATEWAY_ADMIN_PASSWORD")
            return None
        elif await self._verify_password(ops.CheckPassword(name, password)) is None:
            # the environment says what it is
            await self.execute(caller, ops.ChangePassword(name, password, history=False))
        if role is None:
            try:
                await self.execute(caller, ops.CreateGroup(
                    {"displayName": role_name, "members": [{"value": user.id}]}))
                return generated
            except Conflict:  # another worker or host sharing the database made it first
                role = await self.execute(caller, ops.GetGroupByName(role_name,
                                                                     with_members=False))
        if role.id not in {g["value"] for g in user.record.groups or []}:
            await self.execute(caller, ops.ChangeMembers(role.id, add=[user.id]))
        return generated

    async def _existing(self, op: ops.Operation, caller=SYSTEM) -> ops.Entity | None:
        """What a lookup by name finds, as the gateway itself; None when nothing."""
        try:
            return await self.execute(caller, op)
        except NotFound:
            return None
