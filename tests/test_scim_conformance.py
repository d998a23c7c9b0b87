"""The independent SCIM 2.0 conformance suite (scim2-tester) against the gateway.

Every check must pass but the three where RFC 7643/7644 support the gateway and
not the tester (``scim_conformance.ALLOWED``, with the RFC text there and in
docs/scim.md); those must fail only in the way described.
"""

from __future__ import annotations

import asyncio

from conftest import ADMIN_CLIENT
from scim2_tester import Status
from scim_conformance import ALLOWED, failures, run


async def test_scim2_tester_passes(gateway):
    base = str(gateway.make_url("/scim2"))
    results = await asyncio.to_thread(run, base, ADMIN_CLIENT)
    allowed, failed = failures(results)
    assert not failed, "\n".join(f"{r.title} [{getattr(r, 'resource_type', None)}]: "
                                 f"{(r.reason or '')[:500]}" for r in failed)
    passed = [r for r in results if r.status == Status.SUCCESS]
    assert len(passed) >= 150, len(passed)  # the suite ran through, not just discovery
    assert len(allowed) <= len(ALLOWED)
