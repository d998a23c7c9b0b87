"""Just-in-time provisioning from OpenID Connect logins: ``POST /jit/{provider}``.

The ID tokens of the happy paths come from a real OpenID provider on loopback (the npm
package ``oidc-provider``, ``oidc_provider_loopback.py``), through a complete authorization
code flow. Tokens that no honest provider would issue (expired, ``alg: none``, HMAC signed
with the public key, ...) are made here with joserfc. Every refusal is its own test: its
status, a clear error, and no user made.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import replace

import orjson
import pytest
from conftest import ADMIN, READER, basic, scim
from joserfc import jwt
from joserfc.jwk import RSAKey
from oidc_provider_loopback import (
    CLIENT,
    OTHER_CLIENT,
    LoopbackOidcProvider,
    signing_keys,
)

import gateway.jit.oidc
from gateway.app import create_app
from gateway.config import ClientConfig
from gateway.errors import ConfigError
from gateway.jit.config import JitConfig, ProviderConfig, parse_jit

JIT_CLIENT = ("test-jit", "test-jit-secret")
JIT = basic(*JIT_CLIENT)
CLAIMS = (
    ("given_name", "name.givenName"),
    ("family_name", "name.familyName"),
    ("email", 'emails[type eq "work"].value'),
    ("nickname", "nickName"),
)
ROLES = (("idp-engineers", "engineers"), ("idp-admins", "admins"))


# the provider and the gateway ------------------------------------------------------------------

@pytest.fixture
def backend() -> str:
    """These scenarios run on SQLite (users and groups on PostgreSQL are covered elsewhere)."""
    return "sqlite"


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    """The module's OpenID provider (accounts are per test: each uses its own subject)."""
    provider = LoopbackOidcProvider(tmp_path_factory.mktemp("oidc"))
    provider.start(signing_keys(f"idp-{uuid.uuid4().hex[:8]}"))
    yield provider
    provider.stop()


@pytest.fixture
def own_idp(tmp_path):
    """A provider of the test's own, for tests that restart it (key rotation)."""
    provider = LoopbackOidcProvider(tmp_path)
    yield provider
    provider.stop()


def oidc_provider(idp: LoopbackOidcProvider | None = None, **overrides) -> ProviderConfig:
    fields = {
        "name": "corp", "type": "oidc",
        "issuer": idp.issuer if idp else "https://idp.example.test",
        "audience": CLIENT[0],
        "jwks_url": idp.jwks_url if idp else None,
        "claims": CLAIMS, "roles_claim": "groups", "roles": ROLES,
    }
    fields.update(overrides)
    return ProviderConfig(**fields)


@pytest.fixture
async def jit_gateway(aiohttp_client, make_config, admin_env):
    """A factory: a gateway trusting these providers, with the groups the roles map to."""

    async def make(*providers: ProviderConfig, domains=("PRIMARY",), groups=("engineers",
                                                                              "admins")):
        cfg = await make_config(domains=domains)
        cfg = replace(cfg, clients=cfg.clients + (
            ClientConfig(JIT_CLIENT[0], ("jit",), secret=JIT_CLIENT[1]),),
            jit=JitConfig(tuple(providers)))
        gw = await aiohttp_client(create_app(cfg))
        for name in groups:
            status, body, _ = await scim(gw, "POST", "/Groups", {"displayName": name})
            assert status == 201, body
        return gw

    return make


async def jit(gw, body, provider: str = "corp", auth=JIT) -> tuple[int, dict]:
    resp = await gw.post(f"/jit/{provider}", data=orjson.dumps(body),
                         headers={**(auth or {}), "Content-Type": "application/json"})
    assert resp.content_type == "application/json", await resp.text()
    return resp.status, await resp.json()


def assert_refused(status: int, body: dict, expected: int, *words: str) -> None:
    """A JSON error of that status whose message says why."""
    assert status == expected, body
    assert body["status"] == expected, body
    assert set(body) == {"status", "error"}, body
    for word in words:
        assert word.lower() in body["error"].lower(), body


async def users_named(gw, name: str) -> list[dict]:
    status, body, _ = await scim(gw, "GET", f'/Users?filter=userName eq "{name}"')
    assert status == 200, body
    return body.get("Resources", [])


async def user_total(gw) -> int:
    status, body, _ = await scim(gw, "GET", "/Users?count=0")
    assert status == 200, body
    return body["totalResults"]


async def group(gw, name: str) -> dict:
    status, body, _ = await scim(gw, "GET", f'/Groups?filter=displayName eq "{name}"')
    assert status == 200 and body["totalResults"] == 1, body
    return body["Resources"][0]


