"""Authentication and authorisation over HTTP: Basic (API clients, store users) and bearer JWTs.

401 means "we do not know who you are" (with a WWW-Authenticate challenge);
403 means "we know, and you may not". Both carry a SCIM Error body.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time

import orjson
import pytest
from conftest import ADMIN, ADMIN_USER, READER, assert_scim_error, basic, scim
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from gateway.app import create_app
from gateway.config import IssuerConfig
from gateway.keys import PIPELINE
from gateway.operations import CheckPassword

# --- helpers -----------------------------------------------------------------------------


async def _user(client, name, password=None, auth=ADMIN):
    body = {"userName": name}
    if password is not None:
        body["password"] = password
    status, created, _ = await scim(client, "POST", "/Users", body, auth=auth)
    assert status == 201, created
    return created


async def _group(client, name, member_ids=(), auth=ADMIN):
    body = {"displayName": name, "members": [{"value": m} for m in member_ids]}
    status, created, _ = await scim(client, "POST", "/Groups", body, auth=auth)
    assert status == 201, created
    return created


def _patch_op(*operations):
    return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": list(operations)}


@pytest.fixture
async def custom_gateway(aiohttp_client, make_config, admin_env):
    """A factory of gateways on the backend under test with configuration overrides."""

    async def make(**overrides):
        cfg = await make_config(**overrides)
        return await aiohttp_client(create_app(cfg))

    return make


# --- missing and malformed credentials ---------------------------------------------------


async def test_no_credentials_is_401_with_challenge(gateway):
    status, body, resp = await scim(gateway, "GET", "/Users", auth=None)
    assert_scim_error(status, body, 401)
    challenge = resp.headers.get("WWW-Authenticate", "")
    assert "Basic" in challenge
    assert "Bearer" in challenge
    assert resp.content_type == "application/scim+json"


async def test_no_credentials_on_write_is_401_and_writes_nothing(gateway):
    status, body, resp = await scim(gateway, "POST", "/Users", {"userName": "ghost"}, auth=None)
    assert_scim_error(status, body, 401)
    assert "WWW-Authenticate" in resp.headers
    status, found, _ = await scim(gateway, "GET", '/Users?filter=userName eq "ghost"')
    assert status == 200
    assert found["totalResults"] == 0


MALFORMED_BASIC = {
    "empty": "Basic",
    "not-base64": "Basic !!!not-base64!!!",
    "no-colon": "Basic " + base64.b64encode(b"no-colon-here").decode(),
    "no-name": "Basic " + base64.b64encode(b":secret-without-name").decode(),
    "not-utf8": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
}


async def test_malformed_basic_is_401(gateway):
    for case, header in MALFORMED_BASIC.items():
        status, body, resp = await scim(gateway, "GET", "/Users", auth={"Authorization": header})
        assert status == 401, (case, body)
        assert_scim_error(status, body, 401)
        assert "WWW-Authenticate" in resp.headers, case


async def test_wrong_client_secret_is_401(gateway):
    status, body, resp = await scim(gateway, "GET", "/Users",
                                    auth=basic("test-admin", "not-the-secret"))
    assert_scim_error(status, body, 401)
    assert "WWW-Authenticate" in resp.headers
    # the secret is not echoed back
    assert "not-the-secret" not in body["detail"]


async def test_unknown_name_is_401(gateway):
    status, body, _ = await scim(gateway, "GET", "/Users", auth=basic("nobody", "whatever"))
    assert_scim_error(status, body, 401)


async def test_unknown_scheme_is_401(gateway):
    for header in ("Digest username=\"x\"", "Negotiate abc", "Token abc",
                   "test-admin:test-admin-secret"):
        status, body, resp = await scim(gateway, "GET", "/Users", auth={"Authorization": header})
        assert status == 401, (header, body)
        assert_scim_error(status, body, 401)
        assert "WWW-Authenticate" in resp.headers, header


async def test_scheme_is_case_insensitive(gateway):
    token = base64.b64encode(b"test-admin:test-admin-secret").decode()
    status, body, _ = await scim(gateway, "GET", "/Users",
                                 auth={"Authorization": f"bAsIc {token}"})
    assert status == 200, body


# --- API clients ---------------------------------------------------------------------------


async def test_admin_client_can_do_everything(gateway):
    user = await _user(gateway, "alice")
    status, _, _ = await scim(gateway, "GET", f"/Users/{user['id']}")
    assert status == 200
    status, body, _ = await scim(gateway, "PATCH", f"/Users/{user['id']}", _patch_op(
        {"op": "replace", "path": "displayName", "value": "Alice"}))
    assert status == 200, body
    group = await _group(gateway, "eng", [user["id"]])
    status, _, _ = await scim(gateway, "DELETE", f"/Groups/{group['id']}")
    assert status == 204
    status, _, _ = await scim(gateway, "DELETE", f"/Users/{user['id']}")
    assert status == 204


async def test_reader_client_reads_but_cannot_write(gateway):
    user = await _user(gateway, "alice")

    status, body, _ = await scim(gateway, "GET", "/Users", auth=READER)
    assert status == 200, body
    assert body["totalResults"] >= 1
    status, body, _ = await scim(gateway, "GET", f"/Users/{user['id']}", auth=READER)
    assert status == 200, body
    assert body["userName"] == "alice"

    status, body, resp = await scim(gateway, "POST", "/Users", {"userName": "bob"}, auth=READER)
    assert_scim_error(status, body, 403)
    assert "WWW-Authenticate" not in resp.headers

    status, body, _ = await scim(gateway, "DELETE", f"/Users/{user['id']}", auth=READER)
    assert_scim_error(status, body, 403)

    status, body, _ = await scim(gateway, "PATCH", f"/Users/{user['id']}", _patch_op(
        {"op": "replace", "path": "displayName", "value": "Mallory"}), auth=READER)
    assert_scim_error(status, body, 403)

    status, body, _ = await scim(gateway, "POST", "/Groups", {"displayName": "x"}, auth=READER)
    assert_scim_error(status, body, 403)

    # nothing changed
    status, body, _ = await scim(gateway, "GET", f"/Users/{user['id']}")
    assert status == 200
    assert "displayName" not in body
    status, found, _ = await scim(gateway, "GET", '/Users?filter=userName eq "bob"')
    assert found["totalResults"] == 0


# --- store users -----------------------------------------------------------------------------


async def test_bootstrap_admin_can_do_everything(gateway):
    auth = basic(*ADMIN_USER)
    user = await _user(gateway, "carol", auth=auth)
    status, body, _ = await scim(gateway, "GET", "/Users", auth=auth)
    assert status == 200, body
    # the bootstrap admin is itself a store user, in the group 'admin'
    status, body, _ = await scim(gateway, "GET",
                                 f'/Users?filter=userName eq "{ADMIN_USER[0]}"', auth=auth)
    assert body["totalResults"] == 1
    groups = [g["display"] for g in body["Resources"][0].get("groups", [])]
    assert "admin" in groups
    status, body, _ = await scim(gateway, "PATCH", f"/Users/{user['id']}", _patch_op(
        {"op": "add", "path": "title", "value": "Boss"}), auth=auth)
    assert status == 200, body
    group = await _group(gateway, "ops", [user["id"]], auth=auth)
    status, _, _ = await scim(gateway, "DELETE", f"/Groups/{group['id']}", auth=auth)
    assert status == 204
    status, _, _ = await scim(gateway, "DELETE", f"/Users/{user['id']}", auth=auth)
    assert status == 204


async def test_user_without_role_is_authenticated_but_forbidden(gateway):
    await _user(gateway, "dave", "dave-password-1")
    status, body, resp = await scim(gateway, "GET", "/Users", auth=basic("dave", "dave-password-1"))
    assert_scim_error(status, body, 403)
    assert "WWW-Authenticate" not in resp.headers
    status, body, _ = await scim(gateway, "POST", "/Users", {"userName": "eve"},
                                 auth=basic("dave", "dave-password-1"))
    assert_scim_error(status, body, 403)
    # a wrong password is a 401, not a 403
    status, body, _ = await scim(gateway, "GET", "/Users", auth=basic("dave", "wrong"))
    assert_scim_error(status, body, 401)


async def test_user_without_password_cannot_log_in(gateway):
    await _user(gateway, "nopass")
    status, body, _ = await scim(gateway, "GET", "/Users", auth=basic("nopass", ""))
    assert_scim_error(status, body, 401)
    status, body, _ = await scim(gateway, "GET", "/Users", auth=basic("nopass", "anything"))
    assert_scim_error(status, body, 401)


async def test_role_mapping_gives_exactly_the_mapped_permissions(custom_gateway):
    client = await custom_gateway(
        roles={"admin": ("*",), "readers": ("users:list", "users:view")},
        auth_cache_seconds=0)
    alice = await _user(client, "alice", "alice-password-1")
    auth = basic("alice", "alice-password-1")

    status, body, _ = await scim(client, "GET", "/Users", auth=auth)
    assert_scim_error(status, body, 403)

    readers = await _group(client, "readers", [alice["id"]])

    status, body, _ = await scim(client, "GET", "/Users", auth=auth)
    assert status == 200, body
    status, body, _ = await scim(client, "GET", f"/Users/{alice['id']}", auth=auth)
    assert status == 200, body
    status, body, _ = await scim(client, "POST", "/Users", {"userName": "bob"}, auth=auth)
    assert_scim_error(status, body, 403)
    status, body, _ = await scim(client, "DELETE", f"/Users/{alice['id']}", auth=auth)
    assert_scim_error(status, body, 403)
    status, body, _ = await scim(client, "GET", "/Groups", auth=auth)
    assert_scim_error(status, body, 403)

    # a group whose name is not mapped gives nothing more
    await _group(client, "unmapped", [alice["id"]])
    status, body, _ = await scim(client, "POST", "/Users", {"userName": "bob"}, auth=auth)
    assert_scim_error(status, body, 403)

    # removed from 'readers': nothing again
    status, body, _ = await scim(client, "PATCH", f"/Groups/{readers['id']}", _patch_op(
        {"op": "remove", "path": f'members[value eq "{alice["id"]}"]'}))
    assert status in (200, 204), body
    status, body, _ = await scim(client, "GET", "/Users", auth=auth)
    assert_scim_error(status, body, 403)

    # made a member of 'admin': everything
    status, found, _ = await scim(client, "GET", '/Groups?filter=displayName eq "admin"')
    assert found["totalResults"] == 1
    admin_group = found["Resources"][0]["id"]
    status, body, _ = await scim(client, "PATCH", f"/Groups/{admin_group}", _patch_op(
        {"op": "add", "path": "members", "value": [{"value": alice["id"]}]}))
    assert status in (200, 204), body
    status, body, _ = await scim(client, "POST", "/Users", {"userName": "bob"}, auth=auth)
    assert status == 201, body


async def test_role_names_match_case_insensitively(custom_gateway):
    client = await custom_gateway(roles={"admin": ("*",), "Readers": ("users:list",)},
                                  auth_cache_seconds=0)
    alice = await _user(client, "alice", "alice-password-1")
    await _group(client, "READERS", [alice["id"]])
    status, body, _ = await scim(client, "GET", "/Users", auth=basic("alice", "alice-password-1"))
    assert status == 200, body


async def test_password_change_here_takes_effect_at_once(custom_gateway):
    """The auth cache must not keep an old password working after a change made here."""
    client = await custom_gateway(auth_cache_seconds=300)
    alice = await _user(client, "alice", "old-password-1")
    await scim(client, "PATCH", f"/Groups/{await _admin_group_id(client)}", _patch_op(
        {"op": "add", "path": "members", "value": [{"value": alice["id"]}]}))
    old = basic("alice", "old-password-1")
    status, body, _ = await scim(client, "GET", "/Users", auth=old)
    assert status == 200, body  # now cached

    status, body, _ = await scim(client, "PATCH", f"/Users/{alice['id']}", _patch_op(
        {"op": "replace", "path": "password", "value": "new-password-2"}))
    assert status == 200, body

    status, body, _ = await scim(client, "GET", "/Users", auth=old)
    assert_scim_error(status, body, 401)
    status, body, _ = await scim(client, "GET", "/Users", auth=basic("alice", "new-password-2"))
    assert status == 200, body


async def test_role_removal_here_takes_effect_at_once(custom_gateway):
    """Removing a user from a role through this gateway drops its cached permissions."""
    client = await custom_gateway(auth_cache_seconds=300)
    alice = await _user(client, "alice", "alice-password-1")
    admin_group = await _admin_group_id(client)
    await scim(client, "PATCH", f"/Groups/{admin_group}", _patch_op(
        {"op": "add", "path": "members", "value": [{"value": alice["id"]}]}))
    auth = basic("alice", "alice-password-1")
    status, body, _ = await scim(client, "POST", "/Users", {"userName": "bob"}, auth=auth)
    assert status == 201, body  # now cached with every permission

    status, body, _ = await scim(client, "PATCH", f"/Groups/{admin_group}", _patch_op(
        {"op": "remove", "path": f'members[value eq "{alice["id"]}"]'}))
    assert status in (200, 204), body

    status, body, _ = await scim(client, "POST", "/Users", {"userName": "carol"}, auth=auth)
    assert_scim_error(status, body, 403)


async def test_deleted_user_cannot_log_in(custom_gateway):
    client = await custom_gateway(auth_cache_seconds=300)
    alice = await _user(client, "alice", "alice-password-1")
    await scim(client, "PATCH", f"/Groups/{await _admin_group_id(client)}", _patch_op(
        {"op": "add", "path": "members", "value": [{"value": alice["id"]}]}))
    auth = basic("alice", "alice-password-1")
    status, _, _ = await scim(client, "GET", "/Users", auth=auth)
    assert status == 200
    status, _, _ = await scim(client, "DELETE", f"/Users/{alice['id']}")
    assert status == 204
    status, body, _ = await scim(client, "GET", "/Users", auth=auth)
    assert_scim_error(status, body, 401)


async def test_a_burst_on_one_uncached_header_checks_the_password_once(custom_gateway):
    """Requests that arrive with the same credentials while they are being checked (a
    client's burst just after its cache entry expired) wait for that one check instead
    of each running an argon2 verification; a wrong password fails them all, and is
    checked again next time (failures are not cached)."""
    client = await custom_gateway(auth_cache_seconds=300)
    alice = await _user(client, "alice", "alice-password-1")
    await scim(client, "PATCH", f"/Groups/{await _admin_group_id(client)}", _patch_op(
        {"op": "add", "path": "members", "value": [{"value": alice["id"]}]}))
    pipeline = client.server.app[PIPELINE]
    checks: list[str] = []
    execute = pipeline.execute

    async def slow_checks(caller, op):  # a slow hash: the burst surely overlaps the check
        if isinstance(op, CheckPassword):
            checks.append(op.user_name)
            await asyncio.sleep(0.3)
        return await execute(caller, op)

    pipeline.execute = slow_checks

    async def burst(auth, n):
        return [status for status, _, _ in await asyncio.gather(
            *(scim(client, "GET", "/Users?count=1", auth=auth) for _ in range(n)))]

    assert await burst(basic("alice", "alice-password-1"), 20) == [200] * 20
    assert checks == ["alice"]
    assert await burst(basic("alice", "alice-password-1"), 5) == [200] * 5  # cached
    assert checks == ["alice"]

    checks.clear()
    assert await burst(basic("alice", "wrong-password"), 10) == [401] * 10
    assert checks == ["alice"]
    assert await burst(basic("alice", "wrong-password"), 1) == [401]
    assert checks == ["alice", "alice"]


async def _admin_group_id(client) -> str:
    status, found, _ = await scim(client, "GET", '/Groups?filter=displayName eq "admin"')
    assert status == 200 and found["totalResults"] == 1, found
    return found["Resources"][0]["id"]


async def test_domain_qualified_login(custom_gateway):
    client = await custom_gateway(
        domains=("PRIMARY", "SECONDARY"),
        roles={"admin": ("*",), "SECONDARY/ops": ("users:list", "users:view")},
        auth_cache_seconds=0)
    sec = await _user(client, "SECONDARY/alice", "secondary-pw-1")
    assert sec["userName"] == "SECONDARY/alice"
    await _user(client, "alice", "primary-pw-1")  # same bare name in PRIMARY, no role
    group = await _group(client, "SECONDARY/ops", [sec["id"]])
    assert group["displayName"] == "SECONDARY/ops"

    status, body, _ = await scim(client, "GET", "/Users",
                                 auth=basic("SECONDARY/alice", "secondary-pw-1"))
    assert status == 200, body
    # the domain is case-insensitive
    status, body, _ = await scim(client, "GET", "/Users",
                                 auth=basic("secondary/alice", "secondary-pw-1"))
    assert status == 200, body
    status, body, _ = await scim(client, "POST", "/Users", {"userName": "x"},
                                 auth=basic("SECONDARY/alice", "secondary-pw-1"))
    assert_scim_error(status, body, 403)

    # the PRIMARY alice is a different account with a different password
    status, body, _ = await scim(client, "GET", "/Users", auth=basic("alice", "secondary-pw-1"))
    assert_scim_error(status, body, 401)
    status, body, _ = await scim(client, "GET", "/Users", auth=basic("alice", "primary-pw-1"))
    assert_scim_error(status, body, 403)  # known, but in no role
    status, body, _ = await scim(client, "GET", "/Users",
                                 auth=basic("SECONDARY/alice", "primary-pw-1"))
    assert_scim_error(status, body, 401)
    # an unknown domain is a failed login, not an error of another kind
    status, body, _ = await scim(client, "GET", "/Users",
                                 auth=basic("NOSUCH/alice", "secondary-pw-1"))
    assert_scim_error(status, body, 401)


async def test_secondary_group_named_admin_is_not_the_admin_role(custom_gateway):
    """Only PRIMARY's 'admin' group is the admin role; 'SECONDARY/admin' is another group."""
    client = await custom_gateway(domains=("PRIMARY", "SECONDARY"), auth_cache_seconds=0)
    sec = await _user(client, "SECONDARY/mallory", "mallory-pw-1")
    await _group(client, "SECONDARY/admin", [sec["id"]])
    status, body, _ = await scim(client, "POST", "/Users", {"userName": "x"},
                                 auth=basic("SECONDARY/mallory", "mallory-pw-1"))
    assert_scim_error(status, body, 403)


# --- bearer JWTs ------------------------------------------------------------------------------

ISSUER = "https://idp.example.test/"
AUDIENCE = "https://gateway.example.test/scim2"
RSA = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
EC = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
OTHER_RSA = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})  # same kid, other key
UNKNOWN_KID = RSAKey.generate_key(2048, parameters={"kid": "rsa-unknown"})


