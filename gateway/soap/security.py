"""Who is calling a SOAP operation: HTTP Basic, or a WS-Security UsernameToken.

A ``wsse:UsernameToken`` in the SOAP header (OASIS WS-Security 1.0 Username
Token Profile) carries the name and the password either in clear
(``#PasswordText``, the same check as HTTP Basic) or as
``Base64(SHA-1(nonce + created + password))`` (``#PasswordDigest``), which
only an API client with a plain ``secret`` can use: store users' passwords are
kept as argon2 hashes, from which no digest can be checked. When both a
header and a token are present, the token wins (it is what the SOAP stack
was configured to send).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from lxml import etree

from ..errors import Unauthorized

WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
PASSWORD_TEXT = PROFILE + "#PasswordText"
PASSWORD_DIGEST = PROFILE + "#PasswordDigest"


@dataclass(frozen=True)
class UsernameToken:
    username: str
    password: str
    digest: bool = False
    nonce: bytes = b""
    created: str = ""

    def as_basic(self) -> str:
        """The same credentials as an HTTP Basic header (PasswordText only)."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def _text(parent: etree._Element, tag: str) -> str | None:
    found = parent.find(tag)
    return None if found is None else (found.text or "")


def username_token(header: etree._Element | None) -> UsernameToken | None:
    """The UsernameToken of a SOAP header, if it has one."""
    if header is None:
        return None
    token = header.find(f"{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
    if token is None:
        return None
    username = _text(token, f"{{{WSSE}}}Username")
    password_el = token.find(f"{{{WSSE}}}Password")
    if not username or password_el is None:
        raise Unauthorized("The UsernameToken needs a Username and a Password")
    kind = password_el.get("Type", PASSWORD_TEXT)
    password = password_el.text or ""
    if kind == PASSWORD_TEXT:
        return UsernameToken(username.strip(), password)
    if kind != PASSWORD_DIGEST:
        raise Unauthorized(f"Unsupported UsernameToken password type {kind!r}")
    nonce_text = _text(token, f"{{{WSSE}}}Nonce")
    created = _text(token, f"{{{WSU}}}Created")
    if not nonce_text or not created:
        raise Unauthorized("A PasswordDigest UsernameToken needs a Nonce and a Created time")
    try:
        nonce = base64.b64decode(nonce_text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Unauthorized("The UsernameToken's Nonce is not Base64") from None
    return UsernameToken(username.strip(), password.strip(), True, nonce, created.strip())