async def member_ids(gw, name: str) -> set[str]:
    return {m["value"] for m in (await group(gw, name)).get("members", [])}


def new_subject() -> str:
    return f"sub-{uuid.uuid4().hex}"


async def account(idp: LoopbackOidcProvider, username: str, **claims) -> str:
    """An account at the provider (a fresh subject); returns the subject."""
    subject = new_subject()
    claims.setdefault("given_name", "Given")
    claims.setdefault("family_name", "Family")
    claims.setdefault("email", f"{username.split('/')[-1]}@corp.example")
    await idp.set_account(subject, preferred_username=username, **claims)
    return subject


def segments(token: str) -> tuple[dict, dict, str]:
    head, payload, signature = token.split(".")
    return _unb64(head), _unb64(payload), signature


def _unb64(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _b64(data: bytes | dict) -> str:
    if isinstance(data, dict):
        data = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# tokens made here, with a key the gateway is configured to trust --------------------------------

class Minter:
    """An issuer of our own: its public key is the provider's inline JWKS."""

    def __init__(self, issuer: str = "https://idp.example.test", audience: str = CLIENT[0]):
        self.key = RSAKey.generate_key(2048, {"kid": "minted-1", "alg": "RS256"}, private=True)
        self.issuer, self.audience = issuer, audience

    @property
    def jwks(self) -> dict:
        return {"keys": [self.key.as_dict(private=False)]}

    def claims(self, **overrides) -> dict:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": self.audience, "sub": new_subject(),
                  "preferred_username": f"minted-{uuid.uuid4().hex[:8]}",
                  "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex,
                  "given_name": "Minted"}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, key: RSAKey | None = None, header: dict | None = None, **claims) -> str:
        key = key or self.key
        head = {"alg": "RS256", "kid": key.kid, "typ": "JWT", **(header or {})}
        return jwt.encode(head, self.claims(**claims), key)


# the happy paths: tokens from the real provider -------------------------------------------------

async def test_first_login_creates_the_user_with_mapped_claims_and_roles(idp, jit_gateway):
    gw = await jit_gateway(oidc_provider(idp))
    status, _, _ = await scim(gw, "POST", "/Groups", {"displayName": "idp-engineers"})
    assert status == 201  # a local group named as the IdP's: not mapped, not joined
    subject = await account(idp, "alice", given_name="Alice", family_name="Liddell",
                            email="alice@corp.example", nickname="Al",
                            groups=["idp-engineers", "some-unmapped-group"])
    token = await idp.login(subject)
    header, claims, _ = segments(token)
    assert header["alg"] == "RS256" and header["kid"] == idp.keys["keys"][0]["kid"]
    assert claims["iss"] == idp.issuer and claims["aud"] == CLIENT[0]
    assert claims["sub"] == subject and claims["groups"] == ["idp-engineers",
                                                             "some-unmapped-group"]

    status, body = await jit(gw, {"id_token": token})
    assert status == 201, body
    assert body["result"] == "created"
    user = body["user"]
    assert user["userName"] == "alice"
    assert user["name"]["givenName"] == "Alice" and user["name"]["familyName"] == "Liddell"
    assert {"type": "work", "value": "alice@corp.example"} in [
        {k: e.get(k) for k in ("type", "value")} for e in user["emails"]]
    assert user["nickName"] == "Al"
    assert user["meta"]["location"].endswith(f"/Users/{user['id']}")
    # the role the IdP group maps to, and nothing else
    assert await member_ids(gw, "engineers") == {user["id"]}
    assert await member_ids(gw, "admins") == set()
    assert await member_ids(gw, "idp-engineers") == set()
    stored = await users_named(gw, "alice")
    assert [u["id"] for u in stored] == [user["id"]]
    assert {g["display"] for g in stored[0].get("groups", [])} == {"engineers"}


async def test_later_logins_are_unchanged_then_updated(idp, jit_gateway):
    gw = await jit_gateway(oidc_provider(idp))
    subject = await account(idp, "bob", given_name="Bob", groups=["idp-engineers"])
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert status == 201, body
    user_id, version = body["user"]["id"], body["user"]["meta"]["version"]

    # the same claims again (a new token): nothing to change
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert status == 200, body
    assert body["result"] == "unchanged"
    assert body["user"]["id"] == user_id and body["user"]["meta"]["version"] == version

    # the IdP changed the user: the owned claims follow
    await idp.set_account(subject, preferred_username="bob", given_name="Robert",
                          family_name="Family", email="robert@corp.example",
                          groups=["idp-admins"])
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert status == 200, body
    assert body["result"] == "updated"
    user = body["user"]
    assert user["id"] == user_id and user["meta"]["version"] != version
    assert user["name"]["givenName"] == "Robert"
    assert "robert@corp.example" in [e["value"] for e in user["emails"]]
    # roles follow the IdP's groups: out of engineers, into admins
    assert await member_ids(gw, "engineers") == set()
    assert await member_ids(gw, "admins") == {user_id}
    assert await user_total(gw) == 2  # the bootstrap administrator and bob


