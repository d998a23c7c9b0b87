"""Environment overrides of every setting, the entries of arrays of tables included
(``GATEWAY__OUTBOUND__CONNECTORS__<NAME or INDEX>__TOKEN``), and "did you mean" for
unknown keys. Through the real loader, then through the running service: a connector's
credentials from the environment reach a real SCIM target."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web
from conftest import ADMIN, ADMIN_CLIENT, FAST_PASSWORDS, scim, test_config

from gateway.app import create_app
from gateway.config import ConfigError, StoreConfig
from gateway.settings import load

RSA_JWK = {"kty": "RSA", "kid": "k1", "e": "AQAB",
           "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95G"
                "Q7h1M9Bg2sxVZ6u6V1K0n4wYvJ7sXgQBl_wjG7pS1eYT0uNVtKc1Bd8O2x1-0kpYD7J4jAXhdSzN"}

FILE = """
[[clients]]
name = "okta"
secret = "file-secret"
permissions = ["users:*"]

[[clients]]
name = "feed-2"
secret = "feed-secret"
permissions = ["users:list"]

[[issuers]]
issuer = "https://login.example.test"
audience = "gw"
jwks = '{"keys": []}'

[[outbound.connectors]]
name = "hr"
type = "scim2"
url = "http://127.0.0.1:9/hr"
auth = "bearer"
token = "file-token"

[[outbound.connectors]]
name = "crm-eu"
type = "scim2"
url = "http://127.0.0.1:9/crm"
auth = "basic"
username = "gw"
password = "file-password"

