"""Server-side sorting (RFC 2891) and virtual list views (draft-ietf-ldapext-ldapv3-vlv).

With both controls, the directory itself sorts the matches and returns one
window of them with the total (``contentCount``): a page of a large list
costs one short search, not a walk over every match. OpenLDAP offers them
with its ``sssvlv`` overlay, Active Directory natively; the store checks the
root DSE's ``supportedControl`` and falls back to its own key walk without.
ldap3 has no helpers for these two controls, so their BER is written here.
"""

from __future__ import annotations

SSS_OID = "1.2.840.113556.1.4.473"
VLV_OID = "2.16.840.1.113730.3.4.9"
VLV_RESPONSE_OID = "2.16.840.1.113730.3.4.10"


def _ber(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _int(n: int) -> bytes:
    return _ber(0x02, n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big", signed=True))


def _tlvs(data: bytes):
    i = 0
    while i < len(data):
        tag, length = data[i], data[i + 1]
        i += 2
        if length & 0x80:
            k = length & 0x7F
            length = int.from_bytes(data[i:i + k], "big")
            i += k
        yield tag, data[i:i + length]
        i += length


def sort_control(attr: str, descending: bool = False) -> tuple:
    """A SortKeyList of one key (the attribute's own ordering rule)."""
    key = _ber(0x04, attr.encode()) + (_ber(0x81, b"\xff") if descending else b"")
    return (SSS_OID, True, _ber(0x30, _ber(0x30, key)))


def vlv_control(after: int, offset: int | None = None, value: str | None = None,
                context: bytes | None = None) -> tuple:
    """A window: ``after`` entries following the target, which is the 1-based position
    ``offset`` (byOffset) or the first entry >= ``value`` (greaterThanOrEqual); with the
    ``context`` an earlier answer gave, the same view continues on its connection."""
    target = (_ber(0xA0, _int(offset) + _int(0)) if value is None
              else _ber(0x81, value.encode()))
    body = _int(0) + _int(after) + target + (_ber(0x04, context) if context else b"")
    return (VLV_OID, True, _ber(0x30, body))


def vlv_response(controls: dict | None) -> tuple[int, int, int] | None:
    """(targetPosition, contentCount, result code) of a VLV response, if there is one."""
    control = (controls or {}).get(VLV_RESPONSE_OID)
    if not control or isinstance(control.get("value"), dict):
        return None
    (_, seq), = list(_tlvs(bytes(control["value"])))
    items = [v for _, v in _tlvs(seq)]
    position, count, code = (int.from_bytes(v, "big", signed=True) for v in items[:3])
    return position, count, code
