"""Bulk loading of users from JSON Lines (``gateway import``), for initial loads.

Each line is a SCIM 2.0 User; it is validated like any other create and goes
through the pipeline's bulk path, a few thousand users per transaction.
Passwords, when present, are hashed with the configured cost (which
dominates the load time); leave them out for the fastest load.
"""

from __future__ import annotations

import sys
import time
import uuid

import orjson

from userstores.registry import Stores

from . import state
from .auth.principal import SYSTEM
from .config import Config
from .errors import InvalidSyntax
from .operations import ImportUsers
from .passwords import Passwords
from .pipeline import Pipeline
from .request_context import REQUEST, RequestInfo


def _lines(path: str):
    stream = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    try:
        for number, line in enumerate(stream, 1):
            if line.strip():
                yield number, line
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


async def import_users(cfg: Config, path: str, domain: str, batch: int) -> tuple[int, float]:
    passwords = Passwords(cfg.passwords)
    stores = Stores.from_config(cfg)
    await stores.open()
    started = time.perf_counter()
    total = 0
    home, own_home = state.open_home(cfg.outbound.database, stores)
    pipeline = Pipeline(cfg, stores, passwords)
    REQUEST.set(RequestInfo(uuid.uuid4().hex, None, "cli"))  # what the audit trail says
    try:
        await pipeline.audit.start(home)
        chunk: list[tuple[str, dict]] = []
        for number, line in _lines(path):
            try:
                chunk.append((f"line {number}", orjson.loads(line)))
            except orjson.JSONDecodeError as exc:
                raise InvalidSyntax(f"line {number}: not JSON: {exc}") from None
            if len(chunk) >= batch:
                total += await pipeline.execute(SYSTEM, ImportUsers(domain, tuple(chunk)))
                chunk = []
        if chunk:
            total += await pipeline.execute(SYSTEM, ImportUsers(domain, tuple(chunk)))
    finally:
        await pipeline.audit.stop()
        if own_home and home is not None:
            await home.close()
        await stores.close()
        passwords.close()
    return total, time.perf_counter() - started
