"""The LDAP test harness itself: a real slapd (tests/ldap_server.py), spoken to with ldap3.

Checks what the LDAP user store tests rely on: admin bind, memberOf maintained for
groupOfNames and the AD-lite ``group``, refint, AD-lite schema rules, simple paged
results, stable entryUUID, user simple bind, and a directory that goes down and comes back.
"""

from __future__ import annotations

import time

import ldap3
import pytest
from ldap3.core.exceptions import LDAPException, LDAPSocketOpenError
from ldap_fixtures import LdapBase
from ldap_server import PAGED_RESULTS_OID, ROOT_DN, Slapd, delete_subtree

SUCCESS, NO_SUCH_OBJECT, INVALID_CREDENTIALS = 0, 32, 49


@pytest.fixture
def admin(ldap_base: LdapBase):
    conn = ldap_base.connection()
    yield conn
    conn.unbind()


def person_ldif(dn: str, uid: str, **extra: str) -> str:
    lines = [f"dn: {dn}", "objectClass: inetOrgPerson", f"uid: {uid}", f"cn: {uid}",
             f"sn: {uid.title()}"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def read(conn, dn: str, *attrs: str, raw: bool = False) -> dict:
    """One entry's attributes (str lists: the connections use get_info=NONE, no schema)."""
    assert conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=list(attrs) or ["*", "+"]), \
        conn.result
    return conn.response[0]["raw_attributes" if raw else "attributes"]


def bind_result(lb: LdapBase, dn: str, password: str) -> int:
    """Simple bind as ``dn``; the LDAP result code (0 on success)."""
    conn = ldap3.Connection(ldap3.Server(lb.host, port=lb.port, get_info=ldap3.NONE,
                                         connect_timeout=5), dn, password)
    try:
        conn.bind()
        return conn.result["result"]
    finally:
        conn.unbind()


def lower(values) -> set[str]:
    return {v.lower() for v in values}


def test_admin_bind_root_dse_and_base_entries(slapd: Slapd, admin):
    assert admin.extend.standard.who_am_i() == f"dn:{ROOT_DN}"
    assert admin.search("", "(objectClass=*)", ldap3.BASE,
                        attributes=["supportedControl", "namingContexts"])
    dse = admin.response[0]["attributes"]
    assert PAGED_RESULTS_OID in dse["supportedControl"]
    assert dse["namingContexts"] == ["dc=example,dc=com"]
    assert admin.search(slapd.base_dn, "(objectClass=organizationalUnit)", ldap3.LEVEL,
                        attributes=["ou"])
    assert {"people", "groups", "adusers", "adgroups"} <= {
        e["attributes"]["ou"][0] for e in admin.response}
    assert slapd.url.startswith("ldap://127.0.0.1:") and slapd.port != 389


def test_wrong_admin_password_and_anonymous_reads_nothing(ldap_base: LdapBase, admin):
    assert bind_result(ldap_base, ldap_base.bind_dn, "wrong") == INVALID_CREDENTIALS
    server = ldap3.Server(ldap_base.host, port=ldap_base.port, get_info=ldap3.NONE,
                          connect_timeout=5)
    admin.add(f"uid=anon,{ldap_base.users_dn}", ["inetOrgPerson"],
              {"cn": "anon", "sn": "Anon", "userPassword": "pw-anon-1"})
    assert admin.result["result"] == SUCCESS, admin.result
    anon = ldap3.Connection(server, auto_bind=True)
    try:
        anon.search(ldap_base.base_dn, "(objectClass=*)", ldap3.SUBTREE, attributes=["*"])
        assert anon.response == [] or anon.entries == []
        assert anon.result["result"] in (SUCCESS, NO_SUCH_OBJECT)
        assert not anon.add(f"uid=x,{ldap_base.users_dn}", ["inetOrgPerson"],
                            {"cn": "x", "sn": "x"})
    finally:
        anon.unbind()


