"""One SOAP call and what every handler needs: its arguments checked, the WSO2 names it
gives turned into the users and roles they mean, and searches run to their end.

Names follow WSO2 (``gateway.names``): ``SECONDARY/alice`` is in the store of
domain SECONDARY, a name without a domain is PRIMARY's, always. With ``[soap]
unqualified_names = "any_store"`` an unqualified name PRIMARY does not hold is
the user or role of the one other store that has it (the pipeline resolves it;
when several have it, the call fails and asks for a qualified name). Names are
returned qualified, PRIMARY names without a domain, as WSO2 returns them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import operations as ops
from ..auth.principal import Principal
from ..errors import InvalidValue, NotFound
from ..names import PRIMARY, Names, is_qualified, qualify
from ..pipeline import Pipeline
from . import wso2_messages as wso2

SUPER_TENANT_ID = -1234  # WSO2's super tenant: the only tenant here
DEFAULT_PROFILE = "default"


@dataclass
class Call:
    """One SOAP call: the authenticated caller and the pipeline it runs on."""

    caller: Principal
    pipeline: Pipeline
    source: str | None = None  # the caller's address

    @property
    def names(self) -> Names:
        return self.pipeline.names

    @property
    def anywhere(self) -> bool:
        """Whether an unqualified name may mean another store's user or role."""
        return self.pipeline.config.soap_unqualified_names == "any_store"

    async def run(self, op: ops.Operation):
        return await self.pipeline.execute(self.caller, op)


# arguments --------------------------------------------------------------------------------
def required(what: str, value: str | None) -> str:
    if value is None or not str(value).strip():
        raise InvalidValue(f"{what} is required")
    return value


def present(what: str, value: str | None) -> str:
    if value is None:
        raise InvalidValue(f"{what} is required")
    return value


def check_profile(name: str | None) -> None:
    if name not in (None, "", DEFAULT_PROFILE):
        raise InvalidValue(f"Unknown profile '{name}': only '{DEFAULT_PROFILE}' exists")


# names ------------------------------------------------------------------------------------
def qualified(entity: ops.Entity) -> str:
    """A user's or role's name as WSO2 returns it."""
    key = "userName" if entity.kind == ops.USER else "displayName"
    return qualify(entity.domain, entity.record.data[key])


def split_domain(call: Call, pattern: str) -> tuple[str | None, str]:
    """A list pattern's domain (None: every store's) and the rest."""
    return call.names.split(pattern) if is_qualified(pattern) else (None, pattern)


async def find(call: Call, kind: str, name: str | None, relations: bool = False
               ) -> ops.Entity | None:
    """The user or group a WSO2 name means (see the module's rule), or None."""
    name = required("A user name" if kind == ops.USER else "A role name", name)
    op = (ops.GetUserByName(name, with_groups=relations, anywhere=call.anywhere)
          if kind == ops.USER
          else ops.GetGroupByName(name, with_members=relations, anywhere=call.anywhere))
    try:
        return await call.run(op)
    except NotFound:
        return None


async def need(call: Call, kind: str, name: str | None, relations: bool = False) -> ops.Entity:
    """The user or group a name means; NotFound (with WSO2's message) if there is none."""
    found = await find(call, kind, name, relations)
    if found is None:
        domain = (call.names.parts(name, kind == ops.GROUP)[0] or PRIMARY).upper()
        if kind == ops.USER:
            raise NotFound(wso2.message(wso2.USER_NOT_FOUND, wso2.domain_free(name), domain))
        raise NotFound(f"Role {name} does not exist in: {domain}")
    return found


async def user_ids(call: Call, names: list[str] | None, domain: str) -> list[str]:
    """The ids of the named users, which must live in ``domain`` (a group's members do)."""
    out = []
    for name in names or []:
        user = await need(call, ops.USER, name)
        if user.domain != domain:
            raise InvalidValue(f"User '{name}' is in the user store {user.domain}; a role of "
                               f"{domain} can only hold users of {domain}")
        out.append(user.id)
    return out


# searches ---------------------------------------------------------------------------------
async def search_all(call: Call, op_type, filter_: str | None, domain: str | None,
                     limit: int, sort_by: str) -> list[ops.Entity]:
    """Up to ``limit`` users or groups matching a filter, over all stores, sorted."""
    out: list[ops.Entity] = []
    cursor = ""
    page = min(limit, call.pipeline.config.max_results)
    while len(out) < limit:
        results = await call.run(op_type(filter=filter_, sort_by=sort_by, domain=domain,
                                         count=min(page, limit - len(out)), cursor=cursor,
                                         with_relations=False))
        out.extend(results.entities)
        cursor = results.next_cursor
        if not cursor or not results.entities:
            break
    return out
