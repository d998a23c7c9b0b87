"""Connector types by name: the built-in ones, and third parties' via entry points.

A third-party connector is a package that declares, in its metadata::

    [options.entry_points]
    gateway.connectors =
        salesforce = my_package.salesforce:SalesforceConnector

and is then configured with ``type = "salesforce"``. The class is built as
``Class(cfg, session)`` and must implement ``connectors.base.Connector``.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points

from gateway.errors import ConfigError

from .base import Connector

BUILT_IN = {
    "scim2": "connectors.scim:ScimConnector",
    "scim11": "connectors.scim:ScimConnector",
    "spml": "connectors.spml:SpmlConnector",
}
ENTRY_POINT_GROUP = "gateway.connectors"


def connector_class(kind: str) -> type[Connector]:
    target = BUILT_IN.get(kind)
    if target is not None:
        module, _, name = target.partition(":")
        return getattr(import_module(module), name)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == kind:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Connector)):
                raise ConfigError(f"the connector type {kind!r} ({ep.value}) is not a Connector")
            return cls
    raise ConfigError(f"unknown connector type {kind!r} (built in: {', '.join(BUILT_IN)}; "
                      f"others come from '{ENTRY_POINT_GROUP}' entry points)")


def build(cfg, session) -> Connector:
    """The connector a ``ConnectorConfig`` describes, on the shared HTTP session."""
    return connector_class(cfg.type)(cfg, session)