[[jit.providers]]
name = "corp"
type = "oidc"
issuer = "https://idp.example.test"
audience = "gw"
jwks_url = "https://idp.example.test/jwks"
"""


def write(folder: Path, text: str = FILE) -> Path:
    path = folder / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path | None, environ: dict) -> str:
    with pytest.raises(ConfigError) as info:
        load(path, environ=environ)
    return str(info.value)


# --- arrays of tables ------------------------------------------------------------------------


def test_an_entry_is_named_by_its_name_in_any_case(tmp_path):
    cfg = load(write(tmp_path), environ={
        "GATEWAY__OUTBOUND__CONNECTORS__HR__TOKEN": "env-token",
        "GATEWAY__OUTBOUND__CONNECTORS__CRM_EU__PASSWORD": "env-password",  # crm-eu
        "gateway__clients__Okta__secret": "env-secret",
        "GATEWAY__CLIENTS__FEED_2__PERMISSIONS": '["users:list", "users:view"]',
        "GATEWAY__JIT__PROVIDERS__CORP__MODE": "consent",
    })
    hr, crm = cfg.outbound.connectors
    assert (hr.name, hr.token, hr.url) == ("hr", "env-token", "http://127.0.0.1:9/hr")
    assert (crm.name, crm.password, crm.username) == ("crm-eu", "env-password", "gw")
    assert [(c.name, c.secret) for c in cfg.clients] == [("okta", "env-secret"),
                                                         ("feed-2", "feed-secret")]
    assert cfg.clients[1].permissions == ("users:list", "users:view")
    assert cfg.jit.providers[0].mode == "consent"


def test_an_entry_is_named_by_its_index(tmp_path):
    cfg = load(write(tmp_path), environ={
        "GATEWAY__OUTBOUND__CONNECTORS__1__TIMEOUT_SECONDS": "3",
        "GATEWAY__ISSUERS__0__AUDIENCE": "other-audience",  # issuers have no name
        "GATEWAY__CLIENTS__1__SECRET": "by-index",
    })
    assert cfg.outbound.connectors[1].timeout_seconds == 3.0
    assert type(cfg.outbound.connectors[1].timeout_seconds) is float
    assert cfg.outbound.connectors[0].timeout_seconds == 10.0
    assert cfg.issuers[0].audience == "other-audience"
    assert cfg.clients[1].secret == "by-index"


def test_a_name_survives_reordering(tmp_path):
    reordered = FILE.replace('name = "hr"', 'name = "TMP"').replace(
        'name = "crm-eu"', 'name = "hr"').replace('name = "TMP"', 'name = "crm-eu"')
    for text in (FILE, reordered):
        cfg = load(write(tmp_path, text),
                   environ={"GATEWAY__OUTBOUND__CONNECTORS__HR__URL": "http://hr.test/scim"})
        by_name = {c.name: c.url for c in cfg.outbound.connectors}
        assert by_name["hr"] == "http://hr.test/scim"
        assert by_name["crm-eu"] != "http://hr.test/scim"


def test_a_secret_file_from_the_environment_replaces_the_files_secret(tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "hr").write_text("token-from-a-mounted-secret\n")
    (tmp_path / "secrets" / "okta").write_text("client-from-a-mounted-secret\n")
    path = write(tmp_path)
    cfg = load(path, environ={
        # relative to the configuration file's folder, as in the file
        "GATEWAY__OUTBOUND__CONNECTORS__HR__TOKEN_FILE": "secrets/hr",
        "GATEWAY__CLIENTS__OKTA__SECRET_FILE": str(tmp_path / "secrets" / "okta"),
    })
    assert cfg.outbound.connectors[0].token == "token-from-a-mounted-secret"
    assert cfg.clients[0].secret == "client-from-a-mounted-secret"
    # and a value from the environment replaces a file's *_file
    text = FILE.replace('token = "file-token"', 'token_file = "secrets/hr"')
    cfg = load(write(tmp_path, text),
               environ={"GATEWAY__OUTBOUND__CONNECTORS__HR__TOKEN": "env-token"})
    assert cfg.outbound.connectors[0].token == "env-token"


def test_both_forms_of_a_secret_from_the_environment_are_an_error(tmp_path):
    (tmp_path / "hr").write_text("x")
    msg = error_of(write(tmp_path), {"GATEWAY__OUTBOUND__CONNECTORS__HR__TOKEN": "a",
                                     "GATEWAY__OUTBOUND__CONNECTORS__HR__TOKEN_FILE": "hr"})
    assert msg.startswith("GATEWAY__OUTBOUND__CONNECTORS__HR__TOKEN_FILE: ")
    assert "GATEWAY__OUTBOUND__CONNECTORS__HR__TOKEN sets outbound.connectors[0].token" in msg


def test_an_unreadable_secret_file_names_the_variable(tmp_path):
    msg = error_of(write(tmp_path), {"GATEWAY__OUTBOUND__CONNECTORS__CRM_EU__PASSWORD_FILE":
                                     "missing"})
    assert msg.startswith("GATEWAY__OUTBOUND__CONNECTORS__CRM_EU__PASSWORD_FILE: "
                          "outbound.connectors[1].password_file: cannot read ")


def test_an_entry_that_is_not_there_is_an_error_naming_the_variable(tmp_path):
    msg = error_of(write(tmp_path), {"GATEWAY__OUTBOUND__CONNECTORS__ERP__TOKEN": "x"})
    assert msg.startswith("GATEWAY__OUTBOUND__CONNECTORS__ERP__TOKEN: outbound.connectors "
                          "has no entry 'erp' (names: hr, crm-eu; indexes 0 to 1)")
    msg = error_of(write(tmp_path), {"GATEWAY__OUTBOUND__CONNECTORS__2__TOKEN": "x"})
    assert "has no entry '2'" in msg
    msg = error_of(write(tmp_path), {"GATEWAY__ISSUERS__5__AUDIENCE": "x"})
    assert msg.startswith("GATEWAY__ISSUERS__5__AUDIENCE: issuers has no entry '5' "
                          "(indexes 0 to 0)")
    # a file without that array at all: the variable is named all the same
    msg = error_of(write(tmp_path, "[server]\nport = 8280\n"),
                   {"GATEWAY__CLIENTS__OKTA__SECRET": "x"})
    assert msg.startswith("GATEWAY__CLIENTS__OKTA__SECRET: [[clients]] must be an array")


def test_an_array_itself_is_not_a_setting(tmp_path):
    msg = error_of(write(tmp_path), {"GATEWAY__OUTBOUND__CONNECTORS__HR": "x"})
    assert msg == ("GATEWAY__OUTBOUND__CONNECTORS__HR: outbound.connectors is an array of "
                   "tables: name an entry, by its name or its index, then the key "
                   "(GATEWAY__OUTBOUND__CONNECTORS__<NAME>__<KEY>)")
    msg = error_of(write(tmp_path, "[server]\nport = 8280\n"), {"GATEWAY__SERVER__PORT__X": "1"})
    assert msg == "GATEWAY__SERVER__PORT__X: server.port is a setting, not a section"
    # not in the file: made a table by the variable, which the parser refuses
    msg = error_of(None, {"GATEWAY__SERVER__PORT__X": "1"})
    assert msg.startswith("GATEWAY__SERVER__PORT__X: server.port: expected int")


def test_a_wrong_value_in_an_entry_names_the_variable(tmp_path):
    msg = error_of(write(tmp_path), {"GATEWAY__OUTBOUND__CONNECTORS__CRM_EU__AUTH": "beerer"})
    assert msg.startswith("GATEWAY__OUTBOUND__CONNECTORS__CRM_EU__AUTH: "
                          "outbound.connectors[1].auth must be one of")
    msg = error_of(write(tmp_path), {"GATEWAY__JIT__PROVIDERS__CORP__MODE": "loud"})
    assert msg.startswith("GATEWAY__JIT__PROVIDERS__CORP__MODE: jit.providers[0].mode")
    # a wrong value in the file is still the file's
    path = write(tmp_path, FILE.replace('auth = "basic"', 'auth = "beerer"'))
    assert error_of(path, {"GATEWAY__OUTBOUND__CONNECTORS__HR__TOKEN": "x"}).startswith(
        f"{path}: outbound.connectors[1].auth")


def test_an_unknown_key_in_an_entry_names_the_variable_and_the_closest_key(tmp_path):
    msg = error_of(write(tmp_path), {"GATEWAY__OUTBOUND__CONNECTORS__HR__TOKN": "x"})
    assert msg == ("GATEWAY__OUTBOUND__CONNECTORS__HR__TOKN: outbound.connectors[0]: "
                   "unknown setting(s) tokn (did you mean 'token'?)")
    msg = error_of(None, {"GATEWAY__SERVER__PROT": "9000"})
    assert msg == ("GATEWAY__SERVER__PROT: [server]: unknown setting(s) prot "
                   "(did you mean 'port'?)")
    msg = error_of(None, {"GATEWAY__SERVRE__PORT": "9000"})
    assert msg == ("GATEWAY__SERVRE__PORT: [top level]: unknown setting(s) servre "
                   "(did you mean 'server'?)")


def test_text_settings_keep_the_variables_text(tmp_path):
    """A value is TOML when it parses as TOML; a setting that is text still gets the
    variable's text when it looked like a number (a password of digits)."""
    cfg = load(write(tmp_path), environ={
        "GATEWAY__OUTBOUND__CONNECTORS__HR__TOKEN": "123456",
        "GATEWAY__OUTBOUND__CONNECTORS__CRM_EU__PASSWORD": "1e3",
        "GATEWAY__OUTBOUND__CONNECTORS__CRM_EU__USERNAME": "0x1F",
        "GATEWAY__CLIENTS__OKTA__SECRET": "1_000",
        "GATEWAY__SERVER__PORT": "9000",
        "GATEWAY__LIMITS__MAX_RESULTS": "5_00",
        "GATEWAY__AUTH__CACHE_SECONDS": "1.5",
        "GATEWAY__OUTBOUND__CONNECTORS__HR__MAX_ATTEMPTS": "3",
    })
    hr, crm = cfg.outbound.connectors
    assert (hr.token, crm.password, crm.username) == ("123456", "1e3", "0x1F")
    assert cfg.clients[0].secret == "1_000"
    assert (cfg.port, cfg.max_results, cfg.auth_cache_seconds) == (9000, 500, 1.5)
    assert type(cfg.port) is int and type(hr.max_attempts) is int and hr.max_attempts == 3
    # quoted: text, whatever it looks like; unquoted true is a boolean, not a secret
    cfg = load(write(tmp_path), environ={"GATEWAY__OUTBOUND__CONNECTORS__HR__TOKEN": '"true"'})
    assert cfg.outbound.connectors[0].token == "true"
    msg = error_of(write(tmp_path), {"GATEWAY__OUTBOUND__CONNECTORS__HR__TOKEN": "true"})
    assert msg.startswith("GATEWAY__OUTBOUND__CONNECTORS__HR__TOKEN: "
                          "outbound.connectors[0].token: expected a string")