async def test_later_logins_write_owned_claims_only_and_keep_local_changes(idp, jit_gateway):
    gw = await jit_gateway(oidc_provider(
        idp, owned_claims=("given_name", "family_name", "email")), groups=(
            "engineers", "admins", "local-team"))
    subject = await account(idp, "carol", given_name="Carol", nickname="Caz",
                            groups=["idp-engineers"])
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert status == 201, body
    user_id = body["user"]["id"]
    assert body["user"]["nickName"] == "Caz"  # mapped: written at creation

    # local changes: a nickName (mapped but not owned), a title (not mapped), a local role
    status, body, _ = await scim(gw, "PATCH", f"/Users/{user_id}", {"Operations": [
        {"op": "replace", "path": "nickName", "value": "Local Caz"},
        {"op": "replace", "path": "title", "value": "Local title"}]})
    assert status == 200, body
    local_team = await group(gw, "local-team")
    status, body, _ = await scim(gw, "PATCH", f"/Groups/{local_team['id']}", {"Operations": [
        {"op": "add", "path": "members", "value": [{"value": user_id}]}]})
    assert status in (200, 204), body

    await idp.set_account(subject, preferred_username="carol", given_name="Caroline",
                          family_name="Family", email="carol@corp.example",
                          nickname="IdP Caz", groups=["idp-engineers"])
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert status == 200, body
    assert body["result"] == "updated"
    user = body["user"]
    assert user["name"]["givenName"] == "Caroline"  # owned: the IdP's
    assert user["nickName"] == "Local Caz"  # not owned: kept
    assert user["title"] == "Local title"  # not mapped: kept
    assert await member_ids(gw, "local-team") == {user_id}  # a role the IdP does not map
    assert await member_ids(gw, "engineers") == {user_id}


async def test_rename_at_the_idp_keeps_the_same_local_user(idp, jit_gateway):
    gw = await jit_gateway(oidc_provider(idp))
    subject = await account(idp, "dave")
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert status == 201, body
    user_id = body["user"]["id"]

    await idp.set_account(subject, preferred_username="dave.renamed", given_name="Given",
                          family_name="Family", email="dave@corp.example")
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert status == 200, body
    assert body["user"]["id"] == user_id
    assert body["user"]["userName"] == "dave"  # the link is the subject, not the name
    assert await users_named(gw, "dave.renamed") == []
    assert await user_total(gw) == 2


async def test_rename_locally_keeps_the_link(idp, jit_gateway):
    gw = await jit_gateway(oidc_provider(idp))
    subject = await account(idp, "erin")
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert status == 201, body
    user_id = body["user"]["id"]
    status, body, _ = await scim(gw, "PATCH", f"/Users/{user_id}", {"Operations": [
        {"op": "replace", "path": "userName", "value": "erin.local"}]})
    assert status == 200, body

    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert status == 200, body
    assert body["result"] == "unchanged"
    assert body["user"]["id"] == user_id and body["user"]["userName"] == "erin.local"
    assert await users_named(gw, "erin") == []  # never a second user for the subject
    assert await user_total(gw) == 2


async def test_a_deleted_local_user_is_made_again_at_the_next_login(idp, jit_gateway):
    gw = await jit_gateway(oidc_provider(idp))
    subject = await account(idp, "fay")
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert status == 201, body
    status, _, _ = await scim(gw, "DELETE", f"/Users/{body['user']['id']}")
    assert status == 204
    status, again = await jit(gw, {"id_token": await idp.login(subject)})
    assert status == 201, again
    assert again["result"] == "created" and again["user"]["id"] != body["user"]["id"]
    assert [u["id"] for u in await users_named(gw, "fay")] == [again["user"]["id"]]


