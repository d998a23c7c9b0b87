"""Bulk loading of users from JSON Lines (``gateway import``), for initial loads.

Each line is a SCIM 2.0 User; it is validated like any other create and goes
through the pipeline's bulk path, a few thousand users per transaction (one
``ImportUsers`` each, all or none). Passwords, when present, are hashed with the
configured cost (which dominates the load time); leave them out for the fastest load.

When a batch is refused because a user of it already exists, the importer finds
which one (a name twice in the batch, or a name the store already holds, read
through the pipeline) and stops naming its line and its userName; nothing of that
batch is written. With ``skip_existing`` the users whose name is already taken are
left out instead and the rest of the batch is written (how to resume an import that
stopped). Lines holding a SCIM Group (``gateway export --groups``) are counted and
skipped: groups are not loaded.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from userstores.registry import Stores

from . import state
from .auth.principal import SYSTEM
from .config import Config
from .errors import Conflict, GatewayError, NotFound
from .model.schema import CORE_GROUP
from .names import is_qualified, qualify
from .operations import GetUserByName, ImportUsers, SearchUsers
from .passwords import Passwords
from .pipeline import Pipeline
from .request_context import REQUEST, RequestInfo


@dataclass
class Imported:
    """What an import did: users written, users skipped (``skip_existing``), group lines
    skipped, seconds, and the last line of the last batch written."""
    users: int = 0
    skipped: int = 0
    groups: int = 0
    seconds: float = 0.0
    through_line: int = 0


class ImportStopped(Exception):
    """The import stopped at ``detail``; ``done`` says what was written before (every
    batch before the failing one; nothing of the failing one)."""

    def __init__(self, detail: str, done: Imported, batch: tuple[int, int] | None):
        super().__init__(detail)
        self.detail = detail
        self.done = done
        self.batch = batch  # first and last line of the batch not written, if any


def _lines(path: str):
    stream = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    try:
        for number, line in enumerate(stream, 1):
            if line.strip():
                yield number, line
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def _name(rep) -> str | None:
    name = rep.get("userName") if isinstance(rep, dict) else None
    return name if isinstance(name, str) else None


def _label(number: int, rep) -> str:
    name = _name(rep)
    return f"line {number}" + (f" (user '{name}')" if name is not None else "")


def _is_group(rep) -> bool:
    schemas = rep.get("schemas") if isinstance(rep, dict) else None
    return isinstance(schemas, list) and CORE_GROUP in schemas


class _Loader:
    def __init__(self, pipeline: Pipeline, stores: Stores, domain: str, skip_existing: bool,
                 done: Imported):
        self.pipeline = pipeline
        self.domain = domain
        self.skip_existing = skip_existing
        self.done = done
        # a store without one-transaction loads (LDAP) writes a batch user by user: its
        # names are checked before, so that a clash writes nothing of the batch
        self.check_first = not stores.get(domain).capabilities.bulk_load

    def _qualified(self, name: str) -> str:
        return name if is_qualified(name) else qualify(self.domain, name)

    async def _taken(self, name: str) -> bool:
        try:
            await self.pipeline.execute(SYSTEM, GetUserByName(self._qualified(name), False))
        except NotFound:
            return False
        except GatewayError:  # a name no store of this gateway could hold: not a clash
            return False
        return True

    async def _clashes(self, chunk: list[tuple[int, dict]]) -> list[tuple[int, str, str]]:
        """(line, userName, why) of each user of ``chunk`` whose name is taken: by an
        earlier line of the chunk, or by a user the store already holds."""
        out, seen = [], {}
        for number, rep in chunk:
            name = _name(rep)
            if name is None:
                continue
            key = self._qualified(name).lower()
            if key in seen:
                out.append((number, name, f"line {seen[key]} has it too"))
            else:
                seen[key] = number
                if await self._taken(name):
                    out.append((number, name, "in the store"))
        out.sort()
        return out

    def _unique(self) -> list[tuple[str, str | None, str, bool]]:
        """(filter path, schema, attribute name) of each attribute that must be unique,
        but the name (found by ``_clashes``) and the id (never imported)."""
        rtype = self.pipeline.schemas.user
        out = []
        for schema in rtype.schemas:
            core = schema is rtype.schema
            for attr in schema.attributes:
                if attr.uniqueness == "server" and attr.name not in ("userName", "id"):
                    out.append((attr.name if core else f"{schema.id}:{attr.name}",
                                None if core else schema.id, attr.name, attr.case_exact))
        return out

    async def _value_clashes(self, chunk: list[tuple[int, dict]]) -> list[tuple[int, str, str]]:
        """(line, what, why) of each user of ``chunk`` holding a value that must be unique
        and is taken: by an earlier line of the chunk, or by a user of the store."""
        out = []
        for path, holder, name, case_exact in self._unique():
            seen: dict[str, int] = {}
            for number, rep in chunk:
                where = rep.get(holder) if holder else rep
                value = where.get(name) if isinstance(where, dict) else None
                if not isinstance(value, str):
                    continue
                what = f"user '{_name(rep)}': {path} {value!r}"
                key = value if case_exact else value.lower()
                if key in seen:
                    out.append((number, what, f"line {seen[key]} has it too"))
                    continue
                seen[key] = number
                try:
                    found = await self.pipeline.execute(SYSTEM, SearchUsers(
                        filter=f"{path} eq {orjson.dumps(value).decode()}", count=1,
                        domain=self.domain, with_relations=False))
                except GatewayError:
                    continue
                if found.entities:
                    out.append((number, what, "another user has it"))
        out.sort()
        return out

    def _stop(self, detail: str, chunk: list[tuple[int, dict]]) -> ImportStopped:
        return ImportStopped(detail, self.done, (chunk[0][0], chunk[-1][0]) if chunk else None)

    def _refuse_or_skip(self, chunk, clashes) -> list[tuple[int, dict]]:
        if not self.skip_existing:
            number, name, why = clashes[0]
            raise self._stop(f"line {number}: user '{name}' already exists ({why})", chunk)
        dropped = {number for number, _name, _why in clashes}
        self.done.skipped += len(dropped)
        return [(n, rep) for n, rep in chunk if n not in dropped]

    async def load(self, chunk: list[tuple[int, dict]]) -> None:
        last = chunk[-1][0] if chunk else 0
        if self.check_first:
            clashes = await self._clashes(chunk)
            if clashes:
                chunk = self._refuse_or_skip(chunk, clashes)
        while chunk:
            items = tuple((_label(n, rep), rep) for n, rep in chunk)
            try:
                self.done.users += await self.pipeline.execute(
                    SYSTEM, ImportUsers(self.domain, items))
                break
            except Conflict as exc:
                clashes = await self._clashes(chunk)
                if clashes:
                    chunk = self._refuse_or_skip(chunk, clashes)
                    continue
                taken = await self._value_clashes(chunk)  # another value that is unique
                if taken:
                    number, what, why = taken[0]
                    raise self._stop(f"line {number}: {what} is taken ({why})",
                                     chunk) from None
                lines = (f"line {chunk[0][0]}" if len(chunk) == 1
                         else f"lines {chunk[0][0]}-{chunk[-1][0]}")
                raise self._stop(f"{lines}: {exc.detail}", chunk) from None
            except GatewayError as exc:
                raise self._stop(str(exc.detail), chunk) from None
        self.done.through_line = last


async def import_users(cfg: Config, path: str, domain: str, batch: int,
                       skip_existing: bool = False,
                       progress: Callable[[int], None] | None = None) -> Imported:
    """Load the users of ``path`` (``-``: standard input) into the store of ``domain``,
    ``batch`` per transaction; ``progress(users written so far)`` after each batch.
    Raises ImportStopped at the first line refused."""
    passwords = Passwords(cfg.passwords)
    stores = Stores.from_config(cfg)
    await stores.open()
    started = time.perf_counter()
    done = Imported()
    home, own_home = state.open_home(cfg.outbound.database, stores)
    pipeline = Pipeline(cfg, stores, passwords)
    REQUEST.set(RequestInfo(uuid.uuid4().hex, None, "cli"))  # what the audit trail says
    try:
        await pipeline.audit.start(home)
        loader = _Loader(pipeline, stores, domain, skip_existing, done)
        chunk: list[tuple[int, dict]] = []
        for number, line in _lines(path):
            try:
                rep = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ImportStopped(f"line {number}: not JSON: {exc}", done,
                                    (chunk[0][0] if chunk else number, number)) from None
            if _is_group(rep):
                done.groups += 1
                continue
            chunk.append((number, rep))
            if len(chunk) >= max(1, batch):
                await loader.load(chunk)
                chunk = []
                if progress is not None:
                    progress(done.users)
        if chunk:
            await loader.load(chunk)
            if progress is not None:
                progress(done.users)
    finally:
        done.seconds = time.perf_counter() - started
        await pipeline.audit.stop()
        if own_home and home is not None:
            await home.close()
        await stores.close()
        passwords.close()
    return done