def test_groupofnames_member_of_and_refint(ldap_base: LdapBase, admin):
    alice, bob = (f"uid={u},{ldap_base.users_dn}" for u in ("alice", "bob"))
    staff = f"cn=staff,{ldap_base.groups_dn}"
    ldap_base.server.load_ldif(
        person_ldif(alice, "alice", mail="alice@example.com") + "\n"
        + person_ldif(bob, "bob") + "\n"
        + f"dn: {staff}\nobjectClass: groupOfNames\ncn: staff\nmember: {alice}\nmember: {bob}\n")
    assert lower(read(admin, alice, "memberOf")["memberOf"]) == {staff.lower()}
    # filter on memberOf (indexed)
    assert admin.search(ldap_base.users_dn, f"(memberOf={staff})", attributes=["uid"])
    assert sorted(e["attributes"]["uid"][0] for e in admin.response) == ["alice", "bob"]
    # delete a member: refint removes it from the group
    assert admin.delete(bob), admin.result
    assert lower(read(admin, staff, "member")["member"]) == {alice.lower()}
    # rename a member: the group follows
    assert admin.modify_dn(alice, "uid=alice2"), admin.result
    alice2 = f"uid=alice2,{ldap_base.users_dn}"
    assert lower(read(admin, staff, "member")["member"]) == {alice2.lower()}
    assert lower(read(admin, alice2, "memberOf")["memberOf"]) == {staff.lower()}
    # delete the group: memberOf goes away
    assert admin.delete(staff), admin.result
    assert read(admin, alice2, "memberOf").get("memberOf", []) == []


def test_ad_lite_user_and_group(ldap_base: LdapBase, admin):
    jdoe = f"cn=John Doe,{ldap_base.ad_users_dn}"
    admins = f"cn=Admins,{ldap_base.ad_groups_dn}"
    assert admin.add(jdoe, ["top", "person", "organizationalPerson", "user"], {
        "cn": "John Doe", "sn": "Doe", "givenName": "John", "sAMAccountName": "jdoe",
        "userPrincipalName": "jdoe@example.com", "userAccountControl": 512,
        "displayName": "John Doe", "mail": "jdoe@example.com",
        "userPassword": "pw-jdoe-1"}), admin.result
    # an AD group may be empty (a groupOfNames may not)
    assert admin.add(admins, ["top", "group"], {"cn": "Admins", "sAMAccountName": "Admins",
                                                "groupType": -2147483646}), admin.result
    assert admin.modify(admins, {"member": [(ldap3.MODIFY_ADD, [jdoe])]}), admin.result
    assert lower(read(admin, jdoe, "memberOf")["memberOf"]) == {admins.lower()}
    # both memberof instances add to the same memberOf: a groupOfNames and a `group`
    mixed = f"cn=mixed,{ldap_base.groups_dn}"
    assert admin.add(mixed, ["groupOfNames"], {"cn": "mixed", "member": [jdoe]}), admin.result
    assert lower(read(admin, jdoe, "memberOf")["memberOf"]) == {admins.lower(), mixed.lower()}
    assert admin.delete(mixed), admin.result
    assert lower(read(admin, jdoe, "memberOf")["memberOf"]) == {admins.lower()}
    # sAMAccountName matches case-insensitively, with substrings
    assert admin.search(ldap_base.ad_users_dn, "(sAMAccountName=JDOE)", attributes=["cn"])
    assert [e["dn"] for e in admin.response] == [jdoe]
    assert admin.search(ldap_base.ad_users_dn, "(sAMAccountName=jd*)", attributes=["cn"])
    attrs = read(admin, jdoe, "userAccountControl", "entryUUID", "objectClass")
    assert attrs["userAccountControl"] == ["512"]  # get_info=NONE: no schema, raw strings
    assert len(attrs["entryUUID"][0]) == 36
    # single-valued, typed
    assert not admin.modify(jdoe, {"sAMAccountName": [(ldap3.MODIFY_ADD, ["other"])]})
    assert admin.result["description"] in ("attributeOrValueExists", "constraintViolation")
    assert not admin.modify(jdoe, {"userAccountControl": [(ldap3.MODIFY_REPLACE, ["abc"])]})
    assert admin.result["description"] == "invalidAttributeSyntax"
    # the AD-lite user binds with its DN
    user = ldap_base.connection(jdoe, "pw-jdoe-1")
    assert user.extend.standard.who_am_i().lower() == f"dn:{jdoe}".lower()
    user.unbind()
    # delete the user: the AD-lite group drops it
    assert admin.delete(jdoe), admin.result
    assert read(admin, admins, "member").get("member", []) == []


