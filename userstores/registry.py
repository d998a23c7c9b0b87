"""User stores by domain: PRIMARY first, then the others in configuration order."""

from __future__ import annotations

from gateway.config import Config, StoreConfig
from gateway.errors import ConfigError, InvalidValue
from gateway.model.registry import DEFAULT, SchemaRegistry

from .base import UserStore

PRIMARY = "PRIMARY"
SEPARATOR = "/"
# WSO2's hybrid roles (Internal/everyone, Application/app): groups of the PRIMARY store
# whose name keeps its prefix
HYBRID_DOMAINS = ("INTERNAL", "APPLICATION")


def build_store(cfg: StoreConfig, schemas: SchemaRegistry = DEFAULT) -> UserStore:
    if cfg.type == "sql":
        from .sql.store import SQLUserStore

        return SQLUserStore(cfg.domain, cfg.url, read_only=cfg.read_only, pool_size=cfg.pool_size,
                            schemas=schemas)
    if cfg.type == "ldap":
        from .ldap.store import LDAPUserStore

        return LDAPUserStore(cfg.domain, cfg.url, cfg.ldap, read_only=cfg.read_only,
                             pool_size=cfg.pool_size, schemas=schemas)
    raise ConfigError(f"unknown user store type {cfg.type!r}")


class Stores:
    def __init__(self, stores: list[UserStore]):
        self._by_domain = {s.domain.upper(): s for s in stores}
        self.all = stores

    @classmethod
    def from_config(cls, config: Config) -> Stores:
        schemas = SchemaRegistry.build(config.extensions)
        return cls([build_store(s, schemas) for s in config.stores.values()])

    @property
    def primary(self) -> UserStore:
        return self._by_domain[PRIMARY]

    def get(self, domain: str) -> UserStore:
        store = self._by_domain.get(domain.upper())
        if store is None:
            raise InvalidValue(f"Unknown user store domain '{domain}'")
        return store

    def is_hybrid(self, name: str) -> bool:
        """A WSO2 hybrid role name (``Internal/everyone``): a PRIMARY group, prefix kept."""
        domain = name.split(SEPARATOR, 1)[0].upper() if SEPARATOR in name else ""
        return domain in HYBRID_DOMAINS and domain not in self._by_domain

    def split(self, name: str, group: bool = False) -> tuple[UserStore, str]:
        """``SECONDARY/alice`` -> (SECONDARY store, "alice"); no domain means PRIMARY.

        Group names of WSO2's hybrid domains (``Internal/x``) stay whole, in PRIMARY.
        """
        if group and self.is_hybrid(name):
            return self.primary, name
        if SEPARATOR in name:
            domain, bare = name.split(SEPARATOR, 1)
            if not bare.strip():
                raise InvalidValue(f"'{name}' has a domain but no name")
            return self.get(domain), bare
        return self.primary, name

    @staticmethod
    def qualify(domain: str, name: str) -> str:
        return name if domain.upper() == PRIMARY else f"{domain}{SEPARATOR}{name}"

    async def open(self) -> None:
        opened = []
        try:
            for store in self.all:
                await store.open()
                opened.append(store)
        except BaseException:
            for store in opened:
                await store.close()
            raise

    async def close(self) -> None:
        for store in self.all:
            await store.close()