async def test_a_local_user_of_the_same_name_is_not_taken_over(idp, jit_gateway):
    gw = await jit_gateway(oidc_provider(idp))
    status, local, _ = await scim(gw, "POST", "/Users", {
        "userName": "gina", "name": {"givenName": "Local"}})
    assert status == 201, local
    subject = await account(idp, "gina", given_name="From IdP")
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert_refused(status, body, 409, "gina", "not linked")
    users = await users_named(gw, "gina")
    assert [u["id"] for u in users] == [local["id"]]
    assert users[0]["name"]["givenName"] == "Local"


async def test_link_existing_links_a_local_user_of_the_same_name(idp, jit_gateway):
    gw = await jit_gateway(oidc_provider(idp, link_existing=True))
    status, local, _ = await scim(gw, "POST", "/Users", {
        "userName": "hal", "name": {"givenName": "Local"}})
    assert status == 201, local
    subject = await account(idp, "hal", given_name="From IdP")
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert status == 200, body
    assert body["result"] == "updated" and body["user"]["id"] == local["id"]
    assert body["user"]["name"]["givenName"] == "From IdP"
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert status == 200 and body["result"] == "unchanged", body
    assert await user_total(gw) == 2


# modes -------------------------------------------------------------------------------------------

async def test_username_mode_takes_the_chosen_name(idp, jit_gateway):
    gw = await jit_gateway(oidc_provider(idp, mode="username"))
    subject = await account(idp, "ivy@corp.example")
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert_refused(status, body, 400, "username")
    assert await user_total(gw) == 1

    status, body = await jit(gw, {"id_token": await idp.login(subject), "username": "ivy"})
    assert status == 201, body
    assert body["user"]["userName"] == "ivy"
    assert await users_named(gw, "ivy@corp.example") == []
    # later logins need no username: the subject is linked
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert status == 200 and body["user"]["userName"] == "ivy", body


async def test_password_mode_sets_a_password_the_user_logs_in_with(idp, jit_gateway):
    gw = await jit_gateway(oidc_provider(idp, mode="password"))
    subject = await account(idp, "jack")
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert_refused(status, body, 400, "password")
    assert await users_named(gw, "jack") == []

    status, body = await jit(gw, {"id_token": await idp.login(subject),
                                  "password": "Jack-chose-this-1"})
    assert status == 201, body
    assert "password" not in body["user"]
    status, me, _ = await scim(gw, "GET", "/Me", auth=basic("jack", "Jack-chose-this-1"))
    assert status == 200, me
    assert me["id"] == body["user"]["id"]
    status, _, _ = await scim(gw, "GET", "/Me", auth=basic("jack", "another-password-1"))
    assert status == 401


async def test_consent_mode_without_consent_makes_no_user(idp, jit_gateway):
    gw = await jit_gateway(oidc_provider(idp, mode="consent"))
    subject = await account(idp, "kim")
    for extra in ({}, {"consent": False}, {"consent": "true"}):
        status, body = await jit(gw, {"id_token": await idp.login(subject), **extra})
        assert_refused(status, body, 403, "consent")
    assert await users_named(gw, "kim") == []
    assert await user_total(gw) == 1


async def test_consent_mode_with_consent_creates_the_user(idp, jit_gateway):
    gw = await jit_gateway(oidc_provider(idp, mode="consent"))
    subject = await account(idp, "lee")
    status, body = await jit(gw, {"id_token": await idp.login(subject), "consent": True})
    assert status == 201, body
    assert body["result"] == "created" and body["user"]["userName"] == "lee"
    # consent is asked at the first login only
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert status == 200 and body["result"] == "unchanged", body


# domains -----------------------------------------------------------------------------------------

async def test_domain_as_in_username_puts_the_user_in_the_secondary_domain(idp, jit_gateway):
    gw = await jit_gateway(oidc_provider(idp, domain="as_in_username"),
                           domains=("PRIMARY", "SECONDARY"))
    subject = await account(idp, "SECONDARY/mia")
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert status == 201, body
    assert body["user"]["userName"] == "SECONDARY/mia"
    assert [u["id"] for u in await users_named(gw, "SECONDARY/mia")] == [body["user"]["id"]]
    assert await users_named(gw, "mia") == []  # not in PRIMARY
    # and a plain name lands in PRIMARY
    subject = await account(idp, "ned")
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert status == 201, body
    assert body["user"]["userName"] == "ned"


async def test_fixed_domain_puts_every_user_there(idp, jit_gateway):
    gw = await jit_gateway(oidc_provider(idp, domain="SECONDARY"),
                           domains=("PRIMARY", "SECONDARY"))
    subject = await account(idp, "olga")
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert status == 201, body
    assert body["user"]["userName"] == "SECONDARY/olga"
    assert await users_named(gw, "olga") == []


