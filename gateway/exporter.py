"""Every user (and, when asked, every group) as JSON Lines in the SCIM 2.0 shape
(``gateway export``), the same representation the SCIM API returns.

The users are read through the pipeline's search (``Pipeline.execute`` as the gateway
itself, ``SearchUsers`` with cursor paging, one page of ``[limits] max_results`` at a
time, so that memory stays flat however many there are) and written with the SCIM
renderer: attributes that are never returned (the password) are not in it, and the
password hashes are not part of a record at all. The file is what ``gateway import``
reads back: ``id``, ``meta`` and ``groups`` are read-only there and ignored.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import BinaryIO

import orjson

from userstores.registry import Stores

from .auth.principal import SYSTEM
from .config import Config
from .operations import Search, SearchGroups, SearchUsers
from .passwords import Passwords
from .pipeline import Pipeline
from .request_context import REQUEST, RequestInfo
from .scim_common.http import SCIM2_PREFIX
from .scim_common.render import Projection, project, resource_json

# never in an exported line, whatever a schema says
SECRETS = frozenset({"password"})


@dataclass
class Exported:
    users: int = 0
    groups: int = 0
    seconds: float = 0.0


def base_url(cfg: Config) -> str:
    """The SCIM 2.0 API's URL in ``meta.location`` and ``$ref``, as the server writes it
    without a request: ``[server] base_url``, else its own address."""
    scheme = "https" if cfg.cert_file else "http"
    root = cfg.base_url.rstrip("/") if cfg.base_url else f"{scheme}://{cfg.host}:{cfg.port}"
    return root + SCIM2_PREFIX


async def _pages(pipeline: Pipeline, op: Search):
    cursor = ""
    while cursor is not None:
        results = await pipeline.execute(SYSTEM, _with_cursor(op, cursor))
        yield results.entities
        cursor = results.next_cursor


def _with_cursor(op: Search, cursor: str) -> Search:
    return replace(op, cursor=cursor)


async def export(cfg: Config, out: BinaryIO, domain: str | None = None, groups: bool = False,
                 progress: Callable[[int], None] | None = None) -> Exported:
    """Write the users (then, with ``groups``, the groups) of ``domain`` (None: every
    store) to ``out``, one SCIM 2.0 resource per line; ``progress(lines so far)``
    after each page."""
    passwords = Passwords(cfg.passwords)
    stores = Stores.from_config(cfg)
    await stores.open()
    started = time.perf_counter()
    done = Exported()
    pipeline = Pipeline(cfg, stores, passwords)
    REQUEST.set(RequestInfo(uuid.uuid4().hex, None, "cli"))
    base = base_url(cfg)
    try:
        if domain is not None:
            stores.get(domain)  # InvalidValue for a domain that is not configured
        kinds = [(SearchUsers, pipeline.schemas.user)]
        if groups:
            kinds.append((SearchGroups, pipeline.schemas.group))
        for search, rtype in kinds:
            op = search(domain=domain, count=cfg.max_results)
            async for entities in _pages(pipeline, op):
                lines = []
                for entity in entities:
                    resource = project(resource_json(entity, rtype, base), rtype, Projection())
                    for key in SECRETS & resource.keys():
                        del resource[key]
                    lines.append(orjson.dumps(resource))
                if lines:
                    out.write(b"\n".join(lines) + b"\n")
                if search is SearchUsers:
                    done.users += len(lines)
                else:
                    done.groups += len(lines)
                if progress is not None:
                    progress(done.users + done.groups)
    finally:
        done.seconds = time.perf_counter() - started
        await stores.close()
        passwords.close()
    return done