def test_a_store_url_and_bind_password_from_the_environment(tmp_path):
    (tmp_path / "bind").write_text("bind-from-a-file")
    path = write(tmp_path, """
[userstores.CORP]
type = "ldap"
url = "ldap://127.0.0.1:9"
bind_password = "file-bind"
users_base = "ou=people,dc=x"
groups_base = "ou=groups,dc=x"
""")
    (tmp_path / "url").write_text("sqlite:///env.db\n")
    cfg = load(path, environ={"GATEWAY__USERSTORES__CORP__BIND_PASSWORD_FILE": "bind",
                              "GATEWAY__USERSTORES__PRIMARY__URL_FILE": "url"})
    assert cfg.stores["CORP"].ldap.bind_password == "bind-from-a-file"
    assert cfg.primary.url == "sqlite:///env.db"


# --- did you mean --------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ('[userstores.PRIMARY]\nurl = "sqlite:///a.db"\npool_sise = 2\n',
     "[userstores.PRIMARY]: unknown setting(s) pool_sise (did you mean 'pool_size'?)"),
    ('[userstores.CORP]\ntype = "ldap"\nurl = "ldap://x"\nusers_base = "a"\ngroups_base = "b"\n'
     'bind_pasword = "x"\n',
     "[userstores.CORP]: unknown setting(s) bind_pasword (did you mean 'bind_password'?)"),
    ("[limits]\nmax_result = 5\n",
     "[limits]: unknown setting(s) max_result (did you mean 'max_results'?)"),
    ("[outbound]\nconcurency = 2\n",
     "[outbound]: unknown setting(s) concurency (did you mean 'concurrency'?)"),
    ('[[outbound.connectors]]\nname = "a"\ntype = "scim2"\nurl = "http://x"\n'
     'token_fiel = "t"\n',
     "outbound.connectors[0]: unknown setting(s) token_fiel (did you mean 'token_file'?)"),
    ('[[clients]]\nname = "a"\nsecrte = "x"\n',
     "clients[0]: unknown setting(s) secrte (did you mean 'secret'?)"),
    ('[[jit.providers]]\nname = "a"\ntype = "oidc"\nmod = "silent"\n',
     "jit.providers[0]: unknown setting(s) mod (did you mean 'mode'?)"),
    ("[jit]\nprovider = []\n",
     "[jit]: unknown setting(s) provider (did you mean 'providers'?)"),
    ("[logging]\nformt = 'json'\n",
     "[logging]: unknown setting(s) formt (did you mean 'format'?)"),
    ("[serverr]\nport = 1\n",
     "[top level]: unknown setting(s) serverr (did you mean 'server'?)"),
    # nothing close: no guess; several: each its own
    ("[server]\nzzzzzz = 1\nprot = 2\n",
     "[server]: unknown setting(s) prot (did you mean 'port'?), zzzzzz"),
], ids=["store", "ldap", "limits", "outbound", "connector", "client", "jit-provider", "jit",
        "logging", "top-level", "several"])