# keys: a file, or the issuer's JWKS URL with rotation ---------------------------------------------

async def test_jwks_from_a_file(idp, jit_gateway, tmp_path):
    (tmp_path / "idp-jwks.json").write_text(json.dumps(await idp.published_jwks()))
    cfg = parse_jit({"providers": [{
        "name": "corp", "type": "oidc", "issuer": idp.issuer, "audience": CLIENT[0],
        "jwks_file": "idp-jwks.json", "claims": dict(CLAIMS)}]}, tmp_path)
    provider = cfg.providers[0]
    assert provider.jwks_url is None and provider.jwks["keys"][0]["kid"] == idp.keys[
        "keys"][0]["kid"]
    gw = await jit_gateway(provider)
    fetched = await idp.jwks_requests()
    subject = await account(idp, "pia", given_name="Pia")
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert status == 201, body
    assert body["user"]["name"]["givenName"] == "Pia"
    assert await idp.jwks_requests() == fetched  # the file's keys: the URL is not asked


async def test_jwks_url_is_cached_and_refreshed_on_a_rotated_key(own_idp, jit_gateway,
                                                                  monkeypatch):
    # the refresh floor (forged kids must not make the gateway hammer the provider) is made
    # short so that the rotation right after the first fetch is seen
    monkeypatch.setattr(gateway.jit.oidc, "REFRESH_FLOOR", 0.2)
    idp = own_idp
    idp.start(signing_keys("rotation-old"))
    gw = await jit_gateway(oidc_provider(idp))
    subject = await account(idp, "quinn", given_name="Quinn")
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert status == 201, body
    user_id = body["user"]["id"]
    assert await idp.jwks_requests() == 1
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert status == 200, body
    assert await idp.jwks_requests() == 1  # cached

    # the provider rotates to a new key (and forgets the old one); same issuer and URL
    idp.restart(signing_keys("rotation-new"))
    await idp.set_account(subject, preferred_username="quinn", given_name="Quinn II",
                          family_name="Family", email="quinn@corp.example")
    token = await idp.login(subject)
    assert segments(token)[0]["kid"] == "rotation-new"
    await asyncio.sleep(0.3)
    status, body = await jit(gw, {"id_token": token})
    assert status == 200, body
    assert body["result"] == "updated" and body["user"]["id"] == user_id
    assert body["user"]["name"]["givenName"] == "Quinn II"
    assert await idp.jwks_requests() == 1  # the restarted provider was asked once
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert status == 200, body
    assert await idp.jwks_requests() == 1  # and the new keys are cached
    assert await user_total(gw) == 2


async def test_forged_kids_do_not_make_the_gateway_hammer_the_provider(idp, jit_gateway):
    minter = Minter(issuer=idp.issuer)
    forged = [minter.token(key=RSAKey.generate_key(2048, {"kid": f"forged-{i}"}, private=True))
              for i in range(5)]
    gw = await jit_gateway(oidc_provider(idp))
    subject = await account(idp, "rob")
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert status == 201, body  # the JWKS is fetched now, and not again for REFRESH_FLOOR s
    before = await idp.jwks_requests()
    for i, token in enumerate(forged):
        status, body = await jit(gw, {"id_token": token})
        assert_refused(status, body, 401, f"forged-{i}")
    assert await idp.jwks_requests() == before  # within the refresh floor: not asked again
    assert await user_total(gw) == 2


# every refusal, each on its own: status, a clear error, no user -------------------------------

async def assert_nobody_made(gw, *names: str, total: int = 1) -> None:
    for name in names:
        assert await users_named(gw, name) == [], name
    assert await user_total(gw) == total  # only the bootstrap administrator


async def test_refused_bad_signature(idp, jit_gateway):
    gw = await jit_gateway(oidc_provider(idp))
    subject = await account(idp, "sam")
    token = await idp.login(subject)
    head, payload, signature = token.split(".")
    claims = _unb64(payload)
    claims["preferred_username"] = "mallory"
    status, body = await jit(gw, {"id_token": f"{head}.{_b64(claims)}.{signature}"})
    assert_refused(status, body, 401, "signature")
    await assert_nobody_made(gw, "sam", "mallory")


async def test_refused_signature_of_another_key_under_the_providers_kid(idp, jit_gateway):
    gw = await jit_gateway(oidc_provider(idp))
    impostor = RSAKey.generate_key(2048, {"kid": idp.keys["keys"][0]["kid"]}, private=True)
    token = Minter(issuer=idp.issuer).token(key=impostor, preferred_username="mallory")
    status, body = await jit(gw, {"id_token": token})
    assert_refused(status, body, 401, "signature")
    await assert_nobody_made(gw, "mallory")


