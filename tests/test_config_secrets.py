"""Secrets from files: every secret setting ``KEY`` may instead be ``KEY_file``, a file
read when the configuration is loaded (relative to the configuration file's folder, one
trailing newline dropped). Through the real loader, then through the running service:
an API client whose secret is in a file signs in over HTTP, a SQLite URL from a file is
the store the service writes, a connector's password from a file reaches an SPML
target, and an LDAP bind password from a file binds to the real slapd."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import ALL_BACKENDS, FAST_PASSWORDS, basic, scim, test_config

from gateway.app import create_app
from gateway.config import ConfigError
from gateway.settings import load

ARGON2_HASH = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$5mAdu1+WvKq+0pBvZlSkrQ"
CONNECTOR = '[[outbound.connectors]]\nname = "hr"\ntype = "scim2"\nurl = "http://127.0.0.1:9/"\n'
LDAP_STORE = ('[userstores.CORP]\ntype = "ldap"\nurl = "ldap://127.0.0.1:9"\n'
              'users_base = "ou=people,dc=x"\ngroups_base = "ou=groups,dc=x"\n')

# every secret setting: (the configuration around it, the key, where the loaded value is)
SECRETS = [
    ('[[clients]]\nname = "okta"\npermissions = ["*"]\n', "secret",
     lambda cfg: cfg.clients[0].secret),
    ('[[clients]]\nname = "okta"\npermissions = ["*"]\n', "secret_hash",
     lambda cfg: cfg.clients[0].secret_hash),
    ("[userstores.SECONDARY]\n", "url", lambda cfg: cfg.stores["SECONDARY"].url),
    (LDAP_STORE, "bind_password", lambda cfg: cfg.stores["CORP"].ldap.bind_password),
    ("[outbound]\n", "database", lambda cfg: cfg.outbound.database),
    (CONNECTOR, "password", lambda cfg: cfg.outbound.connectors[0].password),
    (CONNECTOR, "token", lambda cfg: cfg.outbound.connectors[0].token),
    (CONNECTOR, "api_key", lambda cfg: cfg.outbound.connectors[0].api_key),
    (CONNECTOR, "default_password", lambda cfg: cfg.outbound.connectors[0].default_password),
]
IDS = ["client-secret", "client-secret-hash", "store-url", "ldap-bind-password",
       "outbound-database", "connector-password", "connector-token", "connector-api-key",
       "connector-default-password"]


def value_for(key: str) -> str:
    """A valid value of the secret ``key`` (a hash, a URL...), distinct per key."""
    return {"secret_hash": ARGON2_HASH, "url": "sqlite:///from-a-file.db",
            "database": "sqlite:///queue-from-a-file.db"}.get(key, f"s3cret-{key}-%!\"#")


def write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path, environ: dict | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(path, environ=environ or {})
    return str(info.value)


# --- the loader ------------------------------------------------------------------------------


@pytest.mark.parametrize("section, key, loaded", SECRETS, ids=IDS)
def test_every_secret_reads_its_file_relative_to_the_configuration(
        tmp_path, monkeypatch, section, key, loaded):
    folder = tmp_path / "etc"
    secret = value_for(key)
    (folder / "secrets").mkdir(parents=True)
    (folder / "secrets" / key).write_text(secret + "\n", encoding="utf-8")
    path = write(folder, f'{section}{key}_file = "secrets/{key}"\n')
    monkeypatch.chdir(tmp_path)  # not the working folder: the configuration file's
    cfg = load(path, environ={})
    assert loaded(cfg) == secret  # one trailing newline dropped
    # and the file as given in the file itself: the same value
    assert loaded(load(write(tmp_path / "inline", f"{section}{key} = '{secret}'\n"),
                       environ={})) == secret


@pytest.mark.parametrize("section, key, loaded", SECRETS, ids=IDS)
def test_a_missing_secret_file_is_an_error_naming_the_key(tmp_path, section, key, loaded):
    path = write(tmp_path, f'{section}{key}_file = "nowhere/{key}"\n')
    msg = error_of(path)
    assert msg.startswith(f"{path}: ")
    assert f".{key}_file: cannot read {tmp_path / 'nowhere' / key}: " in msg
    assert "No such file" in msg


@pytest.mark.parametrize("section, key, loaded", SECRETS, ids=IDS)
def test_an_empty_secret_file_is_an_error(tmp_path, section, key, loaded):
    (tmp_path / "empty").write_text("\n")
    msg = error_of(write(tmp_path, f'{section}{key}_file = "empty"\n'))
    assert f".{key}_file: {tmp_path / 'empty'} is empty" in msg


@pytest.mark.parametrize("section, key, loaded", SECRETS, ids=IDS)
def test_a_secret_and_its_file_together_are_an_error(tmp_path, section, key, loaded):
    (tmp_path / "s").write_text(value_for(key))
    msg = error_of(write(tmp_path, f"{section}{key} = '{value_for(key)}'\n{key}_file = \"s\"\n"))
    assert f".{key}: give {key} or {key}_file, not both" in msg


def test_only_one_trailing_newline_is_dropped_and_nothing_else(tmp_path):
    cases = {"crlf": ("tok\r\n", "tok"), "two": ("tok\n\n", "tok\n"),
             "spaces": ("  tok  \n", "  tok  "), "none": ("tok", "tok"),
             "unicode": ("pässwörd\n", "pässwörd")}
    for name, (content, expected) in cases.items():
        (tmp_path / name).write_text(content, encoding="utf-8", newline="")
        cfg = load(write(tmp_path, f'{CONNECTOR}token_file = "{name}"\n'), environ={})
        assert cfg.outbound.connectors[0].token == expected, name


def test_an_absolute_secret_file_is_read_where_it_is(tmp_path):
    secret = tmp_path / "elsewhere" / "bind"
    secret.parent.mkdir()
    secret.write_text("directory-pw\n")
    cfg = load(write(tmp_path / "etc", f'{LDAP_STORE}bind_password_file = "{secret}"\n'),
               environ={})
    assert cfg.stores["CORP"].ldap.bind_password == "directory-pw"


def test_a_folder_as_secret_file_is_an_error(tmp_path):
    (tmp_path / "adir").mkdir()
    msg = error_of(write(tmp_path, f'{CONNECTOR}password_file = "adir"\n'))
    assert "outbound.connectors[0].password_file: cannot read " in msg


def test_a_secret_that_is_not_text_is_an_error_without_the_value(tmp_path):
    msg = error_of(write(tmp_path, f"{CONNECTOR}token = 918273645\n"))
    assert "outbound.connectors[0].token: expected a string" in msg
    assert "918273645" not in msg
    msg = error_of(write(tmp_path, f"{CONNECTOR}token_file = 7\n"))
    assert "outbound.connectors[0].token_file: expected the name of a file" in msg


def test_a_client_needs_one_secret_in_any_form(tmp_path):
    client = '[[clients]]\nname = "okta"\npermissions = ["*"]\n'
    (tmp_path / "s").write_text("x")
    (tmp_path / "h").write_text(ARGON2_HASH)
    msg = error_of(write(tmp_path, f'{client}secret_file = "s"\nsecret_hash_file = "h"\n'))
    assert "clients[0] (okta): give exactly one of 'secret' or 'secret_hash'" in msg
    msg = error_of(write(tmp_path, client))
    assert "give exactly one" in msg and "secret_file" in msg
    (tmp_path / "h").write_text("not-a-hash")
    msg = error_of(write(tmp_path, f'{client}secret_hash_file = "h"\n'))
    assert "secret_hash must be an argon2 hash" in msg


def test_a_store_needs_a_url_in_either_form(tmp_path):
    msg = error_of(write(tmp_path, "[userstores.SECONDARY]\nread_only = true\n"))
    assert "'url' (or 'url_file') is required" in msg


def test_secrets_are_not_in_the_settings_repr(tmp_path):
    (tmp_path / "pw").write_text("hunter2-directory\n")
    cfg = load(write(tmp_path, f"""{LDAP_STORE}bind_password_file = "pw"