def test_an_unknown_key_suggests_the_closest_known_one(tmp_path, text, expected):
    path = write(tmp_path, text)
    assert error_of(path, {}) == f"{path}: {expected}"


# --- through the running service -------------------------------------------------------------


class BearerScim:
    """A SCIM 2.0 target that only answers a bearer token; it keeps the users it gets."""

    def __init__(self, token: str):
        self.token = token
        self.users: dict[str, dict] = {}
        self.refused = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/scim2/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self.refused += 1
            return web.json_response({"detail": "unauthorized"}, status=401)
        if request.method == "POST" and request.path == "/scim2/Users":
            body = await request.json()
            body["id"] = f"r-{len(self.users) + 1}"
            self.users[body["userName"]] = body
            return web.json_response(body, status=201, content_type="application/scim+json")
        return web.json_response(
            {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
             "totalResults": 0, "Resources": []}, content_type="application/scim+json")


async def wait_for(check, timeout: float = 10.0):  # noqa: ASYNC109
    """Whether ``check()`` comes true within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)


async def test_connector_credentials_from_the_environment_reach_the_targets(
        tmp_path, aiohttp_server, aiohttp_client, admin_env):
    # a real gateway as the basic-auth target; a bearer-only SCIM target
    target = await aiohttp_server(create_app(test_config(
        {"PRIMARY": StoreConfig("PRIMARY", f"sqlite:///{tmp_path / 'target.db'}")}),
        bootstrap=False))
    bearer = BearerScim("token-from-the-environment")
    bearer_server = await aiohttp_server(bearer.app())
    path = write(tmp_path, f"""
