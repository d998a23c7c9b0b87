"""User stores by domain: PRIMARY first, then the others in configuration order."""

from __future__ import annotations

import inspect

from gateway import metrics
from gateway.config import Config, StoreConfig
from gateway.errors import ConfigError, InvalidValue
from gateway.model.registry import DEFAULT, SchemaRegistry
from gateway.names import PRIMARY, SEPARATOR, Names, qualify

from .base import UserStore

__all__ = ["PRIMARY", "SEPARATOR", "Stores", "build_store"]

# the calls of the store interface that are timed, per domain (gateway.metrics)
TIMED = tuple(name for name, f in vars(UserStore).items()
              if not name.startswith("_") and name not in ("open", "close")
              and inspect.iscoroutinefunction(f))


def _timed(store: UserStore) -> UserStore:
    """The store, its calls timed and their errors counted (``gateway_userstore_*``): each
    call of the interface wrapped on the instance, once."""
    for name in TIMED:
        method = getattr(store, name, None)
        if name not in vars(store) and inspect.iscoroutinefunction(method):
            setattr(store, name, metrics.timed(method, store.domain, name))
    return store


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
        stores = [_timed(s) for s in stores]
        self._by_domain = {s.domain.upper(): s for s in stores}
        self.all = stores
        self.names = Names(s.domain for s in stores)

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

    def split(self, name: str, group: bool = False) -> tuple[UserStore, str]:
        """The store a name (``gateway.names``) lives in, and its bare name there."""
        domain, bare = self.names.split(name, group)
        return self.get(domain), bare

    qualify = staticmethod(qualify)

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
