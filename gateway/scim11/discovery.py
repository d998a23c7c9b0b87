"""SCIM 1.1 /ServiceProviderConfigs (scim-core-schema-01 §5): what this server supports."""

from __future__ import annotations

from ..config import Config
from ..model.dialects.scim11 import CORE


def service_provider_configs(config: Config, base: str) -> dict:
    return {
        "schemas": [CORE],
        "documentationUrl": "https://github.com/provisioning-gateway/docs/scim11.md",
        "patch": {"supported": True},
        "bulk": {"supported": True, "maxOperations": config.bulk_max_operations,
                 "maxPayloadSize": config.bulk_max_payload_bytes},
        "filter": {"supported": True, "maxResults": config.max_results},
        "changePassword": {"supported": True},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "xmlDataFormat": {"supported": False},
        "authenticationSchemes": [
            {"name": "HTTP Basic", "description": "API client or user store credentials",
             "specUrl": "http://www.ietf.org/rfc/rfc2617.txt", "primary": True},
            {"name": "OAuth Bearer Token",
             "description": "JWT from a configured issuer; scopes map to permissions",
             "specUrl": "http://tools.ietf.org/html/rfc6750"},
        ],
        "meta": {"location": f"{base}/ServiceProviderConfigs"},
    }