def _issuer_config(**kw) -> IssuerConfig:
    return IssuerConfig(
        issuer=ISSUER, audience=AUDIENCE,
        jwks={"keys": [RSA.as_dict(private=False), EC.as_dict(private=False)]},
        scope_permissions={"scim.read": ("users:list", "users:view"),
                           "scim.write": ("users:*",)},
        **kw)


@pytest.fixture
async def jwt_gateway(custom_gateway):
    return await custom_gateway(issuers=(_issuer_config(),))


def _claims(**kw) -> dict:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "svc-1", "iat": now, "exp": now + 300,
              "scope": "scim.read"}
    claims.update(kw)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(claims: dict, key=RSA, alg: str = "RS256") -> str:
    return jwt.encode({"alg": alg, "kid": key.kid}, claims, key)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw_token(header: dict, claims: dict, sign) -> str:
    signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(claims))}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_bearer_read_scope_lists_but_cannot_create(jwt_gateway):
    await _user(jwt_gateway, "alice")
    auth = bearer(_sign(_claims()))
    status, body, _ = await scim(jwt_gateway, "GET", "/Users", auth=auth)
    assert status == 200, body
    assert any(r["userName"] == "alice" for r in body["Resources"])
    status, body, resp = await scim(jwt_gateway, "POST", "/Users", {"userName": "bob"}, auth=auth)
    assert_scim_error(status, body, 403)
    assert "WWW-Authenticate" not in resp.headers
    status, body, _ = await scim(jwt_gateway, "GET", "/Groups", auth=auth)
    assert_scim_error(status, body, 403)


