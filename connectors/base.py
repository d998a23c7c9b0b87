"""The outbound connector interface.

A connector pushes one committed change of a user or group to one downstream
system. The dispatcher (not the connector) owns retries, ordering and the
remote-id mapping; a connector only says what happened, and whether a
failure is worth retrying. Building a request and reading a response are kept
apart from the transport (an aiohttp session, a zeep client), which is
injected, so connectors can be tested against real local peers.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from enum import StrEnum

from gateway.errors import GatewayError


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    PASSWORD = "password"  # noqa: S105 - an action name


class EntityKind(StrEnum):
    USER = "User"
    GROUP = "Group"


@dataclass(frozen=True)
class Change:
    """One committed change, as the outbox records it."""

    kind: EntityKind
    action: Action
    entity_id: str  # local id
    domain: str
    resource: dict | None  # canonical representation after the change (None for delete)
    name: str  # userName / displayName, for lookups when no remote id is known
    password: str | None = None  # only when password provisioning is on for the connector
    # groups: the remote ids of the members already provisioned at this connector (local id
    # -> remote id); members without one are left out of what is sent
    member_remote_ids: dict[str, str] | None = None
    # the identifier the gateway knows the entity by, for the target's ``externalId`` (the
    # dispatcher's local id: a retried create or a delete then finds it exactly); None:
    # the resource's own ``externalId`` goes as it is
    external_id: str | None = None
    # no remote id is known, but an earlier attempt may have reached the target without its
    # answer coming back (a timeout, a connection dropped after sending, a process killed
    # mid-delivery): the entity may be there. A create then looks it up (``find``) before
    # creating it, and a delete without a remote id looks it up and removes what it finds.
    uncertain: bool = False


@dataclass(frozen=True)
class Delivered:
    remote_id: str | None  # the id the target knows the entity by (None after a delete)


class DeliveryError(GatewayError):
    """A delivery failed; ``retryable`` says whether trying again may succeed."""

    status = 502

    def __init__(self, detail: str, *, retryable: bool, retry_after: float | None = None,
                 target_status: int | None = None):
        super().__init__(detail)
        self.retryable = retryable
        self.retry_after = retry_after  # seconds the target asked to wait (Retry-After)
        self.target_status = target_status  # the target's HTTP status, when it answered


class Connector(abc.ABC):
    """One downstream system.

    Built by ``connectors.registry.build(cfg, session)`` from its
    ``connectors.config.ConnectorConfig`` and the process's shared
    ``aiohttp.ClientSession``; ``cfg.type`` names the implementation (``scim2``,
    ``scim11``, ``spml``, or a third party's ``gateway.connectors`` entry point).
    """

    name: str

    @abc.abstractmethod
    async def deliver(self, change: Change, remote_id: str | None) -> Delivered:
        """Apply a change at the target; raise DeliveryError on failure.

        ``remote_id`` is the mapped id at this target, or None when none is known
        (the connector then looks the entity up by name before creating, so that
        a retried create does not duplicate it).
        """

    @abc.abstractmethod
    async def lookup(self, kind: EntityKind, name: str) -> str | None:
        """The remote id of an entity by userName/displayName, or None."""

    async def find(self, change: Change) -> str | None:
        """The remote id of ``change``'s entity at the target, or None: how the connector
        recognises an entity it made without knowing its id (by default its name; the SCIM
        connector asks for the ``externalId`` it sent first)."""
        if not change.name:
            return None
        return await self.lookup(change.kind, change.name)

    @abc.abstractmethod
    async def health(self) -> str:
        """A short status of the target; raise DeliveryError when it is unreachable."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release transports."""
