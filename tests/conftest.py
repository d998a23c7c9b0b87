"""Shared fixtures: a gateway on a real SQLite file or a real PostgreSQL, driven over HTTP.

The PostgreSQL server is the one on the machine (``GATEWAY_TEST_POSTGRES_URL``,
default ``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``); each test
session creates its own databases there and drops them at the end. Set
``GATEWAY_TEST_BACKENDS=sqlite`` to run on SQLite only (CI runs all three).

The HTTP scenarios run on the SQL backends; the user store contract
(``test_userstore_contract.py``) runs on every backend, LDAP included: a real
``slapd`` started for the session (``ldap_fixtures.py``).
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from dataclasses import replace

import asyncpg
import pytest
from ldap_fixtures import ldap_base, slapd  # noqa: F401 - fixtures
from sqlalchemy.engine import make_url

from gateway.app import create_app
from gateway.config import ClientConfig, Config, LdapConfig, PasswordConfig, StoreConfig
from gateway.settings import load

PG_URL = os.environ.get(
    "GATEWAY_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
ALL_BACKENDS = [b.strip() for b in os.environ.get("GATEWAY_TEST_BACKENDS",
                                                   "sqlite,postgres,ldap").split(",")
                if b.strip()]
BACKENDS = [b for b in ALL_BACKENDS if b != "ldap"]  # the SQL ones

ADMIN_CLIENT = ("test-admin", "test-admin-secret")
READER_CLIENT = ("test-reader", "test-reader-secret")
ADMIN_USER = ("root", "root-password-1")

FAST_PASSWORDS = PasswordConfig(time_cost=1, memory_cost_kib=8, parallelism=1)


def basic(name: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{name}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


ADMIN = basic(*ADMIN_CLIENT)
READER = basic(*READER_CLIENT)


def _pg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


class PostgresDatabases:
    """PostgreSQL databases of this session: created once, emptied and reused by later tests."""

    def __init__(self):
        self.created: list[str] = []
        self.free: list[str] = []

    @staticmethod
    def url(name: str) -> str:
        return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)

    async def create(self) -> str:
        if self.free:
            return self.url(self.free.pop())
        name = f"gwtest_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(_pg_dsn(PG_URL))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.created.append(name)
        return self.url(name)

    async def release(self, url: str) -> None:
        """Empty a database (the test's engines are closed by now) and keep it for reuse."""
        name = make_url(url).database
        conn = await asyncpg.connect(_pg_dsn(PG_URL, name))
        try:
            await conn.execute("SET lock_timeout = '5s'")
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        except asyncpg.PostgresError:
            return  # something still holds it: leave it to the final drop
        finally:
            await conn.close()
        self.free.append(name)

    async def drop_all(self) -> None:
        conn = await asyncpg.connect(_pg_dsn(PG_URL))
        try:
            for name in self.created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(scope="session")
def pg_databases():
    dbs = PostgresDatabases()
    yield dbs
    if dbs.created:
        asyncio.run(dbs.drop_all())


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
async def store_url(backend, tmp_path, pg_databases):
    """A factory of empty databases on the backend under test."""
    made = []

    async def make(label: str = "primary") -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / (label + '.db')}"
        url = await pg_databases.create()
        made.append(url)
        return url

    yield make
    for url in made:
        await pg_databases.release(url)


@pytest.fixture
async def make_config(store_url):
    """Build a test configuration: PRIMARY (and optional other domains) on the backend."""

    async def make(domains=("PRIMARY",), **overrides) -> Config:
        stores = {}
        for domain in domains:
            stores[domain] = StoreConfig(domain, await store_url(domain.lower()))
        cfg = test_config(stores)
        return replace(cfg, **overrides) if overrides else cfg

    return make


def test_config(stores: dict[str, StoreConfig]) -> Config:
    """The tests' configuration (fast password hashing, the test clients) on these stores."""
    return replace(
        load(None, environ={}),
        stores=stores,
        passwords=FAST_PASSWORDS,
        clients=(
            ClientConfig(ADMIN_CLIENT[0], ("*",), secret=ADMIN_CLIENT[1]),
            ClientConfig(READER_CLIENT[0], ("users:list", "users:view", "groups:list",
                                            "groups:view"), secret=READER_CLIENT[1]),
        ),
    )


test_config.__test__ = False  # a helper, not a test


@pytest.fixture
def admin_env(monkeypatch):
    monkeypatch.setenv("GATEWAY_ADMIN_USER", ADMIN_USER[0])
    monkeypatch.setenv("GATEWAY_ADMIN_PASSWORD", ADMIN_USER[1])


@pytest.fixture
async def gateway(aiohttp_client, make_config, admin_env):
    """An HTTP client on a running gateway with PRIMARY on the backend under test."""
    cfg = await make_config()
    return await aiohttp_client(create_app(cfg))


@pytest.fixture
async def multi_gateway(aiohttp_client, make_config, admin_env):
    """A gateway with PRIMARY and SECONDARY domains, both on the backend under test."""
    cfg = await make_config(domains=("PRIMARY", "SECONDARY"))
    return await aiohttp_client(create_app(cfg))


SCIM_JSON = "application/scim+json"


async def scim(client, method: str, path: str, body=None, headers=None, auth=ADMIN):
    """One SCIM call: returns (status, parsed JSON body or None, response)."""
    h = dict(auth or {})
    if body is not None:
        h["Content-Type"] = SCIM_JSON
    h.update(headers or {})
    import orjson

    data = None if body is None else (body if isinstance(body, bytes | str) else
                                      orjson.dumps(body))
    resp = await client.request(method, "/scim2" + path, data=data, headers=h)
    raw = await resp.read()
    parsed = orjson.loads(raw) if raw and "json" in resp.content_type else None
    return resp.status, parsed, resp


def assert_scim_error(status, body, expected_status, scim_type=None):
    assert status == expected_status, body
    assert body is not None, "an error must carry a SCIM Error body"
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == str(expected_status)
    assert body.get("detail")
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body


@pytest.fixture(params=ALL_BACKENDS)
def any_backend(request) -> str:
    return request.param


@pytest.fixture
async def store_config(any_backend, tmp_path, pg_databases, request):
    """A factory of store configurations on the backend under test (LDAP: a fresh
    subtree of the session's slapd)."""
    made = []

    async def make(domain: str = "PRIMARY", read_only: bool = False,
                   flavor: str = "openldap") -> StoreConfig:
        if any_backend == "sqlite":
            return StoreConfig(domain, f"sqlite:///{tmp_path / (domain.lower() + '.db')}",
                               read_only=read_only)
        if any_backend == "postgres":
            url = await pg_databases.create()
            made.append(url)
            return StoreConfig(domain, url, read_only=read_only)
        base = request.getfixturevalue("ldap_base")
        users, groups = ((base.users_dn, base.groups_dn) if flavor == "openldap"
                         else (base.ad_users_dn, base.ad_groups_dn))
        ldap = LdapConfig(bind_dn=base.bind_dn, bind_password=base.password,
                          users_base=users, groups_base=groups, flavor=flavor,
                          **({"id_attribute": "entryUUID"} if flavor == "ad" else {}))
        return StoreConfig(domain, base.url, "ldap", read_only=read_only, ldap=ldap)

    yield make
    for url in made:
        await pg_databases.release(url)