async def test_bearer_write_scope_with_ec_key_creates(jwt_gateway):
    token = _sign(_claims(scope="scim.read scim.write"), EC, "ES256")
    status, body, _ = await scim(jwt_gateway, "POST", "/Users", {"userName": "bob"},
                                 auth=bearer(token))
    assert status == 201, body
    status, body, _ = await scim(jwt_gateway, "DELETE", f"/Users/{body['id']}",
                                 auth=bearer(token))
    assert status == 204


async def test_bearer_scp_list_and_audience_list(jwt_gateway):
    token = _sign(_claims(scope=None, scp=["scim.read"], aud=["other", AUDIENCE]))
    status, body, _ = await scim(jwt_gateway, "GET", "/Users", auth=bearer(token))
    assert status == 200, body


async def test_bearer_without_known_scope_is_forbidden(jwt_gateway):
    token = _sign(_claims(scope="openid profile"))
    status, body, _ = await scim(jwt_gateway, "GET", "/Users", auth=bearer(token))
    assert_scim_error(status, body, 403)


async def test_bearer_nbf_within_leeway_is_accepted(jwt_gateway):
    token = _sign(_claims(nbf=int(time.time()) + 20))  # leeway is 60 s
    status, body, _ = await scim(jwt_gateway, "GET", "/Users", auth=bearer(token))
    assert status == 200, body