[userstores.PRIMARY]
url = "sqlite:///{tmp_path / 'source.db'}"

[outbound]
poll_interval_ms = 20
backoff_base_seconds = 0.05
backoff_max_seconds = 0.2

[[outbound.connectors]]
name = "gateway-target"
type = "scim2"
url = "{target.make_url('/scim2')}"
auth = "basic"
username = "{ADMIN_CLIENT[0]}"
password = "not-the-password"
timeout_seconds = 5

[[outbound.connectors]]
name = "bearer-target"
type = "scim2"
url = "{bearer_server.make_url('/scim2')}"
auth = "bearer"
token = "not-the-token"
timeout_seconds = 5
""")
    cfg = load(path, environ={
        "GATEWAY__OUTBOUND__CONNECTORS__GATEWAY_TARGET__PASSWORD": ADMIN_CLIENT[1],
        "GATEWAY__OUTBOUND__CONNECTORS__1__TOKEN": bearer.token,
    })
    cfg = replace(cfg, passwords=FAST_PASSWORDS, clients=test_config({}).clients)
    source = await aiohttp_client(create_app(cfg))
    status, body, _ = await scim(source, "POST", "/Users", {"userName": "envy"})
    assert status == 201, body

    target_client = await aiohttp_client(target)

    async def arrived_at_the_gateway():
        status, body, _ = await scim(target_client, "GET", '/Users?filter=userName eq "envy"',
                                     auth=ADMIN)
        return status == 200 and body["totalResults"] == 1

    async def arrived_at_the_bearer_target():
        return "envy" in bearer.users

    assert await wait_for(arrived_at_the_bearer_target)
    assert await wait_for(arrived_at_the_gateway)
    assert bearer.refused == 0  # the file's token was never sent


# --- through the command ---------------------------------------------------------------------


def test_config_check_reads_connector_secrets_from_the_environment_and_files(tmp_path):
    """``gateway config check``, a real process: a connector's token file named by an
    environment variable is read (valid), a missing one and a typo in an entry's key are
    one line naming the variable, never a traceback, and no secret is printed."""
    from test_config_check import FAST, check, no_traceback

    (tmp_path / "gateway.toml").write_text(FAST + f"""
[userstores.PRIMARY]
url = "sqlite:///{tmp_path / 'gw.db'}"

[[outbound.connectors]]
name = "hr"
type = "scim2"
url = "http://127.0.0.1:9/scim2"
auth = "bearer"
token = "token-in-the-file"
""")
    (tmp_path / "hr-token").write_text("token-in-a-mounted-file\n")
    result = check(tmp_path, GATEWAY__OUTBOUND__CONNECTORS__HR__TOKEN_FILE="hr-token")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout
    out = result.stdout + result.stderr
    assert "token-in-a-mounted-file" not in out and "token-in-the-file" not in out

    result = check(tmp_path, GATEWAY__OUTBOUND__CONNECTORS__HR__TOKEN_FILE="missing")
    assert result.returncode == 2, result.stdout + result.stderr
    no_traceback(result)
    assert ("configuration error: GATEWAY__OUTBOUND__CONNECTORS__HR__TOKEN_FILE: "
            "outbound.connectors[0].token_file: cannot read ") in result.stderr

    result = check(tmp_path, GATEWAY__OUTBOUND__CONNECTORS__HR__TOKEN_FIEL="hr-token")
    assert result.returncode == 2, result.stdout + result.stderr
    no_traceback(result)
    assert ("configuration error: GATEWAY__OUTBOUND__CONNECTORS__HR__TOKEN_FIEL: "
            "outbound.connectors[0]: unknown setting(s) token_fiel (did you mean "
            "'token_file'?)") in result.stderr


def test_a_key_of_another_store_type_says_so(tmp_path):
    path = write(tmp_path, '[userstores.CORP]\nurl = "ldap://x"\nbind_password = "x"\n')
    assert error_of(path, {}) == (f'{path}: [userstores.CORP]: bind_password is a setting '
                                  "of type = \"ldap\" stores (this one is 'sql')")
    path = write(tmp_path, '[userstores.CORP]\nurl = "ldap://x"\n')
    assert error_of(path, {"GATEWAY__USERSTORES__CORP__BIND_DN": "cn=x"}).startswith(
        "GATEWAY__USERSTORES__CORP__BIND_DN: [userstores.CORP]: bind_dn is a setting of")