[userstores.SECONDARY]
url = "postgresql://gw:hunter2-url@db.example.test/gw"
[outbound]
database = "postgresql://gw:hunter2-queue@db.example.test/queue"
[[clients]]
name = "okta"
secret = "hunter2-client"
permissions = ["*"]
{CONNECTOR}auth = "bearer"
token = "hunter2-token"
password = "hunter2-password"
api_key = "hunter2-key"
default_password = "hunter2-default"
"""), environ={})
    text = repr(cfg)
    assert "okta" in text and "ou=people,dc=x" in text  # the rest is there
    assert "postgresql://gw:***@db.example.test/gw" in text  # a URL without its password
    assert "hunter2" not in text
    assert cfg.outbound.connectors[0].token == "hunter2-token"  # only hidden


# --- through the running service -------------------------------------------------------------


async def test_a_client_secret_from_a_file_signs_in_over_http(tmp_path, aiohttp_client,
                                                               admin_env):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "okta").write_text("okta-secret-from-a-file\n")
    db = tmp_path / "data" / "gw.db"
    db.parent.mkdir()
    # the store's URL comes from a file too: the service writes that database
    (tmp_path / "secrets" / "db-url").write_text(f"sqlite:///{db}\n")
    path = write(tmp_path, """
[userstores.PRIMARY]
url_file = "secrets/db-url"