def _hs256_with_public_pem(claims: dict) -> str:
    pem = RSA.as_pem(private=False)
    return _raw_token({"alg": "HS256", "kid": RSA.kid, "typ": "JWT"}, claims,
                      lambda data: hmac.new(pem, data, hashlib.sha256).digest())


def _hs256_with_public_jwk(claims: dict) -> str:
    secret = orjson.dumps(RSA.as_dict(private=False))
    return _raw_token({"alg": "HS256", "kid": RSA.kid, "typ": "JWT"}, claims,
                      lambda data: hmac.new(secret, data, hashlib.sha256).digest())


def _alg_none(claims: dict) -> str:
    return _raw_token({"alg": "none", "kid": RSA.kid, "typ": "JWT"}, claims, lambda _: b"")


def _tampered(claims: dict) -> str:
    """A valid read-scope token whose payload was then changed to ask for write."""
    token = _sign(claims)
    header, _, signature = token.split(".")
    forged = dict(claims, scope="scim.read scim.write")
    return f"{header}.{_b64(orjson.dumps(forged))}.{signature}"


BAD_TOKENS = {
    "wrong-issuer": lambda: _sign(_claims(iss="https://evil.example.test/")),
    "wrong-audience": lambda: _sign(_claims(aud="https://other.example.test/")),
    "no-audience": lambda: _sign(_claims(aud=None)),
    "expired": lambda: _sign(_claims(iat=int(time.time()) - 7200,
                                     exp=int(time.time()) - 3600)),
    "no-expiry": lambda: _sign(_claims(exp=None)),
    "not-yet-valid": lambda: _sign(_claims(nbf=int(time.time()) + 3600,
                                           exp=int(time.time()) + 7200)),
    "bad-signature": lambda: _sign(_claims(), OTHER_RSA),
    "tampered-payload": lambda: _tampered(_claims()),
    "alg-none": lambda: _alg_none(_claims()),
    "alg-none-with-signature-dropped": lambda: _alg_none(_claims()).rsplit(".", 1)[0] + ".",
    "hs256-public-pem-as-secret": lambda: _hs256_with_public_pem(_claims()),
    "hs256-public-jwk-as-secret": lambda: _hs256_with_public_jwk(_claims()),
    "unknown-kid": lambda: _sign(_claims(), UNKNOWN_KID),
    "garbage": lambda: "garbage",
    "three-garbage-parts": lambda: "a.b.c",
    "payload-not-object": lambda: f"{_b64(b'{}')}.{_b64(b'[1,2]')}.{_b64(b'x')}",
}