def test_paged_search_2500_entries(ldap_base: LdapBase, admin):
    n, page = 2500, 500
    t0 = time.monotonic()
    ldap_base.server.load_ldif("\n".join(
        person_ldif(f"uid=u{i:05d},{ldap_base.users_dn}", f"u{i:05d}") for i in range(n)))
    load_s = time.monotonic() - t0
    seen: list[str] = []
    sizes: list[int] = []
    cookie = None
    for _ in range(n // page + 2):
        assert admin.search(ldap_base.users_dn, "(objectClass=inetOrgPerson)", ldap3.LEVEL,
                            attributes=["uid"], paged_size=page, paged_cookie=cookie), admin.result
        batch = [e["attributes"]["uid"][0] for e in admin.response
                 if e["type"] == "searchResEntry"]
        sizes.append(len(batch))
        seen += batch
        cookie = admin.result["controls"][PAGED_RESULTS_OID]["value"]["cookie"]
        if not cookie:
            break
    assert not cookie
    assert sizes[:5] == [page] * 5 and sum(sizes) == n
    assert sorted(seen) == [f"u{i:05d}" for i in range(n)]
    # ldap3's own helper agrees
    got = list(admin.extend.standard.paged_search(
        ldap_base.users_dn, "(uid=u0*)", ldap3.LEVEL, attributes=["uid"], paged_size=page,
        generator=True))
    assert len(got) == n
    assert load_s < 60, f"loading {n} entries took {load_s:.1f}s"


def test_user_password_bind(ldap_base: LdapBase, admin):
    dn = f"uid=carol,{ldap_base.users_dn}"
    ldap_base.server.load_ldif(person_ldif(dn, "carol"))
    # no userPassword yet: no password works
    assert bind_result(ldap_base, dn, "x") == INVALID_CREDENTIALS
    # set by the rootdn with a plain modify: stored as given
    assert admin.modify(dn, {"userPassword": [(ldap3.MODIFY_REPLACE, ["Secret-1"])]})
    assert read(admin, dn, "userPassword", raw=True)["userPassword"] == [b"Secret-1"]
    assert bind_result(ldap_base, dn, "Secret-1") == SUCCESS
    assert bind_result(ldap_base, dn, "secret-1") == INVALID_CREDENTIALS
    # Password Modify extended operation: hashed with {SSHA}
    assert admin.extend.standard.modify_password(dn, new_password="Secret-2")
    stored = read(admin, dn, "userPassword", raw=True)["userPassword"][0]
    assert stored.startswith(b"{SSHA}")
    assert bind_result(ldap_base, dn, "Secret-2") == SUCCESS
    assert bind_result(ldap_base, dn, "Secret-1") == INVALID_CREDENTIALS
    # the user reads its own entry but not its password's value, and not others'
    user = ldap_base.connection(dn, "Secret-2")
    assert user.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["uid", "userPassword"])
    assert user.response[0]["attributes"]["uid"] == ["carol"]
    assert "userPassword" not in user.response[0]["attributes"] or \
        user.response[0]["attributes"]["userPassword"] == []
    other = f"uid=dan,{ldap_base.users_dn}"
    ldap_base.server.load_ldif(person_ldif(other, "dan"))
    assert not user.search(other, "(objectClass=*)", ldap3.BASE, attributes=["uid"])
    assert not user.search(ldap_base.users_dn, "(uid=*)", ldap3.LEVEL, attributes=["uid"])
    # ... and changes its own password with the old one
    assert user.extend.standard.modify_password(old_password="Secret-2", new_password="Secret-3"), \
        user.result
    user.unbind()
    assert bind_result(ldap_base, dn, "Secret-3") == SUCCESS
    assert bind_result(ldap_base, dn, "Secret-2") == INVALID_CREDENTIALS


def test_stop_and_start_keeps_data_and_entry_uuid(ldap_base: LdapBase, admin):
    slapd = ldap_base.server
    dn = f"uid=dave,{ldap_base.users_dn}"
    group = f"cn=ops,{ldap_base.groups_dn}"
    ldap_base.server.load_ldif(person_ldif(dn, "dave") + "\n"
                               + f"dn: {group}\nobjectClass: groupOfNames\ncn: ops\n"
                               + f"member: {dn}\n")
    before = read(admin, dn, "entryUUID", "memberOf")
    admin.unbind()
    port = slapd.port

    slapd.stop()
    assert not slapd.running
    # refused at once (ldap3 leaves the failed socket to the GC: a ResourceWarning)
    t0 = time.monotonic()
    with pytest.raises(LDAPSocketOpenError):
        ldap_base.connection()
    assert time.monotonic() - t0 < 3

    slapd.start()
    assert slapd.port == port and slapd.running
    again = ldap_base.connection()
    try:
        after = read(again, dn, "entryUUID", "memberOf")
        assert after["entryUUID"] == before["entryUUID"]
        assert lower(after["memberOf"]) == {group.lower()}
    finally:
        again.unbind()