async def test_refused_wrong_issuer(idp, jit_gateway):
    gw = await jit_gateway(oidc_provider(idp, issuer="https://login.other.example"))
    subject = await account(idp, "tom")
    token = await idp.login(subject)  # genuinely signed, by a provider of another name
    status, body = await jit(gw, {"id_token": token})
    assert_refused(status, body, 401, "issuer")
    await assert_nobody_made(gw, "tom")


async def test_refused_wrong_audience(idp, jit_gateway):
    gw = await jit_gateway(oidc_provider(idp))
    subject = await account(idp, "uma")
    token = await idp.login(subject, client=OTHER_CLIENT)  # a token for another application
    assert segments(token)[1]["aud"] == OTHER_CLIENT[0]
    status, body = await jit(gw, {"id_token": token})
    assert_refused(status, body, 401, "aud")
    await assert_nobody_made(gw, "uma")


async def test_refused_expired(jit_gateway):
    minter = Minter()
    gw = await jit_gateway(oidc_provider(jwks=minter.jwks))
    now = int(time.time())
    token = minter.token(preferred_username="vic", iat=now - 7200, exp=now - 3600)
    status, body = await jit(gw, {"id_token": token})
    assert_refused(status, body, 401, "expired")
    await assert_nobody_made(gw, "vic")


async def test_refused_without_expiry(jit_gateway):
    minter = Minter()
    gw = await jit_gateway(oidc_provider(jwks=minter.jwks))
    status, body = await jit(gw, {"id_token": minter.token(preferred_username="vic",
                                                           exp=None)})
    assert_refused(status, body, 401)
    assert "exp" in body["error"]
    await assert_nobody_made(gw, "vic")


async def test_refused_not_yet_valid(jit_gateway):
    minter = Minter()
    gw = await jit_gateway(oidc_provider(jwks=minter.jwks))  # leeway: 60 s
    now = int(time.time())
    token = minter.token(preferred_username="wes", nbf=now + 600, exp=now + 1200)
    status, body = await jit(gw, {"id_token": token})
    assert_refused(status, body, 401, "not valid yet", "nbf")
    await assert_nobody_made(gw, "wes")
    # a clock a little ahead (within the leeway) is tolerated
    token = minter.token(preferred_username="wes", nbf=now + 20, iat=now + 20)
    status, body = await jit(gw, {"id_token": token})
    assert status == 201, body


async def test_refused_issued_in_the_future(jit_gateway):
    minter = Minter()
    gw = await jit_gateway(oidc_provider(jwks=minter.jwks))
    now = int(time.time())
    token = minter.token(preferred_username="wes", iat=now + 600, exp=now + 1200)
    status, body = await jit(gw, {"id_token": token})
    assert_refused(status, body, 401, "not valid yet", "iat")
    await assert_nobody_made(gw, "wes")


async def test_refused_replayed(idp, jit_gateway):
    gw = await jit_gateway(oidc_provider(idp))
    subject = await account(idp, "xena")
    token = await idp.login(subject)
    status, body = await jit(gw, {"id_token": token})
    assert status == 201, body
    status, again = await jit(gw, {"id_token": token})
    assert_refused(status, again, 401, "replay")
    assert [u["id"] for u in await users_named(gw, "xena")] == [body["user"]["id"]]
    assert await user_total(gw) == 2


async def test_refused_replayed_to_another_worker(aiohttp_client, make_config, admin_env):
    """Two gateways on one database (two workers, or two hosts): a token used at one is
    refused at the other."""
    minter = Minter()
    cfg = await make_config()
    cfg = replace(cfg, clients=cfg.clients + (
        ClientConfig(JIT_CLIENT[0], ("jit",), secret=JIT_CLIENT[1]),),
        jit=JitConfig((oidc_provider(jwks=minter.jwks),)))
    first = await aiohttp_client(create_app(cfg))
    second = await aiohttp_client(create_app(cfg))
    token = minter.token(preferred_username="xavier")
    status, body = await jit(first, {"id_token": token})
    assert status == 201, body
    status, again = await jit(second, {"id_token": token})
    assert_refused(status, again, 401, "replay")
    status, again = await jit(first, {"id_token": token})
    assert_refused(status, again, 401, "replay")
    assert [u["id"] for u in await users_named(first, "xavier")] == [body["user"]["id"]]