async def test_bad_bearer_tokens_are_401(jwt_gateway):
    """Each of these is refused with a 401 (one gateway for all: they are independent)."""
    failures = []
    for case, make in BAD_TOKENS.items():
        token = make()
        status, body, resp = await scim(jwt_gateway, "GET", "/Users", auth=bearer(token))
        if status != 401 or "WWW-Authenticate" not in resp.headers:
            failures.append((case, "GET", status, body))
            continue
        assert_scim_error(status, body, 401)
        # and not as a write either
        status, body, _ = await scim(jwt_gateway, "POST", "/Users", {"userName": f"x-{case}"},
                                     auth=bearer(token))
        if status != 401:
            failures.append((case, "POST", status, body))
            continue
        assert_scim_error(status, body, 401)
    assert not failures, failures
    status, found, _ = await scim(jwt_gateway, "GET", "/Users")
    assert [u["userName"] for u in found["Resources"]] == ["root"]


async def test_bearer_without_issuers_configured_is_401(gateway):
    status, body, _ = await scim(gateway, "GET", "/Users", auth=bearer(_sign(_claims())))
    assert_scim_error(status, body, 401)


async def test_a_token_naming_a_disabled_or_locked_store_user_is_401(jwt_gateway):
    uid = (await _user(jwt_gateway, "tokenuser"))["id"]
    auth = bearer(_sign(_claims(sub="tokenuser")))
    status, body, _ = await scim(jwt_gateway, "GET", "/Users", auth=auth)
    assert status == 200, body  # remembered now
    for path, value in (("active", False),
                        ("urn:scim:wso2:schema:accountLocked", True)):
        status, body, _ = await scim(jwt_gateway, "PATCH", f"/Users/{uid}", {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": path, "value": value}]})
        assert status == 200, body
        status, body, _ = await scim(jwt_gateway, "GET", "/Users", auth=auth)
        assert_scim_error(status, body, 401)
        status, body, _ = await scim(jwt_gateway, "PATCH", f"/Users/{uid}", {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": path, "value": not value}]})
        assert status == 200, body
    status, body, _ = await scim(jwt_gateway, "GET", "/Users", auth=auth)
    assert status == 200, body
    # a service's token (its subject is no user) is not affected
    status, body, _ = await scim(jwt_gateway, "GET", "/Users", auth=bearer(_sign(_claims())))
    assert status == 200, body