def test_established_connection_fails_when_server_stops(ldap_base: LdapBase):
    conn = ldap_base.connection()
    try:
        assert conn.search(ldap_base.base_dn, "(objectClass=*)", ldap3.BASE)
        ldap_base.server.stop()
        t0 = time.monotonic()
        with pytest.raises(LDAPException):
            conn.search(ldap_base.base_dn, "(objectClass=*)", ldap3.BASE)
        assert time.monotonic() - t0 < 5
    finally:
        ldap_base.server.start()
    fresh = ldap_base.connection()
    assert fresh.search(ldap_base.base_dn, "(objectClass=*)", ldap3.BASE)
    fresh.unbind()


def test_ldap_base_is_private_and_delete_subtree(ldap_base: LdapBase, admin):
    # only this test's four empty OUs
    assert admin.search(ldap_base.base_dn, "(objectClass=*)", ldap3.SUBTREE, attributes=["1.1"])
    assert sorted(e["dn"] for e in admin.response) == sorted([
        ldap_base.base_dn, ldap_base.users_dn, ldap_base.groups_dn, ldap_base.ad_users_dn,
        ldap_base.ad_groups_dn])
    nested = f"ou=deep,{ldap_base.users_dn}"
    ldap_base.server.load_ldif(f"dn: {nested}\nobjectClass: organizationalUnit\nou: deep\n\n"
                               + person_ldif(f"uid=e,{nested}", "e"))
    assert delete_subtree(admin, ldap_base.users_dn) == 3
    assert not admin.search(ldap_base.users_dn, "(objectClass=*)", ldap3.BASE)
    assert admin.result["result"] == NO_SUCH_OBJECT
    assert delete_subtree(admin, ldap_base.users_dn) == 0
    # the same through ldapmodify
    ldap_base.server.load_ldif(
        f"dn: {ldap_base.users_dn}\nobjectClass: organizationalUnit\nou: people\n\n"
        f"dn: {nested}\nobjectClass: organizationalUnit\nou: deep\n\n"
        + person_ldif(f"uid=f,{nested}", "f"))
    assert ldap_base.server.delete_subtree(ldap_base.groups_dn) == 1
    assert ldap_base.server.delete_subtree(nested) == 2
    assert not admin.search(nested, "(objectClass=*)", ldap3.BASE)
    assert admin.result["result"] == NO_SUCH_OBJECT
    assert ldap_base.server.delete_subtree(nested) == 0


def test_start_failure_reports_slapd_output(tmp_path, slapd: Slapd):
    # the port is taken by the session's slapd: this one must fail fast, with slapd's words
    other = Slapd(tmp_path / "other", port=slapd.port, start_timeout=10)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"(?s)slapd exited.*Address already in use"):
        other.start()
    assert time.monotonic() - t0 < 10
    assert not other.running


def test_bulk_load_offline(ldap_base: LdapBase):
    slapd = ldap_base.server
    port = slapd.port
    users = [f"uid=b{i},{ldap_base.users_dn}" for i in range(3)]
    group = f"cn=bulk,{ldap_base.groups_dn}"
    ldif = [person_ldif(dn, f"b{i}", memberOf=group) for i, dn in enumerate(users)]
    ldif.append(f"dn: {group}\nobjectClass: groupOfNames\ncn: bulk\n"
                + "".join(f"member: {dn}\n" for dn in users))
    slapd.bulk_load("\n".join(ldif))
    assert slapd.running and slapd.port == port
    conn = ldap_base.connection()
    try:
        assert conn.search(ldap_base.users_dn, f"(memberOf={group})", ldap3.LEVEL,
                           attributes=["entryUUID"])
        assert sorted(e["dn"] for e in conn.response) == sorted(users)
        assert all(len(e["attributes"]["entryUUID"][0]) == 36 for e in conn.response)
        # overlays work again on the bulk-loaded entries once slapd is back
        assert conn.delete(users[0]), conn.result
        assert lower(read(conn, group, "member")["member"]) == lower(users[1:])
    finally:
        conn.unbind()
