"""User store settings: ``[userstores.<DOMAIN>]``, one table per store (see
docs/configuration.md; an LDAP store's own keys in docs/ldap.md), read into
``StoreConfig``.

Every store has a ``type`` (``sql``, the default, or ``ldap``), a ``url`` (or
``url_file``: a SQL URL holds the database password), ``read_only``, ``pool_size`` and
``required``; a type adds its own keys, read by its own parser
(``TYPES``). Without a ``[userstores.PRIMARY]`` PRIMARY is a SQLite file
``gateway.db`` in the current folder; PRIMARY comes first, then the others in the
file's order. ``StoreConfig`` lives with the other settings types in
``gateway.config`` (``Config`` holds it); it is named here too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gateway.config import LdapConfig, StoreConfig
from gateway.config_values import UnknownSetting, secret, table, typed, unknown
from gateway.errors import ConfigError
from gateway.names import PRIMARY

from .ldap.config import KEYS as LDAP_KEYS
from .ldap.config import parse_ldap

__all__ = ["DEFAULT_DB", "KEYS", "TYPES", "StoreConfig", "parse_store", "parse_stores"]

DEFAULT_DB = "gateway.db"
# every store's
KEYS = frozenset({"type", "url", "url_file", "read_only", "pool_size", "required"})

# a store type -> the keys it adds, and how it reads them (section, where, the folder
# file names are relative to) -> its settings
TYPES: dict[str, tuple[frozenset[str], Callable[[dict, str, Path], LdapConfig] | None]] = {
    "sql": (frozenset(), None),
    "ldap": (LDAP_KEYS, parse_ldap),
}


def parse_store(domain: str, sec, base: Path | None = None) -> StoreConfig:
    """One ``[userstores.<domain>]`` table (``base``: the folder of the configuration
    file, which ``*_file`` names are relative to; default the working folder)."""
    base = Path.cwd() if base is None else base
    where = f"userstores.{domain}"
    if not isinstance(sec, dict):
        raise ConfigError(f"[{where}] must be a table")
    kind = typed(sec, where, "type", str, "sql")
    own, parse = TYPES.get(kind, (frozenset(), None))
    for other, (keys, _) in TYPES.items():  # an LDAP key on a store that is not LDAP
        misplaced = sorted(set(sec) & (keys - own - KEYS))
        if misplaced and kind in TYPES:
            raise UnknownSetting(f"[{where}]: {', '.join(misplaced)} is a setting of "
                                 f"type = \"{other}\" stores (this one is {kind!r})",
                                 tuple(f"{where}.{key}" for key in misplaced))
    unknown(sec, where, KEYS | own)
    name = domain.upper()
    if not name.replace("_", "").replace("-", "").isalnum() or "/" in name:
        raise ConfigError(f"[{where}]: a domain name is letters, digits, - and _")
    if name == "INTERNAL":
        raise ConfigError(f"[{where}]: INTERNAL is reserved for internal roles")
    if kind not in TYPES:
        raise ConfigError(f"[{where}]: unknown store type {kind!r} "
                          f"(supported: {', '.join(TYPES)})")
    url = secret(sec, where, "url", base)
    if not url:
        raise ConfigError(f"[{where}]: 'url' (or 'url_file') is required")
    pool_size = typed(sec, where, "pool_size", int, 8)
    if pool_size < 1:  # no pool, no store: refused here, not by a traceback later
        raise ConfigError(f"{where}.pool_size: must be >= 1 (is {pool_size})")
    return StoreConfig(name, url, kind, typed(sec, where, "read_only", bool, False),
                       pool_size,
                       parse(sec, where, base) if parse is not None else None,
                       required=typed(sec, where, "required", bool, False))


def parse_stores(raw, base: Path | None = None) -> dict[str, StoreConfig]:
    """``[userstores]`` as read (None when the file has none): the stores by upper-case
    domain, PRIMARY first."""
    stores: dict[str, StoreConfig] = {}
    for domain, sec in table(raw, "userstores").items():
        store = parse_store(domain, sec, base)
        stores[store.domain] = store
    if PRIMARY not in stores:
        stores = {PRIMARY: StoreConfig(PRIMARY, f"sqlite:///{DEFAULT_DB}"), **stores}
    return {PRIMARY: stores[PRIMARY], **{k: v for k, v in stores.items() if k != PRIMARY}}
