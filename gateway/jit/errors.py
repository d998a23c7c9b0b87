"""Why a federated login is refused."""

from __future__ import annotations

from ..errors import ClientError


class InvalidLogin(ClientError):
    """The token or assertion cannot be trusted (signature, issuer, audience, time, replay)."""

    status = 401
    default_detail = "The login cannot be trusted"


class ConsentRequired(ClientError):
    status = 403
    default_detail = "The user has not consented to an account being made"