async def test_consent_asked_then_given_with_the_same_token(jit_gateway):
    # the application learns that consent is needed from the 403, asks the user, and sends
    # the same login again with consent: a token refused for consent was not used
    minter = Minter()
    gw = await jit_gateway(oidc_provider(jwks=minter.jwks, mode="consent"))
    token = minter.token(preferred_username="yan")
    status, body = await jit(gw, {"id_token": token})
    assert_refused(status, body, 403, "consent")
    await assert_nobody_made(gw, "yan")
    status, body = await jit(gw, {"id_token": token, "consent": True})
    assert status == 201, body
    status, body = await jit(gw, {"id_token": token, "consent": True})
    assert_refused(status, body, 401, "replay")  # once used, it is spent
    assert await user_total(gw) == 2


async def test_username_asked_then_given_with_the_same_token(jit_gateway):
    minter = Minter()
    gw = await jit_gateway(oidc_provider(jwks=minter.jwks, mode="username"))
    token = minter.token(preferred_username="yves@corp.example")
    status, body = await jit(gw, {"id_token": token})
    assert_refused(status, body, 400, "username")
    await assert_nobody_made(gw)
    status, body = await jit(gw, {"id_token": token, "username": "yves"})
    assert status == 201, body
    assert body["user"]["userName"] == "yves"


async def test_refused_alg_none(idp, jit_gateway):
    gw = await jit_gateway(oidc_provider(idp))
    subject = await account(idp, "zoe")
    _, claims, _ = segments(await idp.login(subject))  # genuine claims, unsigned
    for alg in ("none", "None", "NONE"):
        token = f"{_b64({'alg': alg, 'typ': 'JWT'})}.{_b64(claims)}."
        status, body = await jit(gw, {"id_token": token})
        assert_refused(status, body, 401, "algorithm", alg, "allowed: RS256")
    await assert_nobody_made(gw, "zoe")


async def test_refused_algorithm_confusion_hmac_with_the_public_key(idp, jit_gateway):
    gw = await jit_gateway(oidc_provider(idp))
    subject = await account(idp, "abe")
    _, claims, _ = segments(await idp.login(subject))  # genuine claims, not yet used
    published = (await idp.published_jwks())["keys"][0]
    public = RSAKey.import_key(published)
    secrets_tried = (public.as_pem(private=False),  # the PEM an HS256 verifier would take
                     json.dumps(published).encode(),  # or the JWK itself
                     base64.urlsafe_b64decode(published["n"] + "=="))  # or the modulus
    for secret in secrets_tried:
        for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
            signing_input = f"{_b64({'alg': alg, 'kid': published['kid']})}.{_b64(claims)}"
            mac = hmac.new(secret, signing_input.encode(), digest).digest()
            status, body = await jit(gw, {"id_token": f"{signing_input}.{_b64(mac)}"})
            assert_refused(status, body, 401, "algorithm", alg, "allowed: RS256")
    await assert_nobody_made(gw, "abe")


def test_refused_hmac_algorithms_in_the_configuration():
    raw = {"name": "corp", "type": "oidc", "issuer": "https://idp.example.test",
           "audience": "gateway-app", "jwks": {"keys": []}}
    for algorithms in (["HS256"], ["RS256", "HS512"], ["none"]):
        with pytest.raises(ConfigError, match="asymmetric"):
            parse_jit({"providers": [{**raw, "algorithms": algorithms}]}, None)


async def test_refused_algorithm_not_allowed_for_the_provider(idp, jit_gateway):
    # an asymmetric algorithm the provider is not configured for
    minter = Minter(issuer=idp.issuer)
    gw = await jit_gateway(oidc_provider(jwks=minter.jwks, issuer=idp.issuer,
                                         algorithms=("ES256",)))
    status, body = await jit(gw, {"id_token": minter.token(preferred_username="bea")})
    assert_refused(status, body, 401, "algorithm 'RS256'", "allowed: ES256")
    await assert_nobody_made(gw, "bea")


async def test_refused_unknown_kid_even_after_refresh(idp, jit_gateway, monkeypatch):
    monkeypatch.setattr(gateway.jit.oidc, "REFRESH_FLOOR", 0.0)
    gw = await jit_gateway(oidc_provider(idp))
    subject = await account(idp, "cal")
    status, body = await jit(gw, {"id_token": await idp.login(subject)})
    assert status == 201, body  # the JWKS is known now
    before = await idp.jwks_requests()
    stranger = RSAKey.generate_key(2048, {"kid": "not-the-providers"}, private=True)
    token = Minter(issuer=idp.issuer).token(key=stranger, preferred_username="cal-2")
    status, body = await jit(gw, {"id_token": token})
    assert_refused(status, body, 401, "not-the-providers")
    assert await idp.jwks_requests() == before + 1  # the gateway did look again
    await assert_nobody_made(gw, "cal-2", total=2)


