"""Which connectors get which changes: domains, role-based and rule-based provisioning.

A connector takes the changes of the user store domains it names (all when
none). For users it may name roles (role-based provisioning: only members of
one of those roles, directly or through nested groups, are provisioned;
losing the role deprovisions) and a rule (rule-based provisioning: a SCIM
filter the user must match, evaluated in memory on the user as it is now).
Groups go to every connector with ``provision_groups``.
"""

from __future__ import annotations

from connectors.config import ConnectorConfig

from ..model.match import matches
from ..model.parsing import parse_filter
from ..model.query import Node
from ..model.schema import ResourceType


class Selector:
    def __init__(self, cfg: ConnectorConfig, users: ResourceType, qualify):
        self.cfg = cfg
        self.roles = {r.lower() for r in cfg.roles}
        self.rule: Node | None = parse_filter(users, cfg.rule) if cfg.rule else None
        self._qualify = qualify  # (domain, name) -> the name clients see

    def takes_domain(self, domain: str) -> bool:
        return not self.cfg.domains or domain.upper() in self.cfg.domains

    def takes_kind(self, kind: str) -> bool:
        return kind == "User" or self.cfg.provision_groups

    def selects_user(self, domain: str, resource: dict, groups: list[dict]) -> bool:
        """Whether a user (as it is now, with its direct and indirect groups) goes out."""
        if self.roles:
            names = {self._qualify(domain, g.get("display", "")).lower() for g in groups}
            names |= {g.get("display", "").lower() for g in groups}
            if not names & self.roles:
                return False
        return self.rule is None or matches(self.rule, resource)
