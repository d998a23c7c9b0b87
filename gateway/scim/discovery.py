"""SCIM 2.0 discovery (RFC 7644 §4): what this server really supports, nothing more."""

from __future__ import annotations

from ..config import Config
from ..errors import NotFound
from ..model.registry import SchemaRegistry

SPC = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"


def service_provider_config(config: Config, base: str) -> dict:
    return {
        "schemas": [SPC],
        "documentationUri": "https://github.com/provisioning-gateway/docs/scim.md",
        "patch": {"supported": True},
        "bulk": {"supported": True, "maxOperations": config.bulk_max_operations,
                 "maxPayloadSize": config.bulk_max_payload_bytes},
        "filter": {"supported": True, "maxResults": config.max_results},
        "changePassword": {"supported": True},
        "sort": {"supported": True},
        # RFC 9865: cursors hold no server state and do not expire
        "pagination": {"cursor": True, "index": True, "defaultPaginationMethod": "index",
                       "defaultPageSize": config.default_count,
                       "maxPageSize": config.max_results},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {"type": "httpbasic", "name": "HTTP Basic",
             "description": "API client or user store credentials", "primary": True},
            {"type": "oauthbearertoken", "name": "OAuth Bearer Token",
             "description": "JWT from a configured issuer; scopes map to permissions"},
        ],
        "meta": {"resourceType": "ServiceProviderConfig",
                 "location": f"{base}/ServiceProviderConfig"},
    }


def _list(resources: list[dict]) -> dict:
    return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": len(resources), "startIndex": 1,
            "itemsPerPage": len(resources), "Resources": resources}


def resource_types(registry: SchemaRegistry, base: str, name: str | None = None) -> dict:
    if name is None:
        return _list([r.to_scim(base) for r in registry.resource_types])
    for r in registry.resource_types:
        if r.name == name:
            return r.to_scim(base)
    raise NotFound(f"No resource type {name!r}")


def schemas(registry: SchemaRegistry, base: str, urn: str | None = None) -> dict:
    if urn is None:
        return _list([s.to_scim(base) for s in registry.schemas])
    for s in registry.schemas:
        if s.id.lower() == urn.lower():
            return s.to_scim(base)
    raise NotFound(f"No schema {urn!r}")
