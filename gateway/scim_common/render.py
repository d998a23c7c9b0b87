"""Canonical entities as SCIM 2.0 resources, with ``attributes``/``excludedAttributes``.

The SCIM 2.0 API answers with them; the SCIM 1.1 API writes them in its dialect
(``gateway.model.dialects.scim11.to_scim11``); a JIT login's reply carries its user so.
"""

from __future__ import annotations

from dataclasses import dataclass

from scim2_models.path import AttrPath, Path

from ..errors import InvalidValue
from ..model.query import AttrRef, resolve_attr
from ..model.schema import ALWAYS, ResourceType
from ..names import qualify
from ..operations import USER, Entity


def resource_json(entity: Entity, rtype: ResourceType, base: str) -> dict:
    rec = entity.record
    data = rec.data
    schemas = [rtype.schema.id] + [e.id for e in rtype.extensions if e.id in data]
    out: dict = {"schemas": schemas, "id": rec.id}
    name_key = "userName" if entity.kind == USER else "displayName"
    for key, value in data.items():
        if key.startswith("urn:") and key not in schemas:
            continue  # an extension no longer configured
        out[key] = qualify(entity.domain, value) if key == name_key else value
    if entity.kind == USER:
        if rec.groups is not None:
            out["groups"] = [
                {"value": g["value"], "$ref": f"{base}/Groups/{g['value']}",
                 "display": qualify(g.get("domain", entity.domain), g["display"]),
                 "type": g.get("type", "direct")}
                for g in rec.groups
            ]
    elif rec.members is not None:
        out["members"] = [
            {"value": m["value"], "$ref": f"{base}/{m['type']}s/{m['value']}", "type": m["type"],
             **({"display": qualify(m.get("domain", entity.domain), m["display"])}
                if "display" in m
                else {})}
            for m in rec.members
        ]
    out["meta"] = {
        "resourceType": rtype.name,
        "created": rec.created,
        "lastModified": rec.last_modified,
        "location": f"{base}{rtype.endpoint}/{rec.id}",
        "version": f'W/"{rec.version}"',
    }
    return out


@dataclass(frozen=True)
class Projection:
    """What ``attributes``/``excludedAttributes`` ask for (RFC 7644 §3.4.2.5)."""

    include: tuple[AttrRef, ...] = ()
    exclude: tuple[AttrRef, ...] = ()

    def wants(self, attr_name: str) -> bool:
        """Whether a top-level core attribute is returned (to skip loading it at all)."""
        if self.include:
            return any(r.attr.name == attr_name for r in self.include)
        return not any(r.attr.name == attr_name and r.sub is None for r in self.exclude)


def _refs(rtype: ResourceType, text: str | None) -> tuple[AttrRef, ...]:
    if not text:
        return ()
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        schema = rtype.schema_for(part) if part.lower().startswith("urn:") else None
        if schema is not None and schema is not rtype.schema:
            out.extend(AttrRef(schema, a) for a in schema.attributes)
            continue
        try:
            ast = Path(part).ast
        except Exception:  # noqa: BLE001 - any parse failure is the client's
            raise InvalidValue(f"Invalid attribute name {part!r}") from None
        if not isinstance(ast, AttrPath):
            raise InvalidValue(f"Invalid attribute name {part!r}")
        out.append(resolve_attr(rtype, ast, error=InvalidValue))
    return tuple(out)


def projection(rtype: ResourceType, attributes: str | None, excluded: str | None) -> Projection:
    return Projection(_refs(rtype, attributes), _refs(rtype, excluded))


def _keep_sub(value, sub_names: set[str]):
    def trim(item):
        return {k: v for k, v in item.items() if k in sub_names} if isinstance(item, dict) else item

    if isinstance(value, list):
        return [trim(i) for i in value]
    return trim(value)


def _strip(resource: dict, rtype: ResourceType, rules: dict, keep: tuple = ()) -> None:
    """Remove attributes (and sub-attributes) named by ``rules``, except those in ``keep``."""
    for schema in rtype.schemas:
        rule = rules.get(schema.id)
        if rule is None:
            continue
        holder = resource.get(schema.id) if schema.alias else resource
        if not isinstance(holder, dict):
            continue
        if schema.alias:  # copy before changing: the stored record shares these dicts
            holder = resource[schema.id] = dict(holder)
        top, subs = rule
        for name in top:
            if name in holder and not any(r.schema is schema and r.attr.name == name
                                          for r in keep):
                del holder[name]
        for name, sub_names in subs.items():
            if name not in holder:
                continue
            drop = {s for s in sub_names if not any(
                r.attr.name == name and r.sub is not None and r.sub.name == s for r in keep)}

            def trim(item, drop=drop):
                return ({k: v for k, v in item.items() if k not in drop}
                        if isinstance(item, dict) else item)

            value = holder[name]
            holder[name] = [trim(i) for i in value] if isinstance(value, list) else trim(value)


def project(resource: dict, rtype: ResourceType, proj: Projection) -> dict:
    """Apply a projection to one rendered resource (RFC 7643 §7 "returned"): returned=never
    and writeOnly attributes never, returned=request ones only when named in
    ``attributes``, returned=always ones always."""
    if rtype.hidden:
        _strip(resource, rtype, rtype.hidden)
    if rtype.on_request:
        _strip(resource, rtype, rtype.on_request, keep=proj.include)
    if not proj.include and not proj.exclude:
        return resource
    if proj.include:
        out: dict = {"schemas": resource["schemas"], "id": resource["id"]}
        for schema in rtype.schemas:
            src = resource.get(schema.id) if schema.alias else resource
            if not isinstance(src, dict):
                continue
            for attr in schema.attributes:
                if attr.name not in src:
                    continue
                refs = [r for r in proj.include if r.schema is schema and r.attr is attr]
                always = attr.returned == ALWAYS
                if not refs and not always:
                    continue
                value = src[attr.name]
                if not always and all(r.sub is not None for r in refs):
                    value = _keep_sub(value, {r.sub.name for r in refs})
                target = out if not schema.alias else out.setdefault(schema.id, {})
                target[attr.name] = value
        for ref in proj.include:
            if ref.schema is None and ref.attr.name in resource:
                value = resource[ref.attr.name]
                if ref.sub is not None and isinstance(value, dict):
                    value = {ref.sub.name: value[ref.sub.name]} if ref.sub.name in value else {}
                out[ref.attr.name] = value
        return out
    out = dict(resource)
    for ref in proj.exclude:
        if ref.attr.returned == ALWAYS or ref.attr.name == "id":
            continue
        holder = ref.container(out)
        if holder is None or ref.attr.name not in holder:
            continue
        if holder is not out:
            holder = out[ref.schema.id] = dict(holder)
        if ref.sub is None:
            del holder[ref.attr.name]
        else:
            value = holder[ref.attr.name]
            if isinstance(value, list):
                holder[ref.attr.name] = [
                    {k: v for k, v in i.items() if k != ref.sub.name} for i in value]
            elif isinstance(value, dict):
                holder[ref.attr.name] = {k: v for k, v in value.items() if k != ref.sub.name}
    return out
