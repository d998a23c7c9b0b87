"""Token issuers ([[issuers]], bearer tokens) and JIT OIDC providers ([[jit.providers]]) read
their keys and algorithms with the same rules: a JWKS document inline, as JSON text or in a
file, and asymmetric signatures only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.config import ConfigError
from gateway.settings import load

RSA_JWK = {"kty": "RSA", "kid": "k1", "e": "AQAB",
           "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95G"
                "Q7h1M9Bg2sxVZ6u6V1K0n4wYvJ7sXgQBl_wjG7pS1eYT0uNVtKc1Bd8O2x1-0kpYD7J4jAXhdSzN"}
ISSUER = '[[issuers]]\nissuer = "https://i.test/"\naudience = "gw"\n'
PROVIDER = ('[[jit.providers]]\nname = "idp"\ntype = "oidc"\n'
            'issuer = "https://i.test/"\naudience = "gw"\n')


def load_text(tmp_path: Path, text: str):
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return load(path, environ={})


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    return str(info.value)


@pytest.mark.parametrize("head, where", [(ISSUER, "issuers[0]"), (PROVIDER, "jit.providers[0]")])
def test_keys_and_algorithms_follow_one_rule(tmp_path, head, where):
    document = {"keys": [RSA_JWK]}
    (tmp_path / "keys.json").write_text(json.dumps(document))
    as_text = json.dumps(json.dumps(document))
    for keys in ('jwks_file = "keys.json"\n', f"jwks = {as_text}\n"):
        cfg = load_text(tmp_path, head + keys)
        found = cfg.issuers[0] if head is ISSUER else cfg.jit.providers[0]
        assert found.jwks == document
    msg = error_of(tmp_path, head + 'jwks = "{not json"\n')
    assert where in msg and "not valid JSON" in msg
    msg = error_of(tmp_path, head + 'jwks_file = "missing.json"\n')
    assert where in msg and "cannot read jwks_file" in msg
    msg = error_of(tmp_path, head + 'jwks = { kty = "RSA" }\n')
    assert where in msg and "not a JWKS document" in msg
    for bad in ('"HS256"', '"none"', '"RS1"'):
        msg = error_of(tmp_path, head + f'jwks_file = "keys.json"\nalgorithms = [{bad}]\n')
        assert where in msg and "not allowed" in msg and "asymmetric" in msg
    msg = error_of(tmp_path, head + 'jwks_file = "keys.json"\nalgorithms = "RS256"\n')
    assert "must be a list" in msg
