"""SCIM 2.0 PatchOp bodies (RFC 7644 §3.5.2) into canonical patch operations.

Accepts what the real clients send: ``op`` in any case (Entra ID sends
``Replace``), a missing ``schemas``, string booleans (coerced by the schema).
The semantics of each operation live in ``gateway.model.patch``.
"""

from __future__ import annotations

from ..errors import InvalidSyntax, InvalidValue
from ..model.patch import PatchOperation
from .http import PATCH_OP

MAX_OPERATIONS = 1000


def parse_patch(body: dict) -> list[PatchOperation]:
    schemas = body.get("schemas")
    if schemas is not None and (not isinstance(schemas, list) or PATCH_OP not in schemas):
        raise InvalidSyntax(f"A PATCH body has the schema {PATCH_OP}")
    operations = body.get("Operations", body.get("operations"))
    if not isinstance(operations, list) or not operations:
        raise InvalidSyntax("A PATCH body needs a non-empty 'Operations' array")
    if len(operations) > MAX_OPERATIONS:
        raise InvalidValue(f"At most {MAX_OPERATIONS} operations per PATCH")
    out = []
    for i, item in enumerate(operations):
        if not isinstance(item, dict):
            raise InvalidSyntax(f"Operations[{i}] must be an object")
        lowered = {k.lower(): v for k, v in item.items()}
        op = lowered.get("op")
        if not isinstance(op, str) or op.lower() not in ("add", "replace", "remove"):
            raise InvalidValue(f"Operations[{i}].op must be add, replace or remove, not {op!r}")
        path = lowered.get("path")
        if path is not None and not isinstance(path, str):
            raise InvalidSyntax(f"Operations[{i}].path must be a string")
        if op.lower() != "remove" and "value" not in lowered:
            raise InvalidValue(f"Operations[{i}]: {op} needs a value")
        out.append(PatchOperation(op.lower(), path or None, lowered.get("value")))
    return out
