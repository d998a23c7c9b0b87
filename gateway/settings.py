"""Reading the configuration: each section by the part it configures.

``gateway.config`` is the bottom of the layers (every layer reads ``Config``), so it
cannot import the parts it configures; it reads the file and the environment and hands
each top-level section to a parser from ``SECTIONS``, assembled here, above every part:

- ``gateway.config.core``: the gateway's own sections;
- ``userstores.config``: ``[userstores.<DOMAIN>]`` (an LDAP store's keys:
  ``userstores.ldap.config``);
- ``gateway.outbound.config``: ``[outbound]`` (each ``[[outbound.connectors]]``:
  ``connectors.config``);
- ``gateway.jit.config``: ``[jit]``;
- ``gateway.password_policy``: checks the policy's settings of ``[passwords]``;
- ``gateway.config.logs``: ``[logging]``.

An error names the file (or the environment variable) and the key path:
``gateway.toml: userstores.SECONDARY.pool_size: must be >= 1``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from userstores.config import parse_stores

from . import config
from .config import Config, Parse, core, logs
from .jit.config import parse_jit
from .outbound.config import parse_outbound
from .password_policy import check_config


def _passwords(raw: Any, base: Path) -> dict[str, Any]:
    """[passwords]: read by gateway.config.core (hashing), the policy's settings checked by
    the policy itself."""
    fields = dict(core.passwords(raw, base))
    check_config(fields["passwords"])
    return fields


def _userstores(raw: Any, base: Path) -> dict[str, Any]:
    return {"stores": parse_stores(raw, base)}


def _outbound(raw: Any, base: Path) -> dict[str, Any]:
    return {"outbound": parse_outbound(raw, base)}


def _jit(raw: Any, base: Path) -> dict[str, Any]:
    return {"jit": parse_jit(raw, base)}


# every top-level section and its parser, in the order they are read (of two mistakes in
# two sections, the first one's is reported)
SECTIONS: dict[str, Parse] = {
    "security": core.security,
    "passwords": _passwords,
    "userstores": _userstores,
    "clients": core.clients,
    "issuers": core.issuers,
    "extensions": core.extensions,
    "roles": core.roles,
    "server": core.server,
    "limits": core.limits,
    "auth": core.auth,
    "audit": core.audit,
    "soap": core.soap,
    "outbound": _outbound,
    "jit": _jit,
    "logging": logs.section,
}


def load(path: str | os.PathLike | None = None,
         environ: dict[str, str] | None = None) -> Config:
    """The configuration in ``path`` (none: the defaults) with the environment's
    overrides (``environ``, default ``os.environ``); ``ConfigError`` names what is wrong
    and where (``server.port``, ``userstores.PRIMARY.url``, ``outbound.connectors[0]``)."""
    return config.load(path, environ, sections=SECTIONS)
