"""Who is calling, and what they may do."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import Forbidden


@dataclass(frozen=True)
class Principal:
    name: str
    kind: str  # "client" (configured API client), "user" (store user), "token" (bearer JWT)
    permissions: frozenset[str]
    user_id: str | None = None
    provision: bool = True  # its changes go on to outbound provisioning
    store: bool = True  # its changes are stored (False: provision-only, "dumb mode")

    def allows(self, permission: str) -> bool:
        perms = self.permissions
        return ("*" in perms or permission in perms
                or f"{permission.split(':', 1)[0]}:*" in perms)

    def require(self, permission: str) -> None:
        if not self.allows(permission):
            raise Forbidden(f"'{self.name}' lacks the permission {permission}")


SYSTEM = Principal("system", "system", frozenset({"*"}))
"""The gateway itself (bootstrap, CLI import): every permission."""


def role_permissions(roles: dict[str, tuple[str, ...]], group_names: list[str]) -> frozenset[str]:
    """The permissions a store user gets from the groups (roles) it belongs to."""
    by_lower = {k.lower(): v for k, v in roles.items()}
    out: set[str] = set()
    for name in group_names:
        out.update(by_lower.get(name.lower(), ()))
    return frozenset(out)