async def test_refused_unknown_kid_with_a_jwks_file(jit_gateway):
    minter = Minter()
    gw = await jit_gateway(oidc_provider(jwks=minter.jwks))
    stranger = RSAKey.generate_key(2048, {"kid": "not-in-the-file"}, private=True)
    status, body = await jit(gw, {"id_token": minter.token(key=stranger,
                                                           preferred_username="dan")})
    assert_refused(status, body, 401, "not-in-the-file")
    await assert_nobody_made(gw, "dan")


async def test_refused_missing_subject(jit_gateway):
    minter = Minter()
    gw = await jit_gateway(oidc_provider(jwks=minter.jwks))
    for sub in (None, ""):
        status, body = await jit(gw, {"id_token": minter.token(preferred_username="eve",
                                                               sub=sub)})
        assert_refused(status, body, 401, "subject", "sub")
    await assert_nobody_made(gw, "eve")


async def test_refused_missing_username(jit_gateway):
    minter = Minter()
    gw = await jit_gateway(oidc_provider(jwks=minter.jwks))
    status, body = await jit(gw, {"id_token": minter.token(preferred_username=None)})
    assert_refused(status, body, 401, "username", "preferred_username")
    assert await user_total(gw) == 1


@pytest.mark.parametrize("token", [
    "not-a-jwt",
    "a.b",
    "a.b.c.d.e",  # JWE compact: not a signed token
    "!!!.@@@.###",
    f"{_b64(b'[1, 2]')}.{_b64({'sub': 'x'})}.c2ln",  # a header that is not an object
])
async def test_refused_not_a_jwt(jit_gateway, token):
    minter = Minter()
    gw = await jit_gateway(oidc_provider(jwks=minter.jwks))
    status, body = await jit(gw, {"id_token": token})
    assert_refused(status, body, 401, "JWT")
    await assert_nobody_made(gw)


@pytest.mark.parametrize("body", [{}, {"id_token": 42}, {"id_token": None},
                                  {"saml_response": "PHNhbWw+"}])
async def test_refused_without_an_id_token(jit_gateway, body):
    gw = await jit_gateway(oidc_provider(jwks=Minter().jwks))
    status, reply = await jit(gw, body)
    assert_refused(status, reply, 400, "id_token")
    await assert_nobody_made(gw)


async def test_refused_body_not_json(jit_gateway):
    gw = await jit_gateway(oidc_provider(jwks=Minter().jwks))
    for raw in (b"id_token=abc", b"[1]"):
        resp = await gw.post("/jit/corp", data=raw,
                             headers={**JIT, "Content-Type": "application/json"})
        body = await resp.json()
        assert_refused(resp.status, body, 400, "JSON")
    await assert_nobody_made(gw)


async def test_refused_caller_without_jit_permission(jit_gateway):
    minter = Minter()
    gw = await jit_gateway(oidc_provider(jwks=minter.jwks))
    token = minter.token(preferred_username="fred")
    status, body = await jit(gw, {"id_token": token}, auth=READER)
    assert_refused(status, body, 403, "jit")
    status, body = await jit(gw, {"id_token": token}, auth=None)
    assert_refused(status, body, 401)
    status, body = await jit(gw, {"id_token": token}, auth=basic(JIT_CLIENT[0], "wrong"))
    assert_refused(status, body, 401)
    await assert_nobody_made(gw, "fred")
    # the token was not spent by the refused callers: the entitled one can still use it
    status, body = await jit(gw, {"id_token": token})
    assert status == 201, body


async def test_admin_client_may_hand_over_logins(jit_gateway):
    # "*" includes jit
    minter = Minter()
    gw = await jit_gateway(oidc_provider(jwks=minter.jwks))
    status, body = await jit(gw, {"id_token": minter.token(preferred_username="gil")},
                             auth=ADMIN)
    assert status == 201, body


async def test_refused_unknown_provider(jit_gateway):
    minter = Minter()
    gw = await jit_gateway(oidc_provider(jwks=minter.jwks))
    status, body = await jit(gw, {"id_token": minter.token(preferred_username="hugo")},
                             provider="elsewhere")
    assert_refused(status, body, 404, "elsewhere")
    await assert_nobody_made(gw, "hugo")
