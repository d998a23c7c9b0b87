"""Provision-only clients ("dumb mode", as WSO2 calls it): nothing is stored here.

A client configured with ``provisioning = "provision"`` has its creates,
replaces and deletes sent straight to the connectors that take the change
(domain, kind, and rule: role-based connectors are left out, there are no
memberships to judge by), in the request, and the reply reflects what the
downstream system answered: the id of a created user or group is the id the
first of those connectors gave it, and that id is what the client then
replaces or deletes by. A failure at a connector is the reply's failure
(``ProvisioningFailed``); nothing is queued or retried, since nothing was
kept. Reads and searches are refused: the gateway holds nothing to read.
"""

from __future__ import annotations

import uuid

from connectors.base import Action, Change, DeliveryError, EntityKind
from userstores.base import Record

from .. import operations as ops
from ..errors import GatewayError, NotSupported
from ..model.match import matches
from ..model.times import stamp
from ..model.validate import canonical
from .blocking import ProvisioningFailed

SUPPORTED = (ops.CreateUser, ops.ReplaceUser, ops.DeleteUser, ops.CreateGroup,
             ops.ReplaceGroup, ops.DeleteGroup)


def _now() -> str:
    return stamp()


async def provision_only(service, op: ops.Operation):
    if not isinstance(op, SUPPORTED):
        raise NotSupported(
            "This client provisions without persisting: only creates, replaces and deletes "
            "of users and groups are available to it")
    user = op.kind == ops.USER
    rtype = service.schemas.user if user else service.schemas.group
    kind = EntityKind.USER if user else EntityKind.GROUP
    key = "userName" if user else "displayName"
    data, password = (None, None)
    if isinstance(op, ops.CreateUser | ops.ReplaceUser | ops.CreateGroup | ops.ReplaceGroup):
        data, password = canonical(rtype, op.representation)
        data.pop("members", None)  # members are local ids: nothing here to map them to
        domain = service.stores.split(data[key], group=not user)[0].domain
    else:
        domain = service.stores.primary.domain
    targets = [name for name, sel in service.selectors.items()
               if sel.takes_domain(domain) and sel.takes_kind(kind.value) and not sel.roles
               and (data is None or sel.rule is None or not user or matches(sel.rule, data))]
    if not targets:
        raise ProvisioningFailed("No connector takes this change: nothing was provisioned")
    remote_id = getattr(op, "id", None)
    entity_id = remote_id or str(uuid.uuid4())
    first = None
    for i, name in enumerate(targets):
        connector = service.connectors[name]
        cfg = service.configs[name]
        if isinstance(op, ops.DeleteUser | ops.DeleteGroup):
            change = Change(kind, Action.DELETE, entity_id, domain, None, "")
        else:
            action = Action.CREATE if remote_id is None else Action.UPDATE
            change = Change(kind, action, entity_id, domain, {**data, "id": entity_id},
                            data[key], password=password if cfg.provision_passwords else None,
                            member_remote_ids={} if not user else None)
        try:
            done = await connector.deliver(change, remote_id if i == 0 else None)
        except DeliveryError as exc:
            raise ProvisioningFailed(f"{name} refused the change: {exc.detail}") from None
        except GatewayError:
            raise
        if first is None:
            first = done.remote_id
    if isinstance(op, ops.DeleteUser | ops.DeleteGroup):
        return None
    now = _now()
    record = Record(first or entity_id, data, 1, now, now,
                    groups=[] if user else None, members=None if user else [])
    return ops.Entity(op.kind, domain, record)
