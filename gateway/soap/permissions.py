"""WSO2's permissions (``services.xml``) mapped onto the gateway's.

Each operation of the service names the WSO2 permission that guards it; the
caller needs the gateway permission it maps to. What the operation then does
goes through the pipeline, which checks its own permissions as well (e.g.
``deleteUserClaimValue``, guarded by WSO2's ``usermgt/delete``, changes a user
and so also needs ``users:update``).
"""

from __future__ import annotations

from .service import IDENTITY, Op

WSO2_TO_GATEWAY = {
    IDENTITY + "/usermgt/create": "users:create",
    IDENTITY + "/usermgt/update": "users:update",
    IDENTITY + "/usermgt/delete": "users:delete",
    IDENTITY + "/usermgt/view": "users:view",
    IDENTITY + "/usermgt/list": "users:list",
    IDENTITY + "/rolemgt/create": "groups:create",
    IDENTITY + "/rolemgt/update": "groups:update",
    IDENTITY + "/rolemgt/delete": "groups:delete",
    IDENTITY + "/rolemgt/view": "groups:view",
    IDENTITY + "/userprofile/view": "users:view",
}

# operations guarded only by the service-wide permission (all of identity management in
# WSO2): the narrowest gateway permission that covers what they do
SERVICE_WIDE = {
    "authenticate": "users:authenticate",
    "isExistingUser": "users:view",
}


def required(op: Op) -> str:
    """The gateway permission a caller needs to call ``op``."""
    if op.name in SERVICE_WIDE:
        return SERVICE_WIDE[op.name]
    return WSO2_TO_GATEWAY[op.permission]
