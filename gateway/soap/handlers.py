"""What each RemoteUserStoreManagerService operation does: its handler, by WSO2's name.

Every handler takes the call (``gateway.soap.call.Call``: who is calling, the
pipeline) and the operation's arguments as WSO2's WSDL names them, in its order, and
returns the value to send back (``None`` for void operations). Everything goes
through ``Pipeline.execute``, so the pipeline authorizes, validates and stores as it
does for SCIM; claims go through the WSO2 claim dialect, so a claim set here is the
same attribute a SCIM client sees.

The handlers live by subject: ``users.py`` (accounts, passwords, lists, tenant and
profiles), ``roles.py`` and ``claims.py`` (the claim operations, and the one home of
WSO2's role claims); what they share (the call, its arguments, names) is in
``call.py``. ``gateway.soap.service`` builds each Spyne method from ``BY_NAME``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from . import claims, roles, users

Handler = Callable[..., Awaitable[object]]

BY_NAME: dict[str, Handler] = {
    handler.__name__: handler
    for module in (users, roles, claims) for handler in module.HANDLERS}