[[clients]]
name = "okta"
secret_file = "secrets/okta"
permissions = ["users:*"]
""")
    cfg = replace(load(path, environ={}), passwords=FAST_PASSWORDS)
    client = await aiohttp_client(create_app(cfg))
    okta = basic("okta", "okta-secret-from-a-file")
    status, body, _ = await scim(client, "POST", "/Users", {"userName": "filed"}, auth=okta)
    assert status == 201, body
    status, body, _ = await scim(client, "GET", '/Users?filter=userName eq "filed"', auth=okta)
    assert status == 200 and body["totalResults"] == 1
    # the newline is not part of the secret; the file's text with it is refused
    status, _, _ = await scim(client, "GET", "/Users",
                              auth=basic("okta", "okta-secret-from-a-file\n"))
    assert status == 401
    status, _, _ = await scim(client, "GET", "/Users", auth=basic("okta", "wrong"))
    assert status == 401
    assert db.exists() and db.stat().st_size > 0


async def test_a_connector_password_from_a_file_reaches_an_spml_target(
        tmp_path, aiohttp_server, aiohttp_client, admin_env):
    from spml_target import SpmlTarget

    spml = SpmlTarget(auth="wss", password="spml-password-from-a-file")
    server = await aiohttp_server(spml.app())
    (tmp_path / "spml-password").write_text(spml.password + "\n")
    path = write(tmp_path, f"""
[userstores.PRIMARY]
url = "sqlite:///{tmp_path / 'gw.db'}"

[outbound]
poll_interval_ms = 20
backoff_base_seconds = 0.05
backoff_max_seconds = 0.2

[[outbound.connectors]]
name = "spml"
type = "spml"
url = "{server.make_url('/spml')}"
auth = "wss"
username = "{spml.username}"
password_file = "spml-password"
provision_groups = false
options = {{ target_id = "{spml.target_id}", container_id = "ou=people" }}
""")
    cfg = load(path, environ={})
    assert cfg.outbound.connectors[0].password == "spml-password-from-a-file"
    gw = await aiohttp_client(create_app(replace(
        cfg, passwords=FAST_PASSWORDS, clients=test_config({}).clients)))
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": "lee"})
    assert status == 201, body
    deadline = time.monotonic() + 10
    while True:
        if "lee" in spml.psos or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert "lee" in spml.psos  # the target accepted the WS-Security password
    assert spml.invalid == []


@pytest.mark.skipif("ldap" not in ALL_BACKENDS, reason="GATEWAY_TEST_BACKENDS has no ldap")
async def test_an_ldap_bind_password_from_a_file_binds_to_the_directory(
        tmp_path, ldap_base, aiohttp_client, admin_env):
    (tmp_path / "bind").write_text(ldap_base.password + "\n")
    text = f"""
[userstores.PRIMARY]
type = "ldap"
url = "{ldap_base.url}"
bind_dn = "{ldap_base.bind_dn}"
bind_password_file = "bind"
users_base = "{ldap_base.users_dn}"
groups_base = "{ldap_base.groups_dn}"
timeout_seconds = 2
"""
    cfg = replace(load(write(tmp_path, text), environ={}), passwords=FAST_PASSWORDS,
                  clients=test_config({}).clients)
    gw = await aiohttp_client(create_app(cfg))
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": "dirk"})
    assert status == 201, body
    conn = ldap_base.connection()
    try:
        conn.search(ldap_base.users_dn, "(uid=dirk)", attributes=["uid"])
        assert [e.uid.value for e in conn.entries] == ["dirk"]
    finally:
        conn.unbind()
    # a wrong password in the file: the directory refuses the gateway's bind
    (tmp_path / "bind").write_text("not-the-password\n")
    wrong = replace(cfg, stores={"PRIMARY": load(write(tmp_path, text),
                                                 environ={}).stores["PRIMARY"]})
    assert wrong.primary.ldap.bind_password == "not-the-password"
    gw2 = await aiohttp_client(create_app(wrong, bootstrap=False))
    status, _, _ = await scim(gw2, "GET", '/Users?filter=userName eq "dirk"')
    assert status >= 500
