"""Pytest fixtures for a real OpenLDAP: one ``slapd`` per test session, one subtree per test.

Register in tests/conftest.py with ``pytest_plugins = ["ldap_fixtures"]``.

- ``slapd`` (session): the running :class:`ldap_server.Slapd`; its suffix holds
  ``ou=people``, ``ou=groups``, ``ou=adusers``, ``ou=adgroups`` (shared by all tests:
  prefer ``ldap_base``).
- ``ldap_base`` (function): an :class:`LdapBase` with a fresh, empty
  ``ou=t<hex>,dc=example,dc=com`` holding ``ou=people``, ``ou=groups``, ``ou=adusers``,
  ``ou=adgroups``; deleted with everything under it after the test. A test that stops
  the server gets it started again (same port, same data) before the cleanup.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from ldap_server import Slapd


@dataclass(frozen=True)
class LdapBase:
    url: str  # ldap://127.0.0.1:<port>
    host: str
    port: int
    bind_dn: str  # the rootdn: no ACL, no size/time limit
    password: str
    suffix: str  # dc=example,dc=com
    base_dn: str  # ou=t<hex>,dc=example,dc=com: this test's own subtree
    users_dn: str  # ou=people,<base_dn>
    groups_dn: str  # ou=groups,<base_dn>
    ad_users_dn: str  # ou=adusers,<base_dn>
    ad_groups_dn: str  # ou=adgroups,<base_dn>
    server: Slapd

    def connection(self, user: str | None = None, password: str | None = None):
        """A bound ldap3 SYNC connection, by default as the rootdn. Caller unbinds."""
        return self.server.connection(user, password)


@pytest.fixture(scope="session")
def slapd(tmp_path_factory) -> Slapd:
    server = Slapd(tmp_path_factory.mktemp("slapd"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def ldap_base(slapd: Slapd) -> LdapBase:
    name = f"t{uuid.uuid4().hex[:12]}"
    base = f"ou={name},{slapd.base_dn}"
    ous = ["people", "groups", "adusers", "adgroups"]
    ldif = [f"dn: {base}\nobjectClass: organizationalUnit\nou: {name}\n"]
    ldif += [f"dn: ou={ou},{base}\nobjectClass: organizationalUnit\nou: {ou}\n" for ou in ous]
    if not slapd.running:  # a previous test stopped it and failed before starting it again
        slapd.start()
    slapd.load_ldif("\n".join(ldif))
    try:
        yield LdapBase(
            url=slapd.url, host=slapd.host, port=slapd.port, bind_dn=slapd.bind_dn,
            password=slapd.password, suffix=slapd.base_dn, base_dn=base,
            users_dn=f"ou=people,{base}", groups_dn=f"ou=groups,{base}",
            ad_users_dn=f"ou=adusers,{base}", ad_groups_dn=f"ou=adgroups,{base}",
            server=slapd)
    finally:
        if not slapd.running:
            slapd.start()
        slapd.delete_subtree(base)
