"""Custom schema extensions declared in the configuration, driven over SCIM 2.0 HTTP.

The configuration is real TOML (``[[extensions]]``) loaded by ``gateway.settings.load``;
the extensions must then behave like the built-in ones: discovery, validation,
storage, filters, sorting, PATCH paths, ``returned``/``mutability``/``uniqueness``.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from urllib.parse import quote

import pytest
from conftest import ADMIN_USER, assert_scim_error, scim
from scim2_models import Schema as ScimSchema

from gateway.app import create_app
from gateway.config import ConfigError
from gateway.settings import load

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ACME = "urn:example:params:scim:schemas:extension:acme:2.0:User"
ACME_GROUP = "urn:example:params:scim:schemas:extension:acme:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

EXTENSIONS_TOML = f'''
[[extensions]]
id = "{ACME}"
name = "AcmeUser"
resource = "User"
alias = "acme"
description = "Acme staff attributes"

[[extensions.attributes]]
name = "badgeNumber"
type = "string"
uniqueness = "server"
description = "Badge number printed on the card"

[[extensions.attributes]]
name = "clearance"
type = "integer"
description = "Security clearance level"

[[extensions.attributes]]
name = "hiredOn"
type = "dateTime"

[[extensions.attributes]]
name = "remote"
type = "boolean"

[[extensions.attributes]]
name = "skills"
type = "string"
multiValued = true
canonicalValues = ["python", "sql", "ldap"]

[[extensions.attributes]]
name = "badge"
type = "complex"
description = "The physical badge"

[[extensions.attributes.subAttributes]]
name = "code"
type = "string"
caseExact = true
mutability = "immutable"

[[extensions.attributes.subAttributes]]
name = "issuer"
type = "string"

[[extensions.attributes]]
name = "pin"
type = "string"
mutability = "writeOnly"
returned = "never"
caseExact = true

[[extensions.attributes]]
name = "internalNote"
type = "string"
returned = "request"

[[extensions.attributes]]
name = "employeeKey"
type = "string"
mutability = "immutable"
caseExact = true

[[extensions]]
id = "{ACME_GROUP}"
name = "AcmeGroup"
resource = "Group"
description = "Acme group attributes"

[[extensions.attributes]]
name = "costCode"
type = "string"

[[extensions.attributes]]
name = "groupKey"
type = "string"
mutability = "immutable"
'''


def patch_body(*operations: dict) -> dict:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def q(text: str) -> str:
    return quote(text, safe="")


def by_name(name: str) -> str:
    return "/Users?filter=" + q(f'userName eq "{name}"')


def as_dt(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
async def acme(aiohttp_client, make_config, admin_env, tmp_path):
    """A gateway whose configuration (read from TOML) declares the Acme extensions."""
    path = tmp_path / "gateway.toml"
    path.write_text(EXTENSIONS_TOML, encoding="utf-8")
    loaded = load(path, environ={})
    base = await make_config()
    cfg = dataclasses.replace(loaded, stores=base.stores, clients=base.clients,
                              passwords=base.passwords)
    return await aiohttp_client(create_app(cfg))


async def create_user(client, name: str, ext: dict | None = None, **core) -> dict:
    body = {"schemas": [CORE, ACME], "userName": name, **core}
    if ext is not None:
        body[ACME] = ext
    status, created, _ = await scim(client, "POST", "/Users", body)
    assert status == 201, created
    return created


async def names(client, flt: str, extra: str = "") -> list[str]:
    status, body, _ = await scim(client, "GET", f"/Users?filter={q(flt)}{extra}")
    assert status == 200, (flt, body)
    assert body["totalResults"] == len(body["Resources"])
    return sorted(r["userName"] for r in body["Resources"]
                  if r["userName"] != ADMIN_USER[0])  # the bootstrap admin is a user too


def assert_no_pin(body, secret: str) -> None:
    text = repr(body)
    assert "'pin'" not in text, body
    assert secret not in text, body


# configuration ------------------------------------------------------------------------------
def test_toml_extensions_are_loaded(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text(EXTENSIONS_TOML, encoding="utf-8")
    cfg = load(path, environ={})
    assert [(r, s.id) for r, s in cfg.extensions] == [("User", ACME), ("Group", ACME_GROUP)]
    user_schema = cfg.extensions[0][1]
    assert user_schema.alias == "acme"
    assert user_schema.attribute("BADGE").sub("CODE").mutability == "immutable"
    assert cfg.extensions[1][1].alias == "acmegroup"  # derived from the name


BAD_EXTENSIONS = {
    "unknown type": ('''
[[extensions]]
id = "urn:example:x:1.0:User"
[[extensions.attributes]]
name = "level"
type = "float"
''', ["type", "level"]),
    "complex without subAttributes": ('''
[[extensions]]
id = "urn:example:x:1.0:User"
[[extensions.attributes]]
name = "badge"
type = "complex"
''', ["badge", "subAttributes"]),
    "duplicate attribute": ('''
[[extensions]]
id = "urn:example:x:1.0:User"
[[extensions.attributes]]
name = "level"
[[extensions.attributes]]
name = "Level"
''', ["unique"]),
    "reserved alias": ('''
[[extensions]]
id = "urn:example:x:1.0:User"
alias = "enterprise"
[[extensions.attributes]]
name = "level"
''', ["enterprise", "reserved"]),
    "id not a URN": ('''
[[extensions]]
id = "acme-user"
[[extensions.attributes]]
name = "level"
''', ["urn"]),
    "id of a built-in schema": (f'''
[[extensions]]
id = "{ENTERPRISE}"
alias = "ent2"
[[extensions.attributes]]
name = "level"
''', [ENTERPRISE.lower(), "already exists"]),
    "two extensions with one id": (f'''
[[extensions]]
id = "{ACME}"
alias = "one"
[[extensions.attributes]]
name = "level"
[[extensions]]
id = "{ACME}"
alias = "two"
[[extensions.attributes]]
name = "level"
''', ["already exists"]),
    "no attributes": ('''
[[extensions]]
id = "urn:example:x:1.0:User"
''', ["attribute"]),
    "unknown resource": ('''
[[extensions]]
id = "urn:example:x:1.0:Device"
resource = "Device"
[[extensions.attributes]]
name = "level"
''', ["resource"]),
    "complex sub-attribute": ('''
[[extensions]]
id = "urn:example:x:1.0:User"
[[extensions.attributes]]
name = "badge"
type = "complex"
[[extensions.attributes.subAttributes]]
name = "inner"
type = "complex"
''', ["inner", "complex"]),
    "bad mutability": ('''
[[extensions]]
id = "urn:example:x:1.0:User"
[[extensions.attributes]]
name = "level"
mutability = "sometimes"
''', ["mutability", "level"]),
}


@pytest.mark.parametrize("case", sorted(BAD_EXTENSIONS))
def test_bad_extension_is_a_config_error(tmp_path, case):
    text, words = BAD_EXTENSIONS[case]
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    message = str(info.value)
    assert "extension" in message, message
    for word in words:
        assert word.lower() in message.lower(), (case, message)


# discovery ----------------------------------------------------------------------------------
async def test_schemas_list_the_extensions(acme):
    status, body, _ = await scim(acme, "GET", "/Schemas")
    assert status == 200, body
    ids = [s["id"] for s in body["Resources"]]
    assert ACME in ids and ACME_GROUP in ids and CORE in ids and ENTERPRISE in ids
    assert body["totalResults"] == len(ids)


async def test_schema_describes_every_declared_attribute(acme):
    status, body, _ = await scim(acme, "GET", f"/Schemas/{ACME}")
    assert status == 200, body
    ScimSchema.model_validate(body)  # a well-formed RFC 7643 §7 Schema
    assert body["id"] == ACME
    assert body["name"] == "AcmeUser"
    assert body["description"] == "Acme staff attributes"
    assert body["meta"]["location"].endswith(f"/Schemas/{ACME}")
    attrs = {a["name"]: a for a in body["attributes"]}
    assert list(attrs) == ["badgeNumber", "clearance", "hiredOn", "remote", "skills", "badge",
                           "pin", "internalNote", "employeeKey"]
    badge_number = attrs["badgeNumber"]
    assert badge_number["type"] == "string"
    assert badge_number["uniqueness"] == "server"
    assert badge_number["caseExact"] is False
    assert badge_number["multiValued"] is False
    assert badge_number["required"] is False
    assert badge_number["mutability"] == "readWrite"
    assert badge_number["returned"] == "default"
    assert badge_number["description"] == "Badge number printed on the card"
    assert attrs["clearance"]["type"] == "integer"
    assert attrs["clearance"]["description"] == "Security clearance level"
    assert attrs["hiredOn"]["type"] == "dateTime"
    assert attrs["remote"]["type"] == "boolean"
    assert attrs["skills"]["multiValued"] is True
    assert attrs["skills"]["canonicalValues"] == ["python", "sql", "ldap"]
    badge = attrs["badge"]
    assert badge["type"] == "complex"
    subs = {s["name"]: s for s in badge["subAttributes"]}
    assert set(subs) == {"code", "issuer"}
    assert subs["code"]["caseExact"] is True
    assert subs["code"]["mutability"] == "immutable"
    assert subs["issuer"]["caseExact"] is False
    assert subs["issuer"]["mutability"] == "readWrite"
    assert attrs["pin"]["mutability"] == "writeOnly"
    assert attrs["pin"]["returned"] == "never"
    assert attrs["pin"]["caseExact"] is True
    assert attrs["internalNote"]["returned"] == "request"
    assert attrs["employeeKey"]["mutability"] == "immutable"
    assert attrs["employeeKey"]["caseExact"] is True
    # the URN is matched case-insensitively, as the other schema ids are
    status, again, _ = await scim(acme, "GET", f"/Schemas/{ACME.upper().replace('URN:', 'urn:')}")
    assert status == 200, again
    assert again["id"] == ACME


async def test_group_extension_schema(acme):
    status, body, _ = await scim(acme, "GET", f"/Schemas/{ACME_GROUP}")
    assert status == 200, body
    attrs = {a["name"]: a for a in body["attributes"]}
    assert set(attrs) == {"costCode", "groupKey"}
    assert attrs["groupKey"]["mutability"] == "immutable"


async def test_resource_types_list_the_extensions(acme):
    status, user, _ = await scim(acme, "GET", "/ResourceTypes/User")
    assert status == 200, user
    exts = {e["schema"]: e for e in user["schemaExtensions"]}
    assert ACME in exts and ENTERPRISE in exts
    assert exts[ACME]["required"] is False
    assert ACME_GROUP not in exts
    status, group, _ = await scim(acme, "GET", "/ResourceTypes/Group")
    assert status == 200, group
    assert [e["schema"] for e in group["schemaExtensions"]] == [ACME_GROUP]


# create / get / put / patch -----------------------------------------------------------------
async def test_create_and_get_round_trip(acme):
    created = await create_user(acme, "ada", {
        "badgeNumber": "B-100", "clearance": 3, "hiredOn": "2020-01-15T10:00:00+01:00",
        "remote": True, "skills": ["python", "sql"],
        "badge": {"code": "Xy-1", "issuer": "HQ"}, "employeeKey": "K-1",
    })
    assert created["schemas"] == [CORE, ACME]
    ext = created[ACME]
    assert ext["badgeNumber"] == "B-100"
    assert ext["clearance"] == 3
    assert as_dt(ext["hiredOn"]) == as_dt("2020-01-15T09:00:00Z")
    assert ext["remote"] is True
    assert ext["skills"] == ["python", "sql"]
    assert ext["badge"] == {"code": "Xy-1", "issuer": "HQ"}
    assert ext["employeeKey"] == "K-1"
    status, got, _ = await scim(acme, "GET", f"/Users/{created['id']}")
    assert status == 200, got
    assert got["schemas"] == [CORE, ACME]
    assert got[ACME] == ext


async def test_attribute_names_are_case_insensitive_and_canonicalised(acme):
    created = await create_user(acme, "bob", {"BADGENUMBER": "B-7", "Remote": "True",
                                              "Badge": {"CODE": "c1"}})
    assert created[ACME] == {"badgeNumber": "B-7", "remote": True, "badge": {"code": "c1"}}


async def test_urn_qualified_single_keys(acme):
    status, created, _ = await scim(acme, "POST", "/Users", {
        "userName": "carol", f"{ACME}:badgeNumber": "B-200", f"{ACME}:clearance": 2,
        f"{ACME}:badge.issuer": "Branch",
    })
    assert status == 201, created
    assert ACME in created["schemas"]
    assert created[ACME] == {"badgeNumber": "B-200", "clearance": 2,
                             "badge": {"issuer": "Branch"}}


async def test_no_extension_data_no_extension_schema(acme):
    created = await create_user(acme, "dave")
    assert created["schemas"] == [CORE]
    assert ACME not in created


async def test_put_replaces_extension_attributes(acme):
    created = await create_user(acme, "erin", {"badgeNumber": "B-1", "clearance": 1,
                                               "skills": ["ldap"]})
    status, body, _ = await scim(acme, "PUT", f"/Users/{created['id']}", {
        "schemas": [CORE, ACME], "userName": "erin",
        ACME: {"clearance": 5, "remote": False},
    })
    assert status == 200, body
    assert body[ACME] == {"clearance": 5, "remote": False}  # the rest is gone
    status, got, _ = await scim(acme, "GET", f"/Users/{created['id']}")
    assert got[ACME] == {"clearance": 5, "remote": False}
    # a PUT without the extension removes it, and its schema from "schemas"
    status, body, _ = await scim(acme, "PUT", f"/Users/{created['id']}",
                                 {"schemas": [CORE], "userName": "erin"})
    assert status == 200, body
    assert ACME not in body
    assert body["schemas"] == [CORE]


async def test_patch_extension_paths(acme):
    created = await create_user(acme, "fay", {"badgeNumber": "B-300",
                                              "badge": {"code": "F1", "issuer": "HQ"}})
    uid = created["id"]
    status, body, _ = await scim(acme, "PATCH", f"/Users/{uid}", patch_body(
        {"op": "replace", "path": f"{ACME}:badge.issuer", "value": "Branch"},
        {"op": "add", "path": f"{ACME}:clearance", "value": 4},
        {"op": "add", "path": f"{ACME}:skills", "value": ["sql"]},
        {"op": "add", "path": f"{ACME}:skills", "value": ["ldap"]},
        {"op": "replace", "path": f"{ACME}:hiredOn", "value": "2021-06-01T00:00:00Z"},
    ))
    assert status == 200, body
    ext = body[ACME]
    assert ext["badge"] == {"code": "F1", "issuer": "Branch"}
    assert ext["clearance"] == 4
    assert sorted(ext["skills"]) == ["ldap", "sql"]
    assert as_dt(ext["hiredOn"]) == as_dt("2021-06-01T00:00:00Z")
    assert ext["badgeNumber"] == "B-300"
    # no path: the value names the extension by URN
    status, body, _ = await scim(acme, "PATCH", f"/Users/{uid}", patch_body(
        {"op": "replace", "value": {ACME: {"remote": True, "clearance": 6}}}))
    assert status == 200, body
    assert body[ACME]["remote"] is True and body[ACME]["clearance"] == 6
    assert body[ACME]["badgeNumber"] == "B-300"
    # remove one attribute, then the whole extension
    status, body, _ = await scim(acme, "PATCH", f"/Users/{uid}", patch_body(
        {"op": "remove", "path": f"{ACME}:skills"}))
    assert status == 200, body
    assert "skills" not in body[ACME]
    status, body, _ = await scim(acme, "PATCH", f"/Users/{uid}", patch_body(
        {"op": "remove", "path": f"{ACME}:badge.issuer"}))
    assert status == 200, body
    assert body[ACME]["badge"] == {"code": "F1"}
    status, body, _ = await scim(acme, "GET", f"/Users/{uid}")
    assert body[ACME]["badge"] == {"code": "F1"}
    assert "skills" not in body[ACME]


async def test_patch_remove_whole_extension(acme):
    created = await create_user(acme, "gus", {"clearance": 1, "remote": True})
    status, body, _ = await scim(acme, "PATCH", f"/Users/{created['id']}", patch_body(
        {"op": "remove", "path": ACME}))
    assert status == 200, body
    assert ACME not in body
    assert body["schemas"] == [CORE]
    assert await names(acme, f"{ACME}:clearance pr") == []


# validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize("ext, scim_type", [
    ({"clearance": "high"}, "invalidValue"),
    ({"clearance": 2.5}, "invalidValue"),
    ({"remote": "yes"}, "invalidValue"),
    ({"hiredOn": "last tuesday"}, "invalidValue"),
    ({"badgeNumber": 42}, "invalidValue"),
    ({"skills": [1, 2]}, "invalidValue"),
    ({"badge": "plain"}, "invalidValue"),
    ({"badge": {"colour": "red"}}, "invalidSyntax"),
    ({"shoeSize": 44}, "invalidSyntax"),
])
async def test_invalid_extension_values_are_refused(acme, ext, scim_type):
    status, body, _ = await scim(acme, "POST", "/Users", {"userName": "val", ACME: ext})
    assert_scim_error(status, body, 400, scim_type)
    status, found, _ = await scim(acme, "GET", by_name("val"))
    assert found["totalResults"] == 0


async def test_unknown_urn_qualified_attribute_is_refused(acme):
    status, body, _ = await scim(acme, "POST", "/Users",
                                 {"userName": "val", f"{ACME}:shoeSize": 44})
    assert_scim_error(status, body, 400, "invalidSyntax")
    assert "shoeSize" in body["detail"]


async def test_invalid_values_in_put_and_patch(acme):
    created = await create_user(acme, "hal", {"clearance": 1})
    uid = created["id"]
    status, body, _ = await scim(acme, "PUT", f"/Users/{uid}",
                                 {"userName": "hal", ACME: {"clearance": "one"}})
    assert_scim_error(status, body, 400, "invalidValue")
    status, body, _ = await scim(acme, "PATCH", f"/Users/{uid}", patch_body(
        {"op": "replace", "path": f"{ACME}:remote", "value": 7}))
    assert_scim_error(status, body, 400, "invalidValue")
    status, body, _ = await scim(acme, "PATCH", f"/Users/{uid}", patch_body(
        {"op": "replace", "path": f"{ACME}:shoeSize", "value": 7}))
    assert_scim_error(status, body, 400, "invalidPath")
    status, body, _ = await scim(acme, "PATCH", f"/Users/{uid}", patch_body(
        {"op": "replace", "path": f"{ACME}:badge.colour", "value": "red"}))
    assert_scim_error(status, body, 400, "invalidPath")
    status, got, _ = await scim(acme, "GET", f"/Users/{uid}")
    assert got[ACME] == {"clearance": 1}
    assert got["meta"]["version"] == 'W/"1"'


# filters and sorting -----------------------------------------------------------------------
@pytest.fixture
async def staff(acme):
    await create_user(acme, "u1", {"badgeNumber": "B-1", "clearance": 1,
                                   "hiredOn": "2019-03-01T12:00:00Z", "remote": True,
                                   "skills": ["python"], "badge": {"code": "AAA", "issuer": "HQ"}})
    await create_user(acme, "u2", {"badgeNumber": "B-2", "clearance": 3,
                                   "hiredOn": "2021-07-15T08:30:00+02:00", "remote": False,
                                   "skills": ["Python", "sql"],
                                   "badge": {"code": "aaa", "issuer": "Branch"}})
    await create_user(acme, "u3", {"badgeNumber": "B-3", "clearance": 10,
                                   "hiredOn": "2023-01-01T00:00:00Z",
                                   "skills": ["ldap"], "badge": {"code": "BBB"}})
    await create_user(acme, "u4")
    return acme


async def test_filter_integer(staff):
    assert await names(staff, f"{ACME}:clearance gt 2") == ["u2", "u3"]
    assert await names(staff, f"{ACME}:clearance ge 3") == ["u2", "u3"]
    assert await names(staff, f"{ACME}:clearance lt 3") == ["u1"]
    assert await names(staff, f"{ACME}:clearance eq 10") == ["u3"]
    assert await names(staff, "clearance le 3") == ["u1", "u2"]  # unqualified: one schema has it
    assert await names(staff, f"{ACME}:clearance pr") == ["u1", "u2", "u3"]
    assert await names(staff, f"not ({ACME}:clearance pr)") == ["u4"]


async def test_filter_datetime(staff):
    # u2 was hired 2021-07-15T06:30Z: the offset counts
    assert await names(staff, f'{ACME}:hiredOn ge "2021-07-15T06:30:00Z"') == ["u2", "u3"]
    assert await names(staff, f'{ACME}:hiredOn gt "2021-07-15T06:30:00Z"') == ["u3"]
    assert await names(staff, 'hiredOn lt "2021-07-15T08:00:00+02:00"') == ["u1"]
    assert await names(staff, f'{ACME}:hiredOn eq "2019-03-01T13:00:00+01:00"') == ["u1"]


async def test_filter_boolean(staff):
    assert await names(staff, f"{ACME}:remote eq true") == ["u1"]
    assert await names(staff, f"{ACME}:remote eq false") == ["u2"]
    assert await names(staff, "remote pr") == ["u1", "u2"]


async def test_filter_multi_valued_string(staff):
    assert await names(staff, f'{ACME}:skills eq "python"') == ["u1", "u2"]  # caseExact false
    assert await names(staff, f'{ACME}:skills eq "SQL"') == ["u2"]
    assert await names(staff, 'skills sw "L"') == ["u3"]
    assert await names(staff, f'{ACME}:skills co "yth" and {ACME}:clearance gt 1') == ["u2"]


async def test_filter_complex_sub_attribute_case_exact(staff):
    assert await names(staff, f'{ACME}:badge.code eq "AAA"') == ["u1"]
    assert await names(staff, f'{ACME}:badge.code eq "aaa"') == ["u2"]
    assert await names(staff, 'badge.code eq "bbb"') == []
    assert await names(staff, 'badge.code sw "B"') == ["u3"]
    # issuer is not caseExact
    assert await names(staff, f'{ACME}:badge.issuer eq "hq"') == ["u1"]
    assert await names(staff, f"{ACME}:badge.issuer pr") == ["u1", "u2"]


async def test_filter_unqualified_unique_string(staff):
    assert await names(staff, 'badgeNumber eq "b-2"') == ["u2"]  # caseExact false
    assert await names(staff, f'{ACME}:badgeNumber ne "B-2"') == ["u1", "u3", "u4"]
    assert await names(staff, 'badgeNumber eq "B-2" or clearance eq 10') == ["u2", "u3"]


async def test_filter_on_schemas_names_the_extension(staff):
    assert await names(staff, f'schemas eq "{ACME}"') == ["u1", "u2", "u3"]


async def test_filter_with_wrong_value_type(staff):
    for flt in (f'{ACME}:clearance gt "high"', f'{ACME}:remote eq "maybe"',
                f'{ACME}:hiredOn ge "yesterday"', f'{ACME}:remote gt true',
                f'{ACME}:shoeSize eq 1', f'{ACME}:badge.colour eq "red"'):
        status, body, _ = await scim(staff, "GET", f"/Users?filter={q(flt)}")
        assert_scim_error(status, body, 400, "invalidFilter")


async def test_sort_by_extension_attributes(staff):
    async def order(params: str) -> list[str]:
        status, body, _ = await scim(staff, "GET", f"/Users?{params}")
        assert status == 200, body
        return [r["userName"] for r in body["Resources"] if r["userName"].startswith("u")]

    # numbers sort as numbers (10 after 3), missing values last ascending
    assert await order(f"sortBy={q(ACME + ':clearance')}") == ["u1", "u2", "u3", "u4"]
    assert await order(f"sortBy={q(ACME + ':clearance')}&sortOrder=descending") == [
        "u4", "u3", "u2", "u1"]
    assert await order(f"sortBy={q(ACME + ':hiredOn')}&sortOrder=descending") == [
        "u4", "u3", "u2", "u1"]
    assert await order("sortBy=badge.issuer") == ["u2", "u1", "u3", "u4"]  # Branch, HQ
    assert await order(f"sortBy={q(ACME + ':badgeNumber')}&sortOrder=descending"
                       f"&filter={q(ACME + ':clearance pr')}") == ["u3", "u2", "u1"]


# returned: never / request ------------------------------------------------------------------
async def test_write_only_pin_is_never_returned(acme):
    secret = "pin-8642"
    status, created, _ = await scim(acme, "POST", "/Users", {
        "userName": "ivy", ACME: {"pin": secret, "clearance": 2}})
    assert status == 201, created
    assert_no_pin(created, secret)
    assert created[ACME] == {"clearance": 2}
    uid = created["id"]
    for path in (f"/Users/{uid}", f"/Users/{uid}?attributes={q(ACME + ':pin')}",
                 f"/Users/{uid}?attributes=pin", f"/Users/{uid}?attributes={q(ACME)}",
                 by_name("ivy"),
                 by_name("ivy") + f"&attributes={q(ACME + ':pin')}"):
        status, body, _ = await scim(acme, "GET", path)
        assert status == 200, (path, body)
        assert_no_pin(body, secret)
    status, body, _ = await scim(acme, "POST", "/Users/.search", {
        "filter": 'userName eq "ivy"', "attributes": [f"{ACME}:pin", "userName"]})
    assert status == 200, body
    assert body["totalResults"] == 1
    assert_no_pin(body, secret)
    # written by PATCH: still not in the answer
    other = "pin-1357"
    status, body, _ = await scim(acme, "PATCH", f"/Users/{uid}", patch_body(
        {"op": "replace", "path": f"{ACME}:pin", "value": other}))
    assert status == 200, body
    assert_no_pin(body, other)
    assert body[ACME] == {"clearance": 2}
    assert body["meta"]["version"] == 'W/"2"'  # it was written
    status, body, _ = await scim(acme, "PATCH", f"/Users/{uid}?attributes={q(ACME + ':pin')}",
                                 patch_body({"op": "replace", "path": f"{ACME}:pin",
                                             "value": secret}))
    assert status == 200, body
    assert_no_pin(body, secret)
    # a user with only a pin lists no extension data, not even an empty object
    status, only, _ = await scim(acme, "POST", "/Users",
                                 {"userName": "ivy2", f"{ACME}:pin": secret})
    assert status == 201, only
    assert_no_pin(only, secret)
    assert only.get(ACME) in (None, {})


async def test_write_only_pin_cannot_be_probed_by_filter_or_sort(acme):
    """Filtering or sorting on a writeOnly/returned=never value would disclose it bit by bit,
    as filtering on the password would: refused like the password is."""
    await create_user(acme, "jay", {"pin": "1234"})
    for flt in (f'{ACME}:pin eq "1234"', 'pin sw "1"', f"{ACME}:pin pr"):
        status, body, _ = await scim(acme, "GET", f"/Users?filter={q(flt)}")
        assert_scim_error(status, body, 400, "invalidFilter")
    status, body, _ = await scim(acme, "GET", f"/Users?sortBy={q(ACME + ':pin')}")
    assert status == 400, body


async def test_returned_request_only_when_asked(acme):
    created = await create_user(acme, "kim", {"internalNote": "watch out", "clearance": 1})
    assert "internalNote" not in created[ACME]
    uid = created["id"]
    status, body, _ = await scim(acme, "GET", f"/Users/{uid}")
    assert "internalNote" not in body[ACME]
    status, body, _ = await scim(acme, "GET", by_name("kim"))
    assert "internalNote" not in body["Resources"][0][ACME]
    status, body, _ = await scim(acme, "GET", f"/Users/{uid}?excludedAttributes=clearance")
    assert status == 200, body
    assert ACME not in body or "internalNote" not in body[ACME]
    # asked for by its qualified name
    status, body, _ = await scim(acme, "GET",
                                 f"/Users/{uid}?attributes={q(ACME + ':internalNote')}")
    assert status == 200, body
    assert body[ACME] == {"internalNote": "watch out"}
    assert "userName" not in body
    status, body, _ = await scim(acme, "GET", f"/Users/{uid}?attributes=internalNote,clearance")
    assert status == 200, body
    assert body[ACME] == {"internalNote": "watch out", "clearance": 1}
    status, body, _ = await scim(acme, "GET", by_name("kim") +
                                 f"&attributes={q(ACME + ':internalNote')},userName")
    assert body["Resources"][0][ACME] == {"internalNote": "watch out"}
    assert body["Resources"][0]["userName"] == "kim"
    # and after a PATCH that asks for it
    status, body, _ = await scim(acme, "PATCH",
                                 f"/Users/{uid}?attributes={q(ACME + ':internalNote')}",
                                 patch_body({"op": "replace", "path": f"{ACME}:internalNote",
                                             "value": "all fine"}))
    assert status == 200, body
    assert body[ACME] == {"internalNote": "all fine"}
    status, body, _ = await scim(acme, "PATCH", f"/Users/{uid}", patch_body(
        {"op": "replace", "path": f"{ACME}:clearance", "value": 2}))
    assert "internalNote" not in body[ACME]


# mutability: immutable ----------------------------------------------------------------------
async def test_immutable_attribute_in_put(acme):
    created = await create_user(acme, "lee", {"employeeKey": "K-9", "clearance": 1})
    uid = created["id"]
    status, body, _ = await scim(acme, "PUT", f"/Users/{uid}", {
        "userName": "lee", ACME: {"employeeKey": "K-10", "clearance": 1}})
    assert_scim_error(status, body, 400, "mutability")
    assert "employeeKey" in body["detail"]
    status, body, _ = await scim(acme, "PUT", f"/Users/{uid}", {
        "userName": "lee", ACME: {"employeeKey": "k-9", "clearance": 2}})  # caseExact
    assert_scim_error(status, body, 400, "mutability")
    status, body, _ = await scim(acme, "PUT", f"/Users/{uid}", {
        "userName": "lee", ACME: {"employeeKey": "K-9", "clearance": 2}})
    assert status == 200, body
    assert body[ACME] == {"employeeKey": "K-9", "clearance": 2}


async def test_immutable_attribute_in_patch(acme):
    created = await create_user(acme, "max", {"clearance": 1})
    uid = created["id"]
    # not set yet: may be set once
    status, body, _ = await scim(acme, "PATCH", f"/Users/{uid}", patch_body(
        {"op": "add", "path": f"{ACME}:employeeKey", "value": "K-5"}))
    assert status == 200, body
    assert body[ACME]["employeeKey"] == "K-5"
    for op in ({"op": "replace", "path": f"{ACME}:employeeKey", "value": "K-6"},
               {"op": "replace", "value": {ACME: {"employeeKey": "K-6"}}},
               {"op": "replace", "value": {f"{ACME}:employeeKey": "K-6"}},
               {"op": "remove", "path": f"{ACME}:employeeKey"},
               {"op": "remove", "path": ACME}):
        status, body, _ = await scim(acme, "PATCH", f"/Users/{uid}", patch_body(op))
        assert_scim_error(status, body, 400, "mutability")
    status, body, _ = await scim(acme, "PATCH", f"/Users/{uid}", patch_body(
        {"op": "replace", "path": f"{ACME}:employeeKey", "value": "K-5"},
        {"op": "replace", "path": f"{ACME}:clearance", "value": 4}))
    assert status == 200, body
    assert body[ACME] == {"employeeKey": "K-5", "clearance": 4}
    status, got, _ = await scim(acme, "GET", f"/Users/{uid}")
    assert got[ACME]["employeeKey"] == "K-5"


async def test_immutable_sub_attribute(acme):
    created = await create_user(acme, "ned", {"badge": {"code": "N-1", "issuer": "HQ"}})
    uid = created["id"]
    status, body, _ = await scim(acme, "PATCH", f"/Users/{uid}", patch_body(
        {"op": "replace", "path": f"{ACME}:badge.code", "value": "N-2"}))
    assert_scim_error(status, body, 400, "mutability")
    status, body, _ = await scim(acme, "PUT", f"/Users/{uid}", {
        "userName": "ned", ACME: {"badge": {"code": "n-1", "issuer": "HQ"}}})
    assert_scim_error(status, body, 400, "mutability")
    status, body, _ = await scim(acme, "PATCH", f"/Users/{uid}", patch_body(
        {"op": "replace", "path": f"{ACME}:badge", "value": {"code": "N-3", "issuer": "HQ"}}))
    assert_scim_error(status, body, 400, "mutability")
    # same code, other issuer: fine, by PATCH and by PUT
    status, body, _ = await scim(acme, "PATCH", f"/Users/{uid}", patch_body(
        {"op": "replace", "path": f"{ACME}:badge", "value": {"code": "N-1", "issuer": "Lab"}}))
    assert status == 200, body
    assert body[ACME]["badge"] == {"code": "N-1", "issuer": "Lab"}
    status, body, _ = await scim(acme, "PUT", f"/Users/{uid}", {
        "userName": "ned", ACME: {"badge": {"code": "N-1", "issuer": "Depot"}}})
    assert status == 200, body
    assert body[ACME]["badge"] == {"code": "N-1", "issuer": "Depot"}


async def test_immutable_sub_attribute_may_be_set_once(acme):
    created = await create_user(acme, "oli", {"badge": {"issuer": "HQ"}})
    status, body, _ = await scim(acme, "PATCH", f"/Users/{created['id']}", patch_body(
        {"op": "add", "path": f"{ACME}:badge.code", "value": "O-1"}))
    assert status == 200, body
    assert body[ACME]["badge"] == {"code": "O-1", "issuer": "HQ"}


# uniqueness ---------------------------------------------------------------------------------
async def test_unique_attribute_on_create(acme):
    await create_user(acme, "pam", {"badgeNumber": "B-500"})
    for value in ("B-500", "b-500"):  # caseExact false: the same value
        status, body, _ = await scim(acme, "POST", "/Users",
                                     {"userName": f"pam-{value}", ACME: {"badgeNumber": value}})
        assert_scim_error(status, body, 409, "uniqueness")
        assert "badgeNumber" in body["detail"]
    # the refused users were not created
    assert await names(acme, 'userName sw "pam-"') == []
    status, body, _ = await scim(acme, "POST", "/Users",
                                 {"userName": "pam2", f"{ACME}:badgeNumber": "B-501"})
    assert status == 201, body


async def test_unique_attribute_on_put_and_patch(acme):
    await create_user(acme, "quinn", {"badgeNumber": "B-600"})
    other = await create_user(acme, "rae", {"badgeNumber": "B-601"})
    uid = other["id"]
    status, body, _ = await scim(acme, "PATCH", f"/Users/{uid}", patch_body(
        {"op": "replace", "path": f"{ACME}:badgeNumber", "value": "b-600"}))
    assert_scim_error(status, body, 409, "uniqueness")
    status, body, _ = await scim(acme, "PUT", f"/Users/{uid}",
                                 {"userName": "rae", ACME: {"badgeNumber": "B-600"}})
    assert_scim_error(status, body, 409, "uniqueness")
    status, got, _ = await scim(acme, "GET", f"/Users/{uid}")
    assert got[ACME]["badgeNumber"] == "B-601"
    assert got["meta"]["version"] == 'W/"1"'
    # keeping one's own value is no clash; a value freed by another user can be taken
    status, body, _ = await scim(acme, "PUT", f"/Users/{uid}",
                                 {"userName": "rae", ACME: {"badgeNumber": "B-601",
                                                            "clearance": 1}})
    assert status == 200, body
    status, body, _ = await scim(acme, "PATCH", f"/Users/{uid}", patch_body(
        {"op": "replace", "path": f"{ACME}:badgeNumber", "value": "B-602"}))
    assert status == 200, body
    quinn = (await scim(acme, "GET", by_name("quinn")))[1]
    qid = quinn["Resources"][0]["id"]
    status, body, _ = await scim(acme, "PATCH", f"/Users/{qid}", patch_body(
        {"op": "replace", "path": f"{ACME}:badgeNumber", "value": "B-601"}))
    assert status == 200, body


async def test_unique_value_is_free_again_after_delete(acme):
    first = await create_user(acme, "sam", {"badgeNumber": "B-700"})
    status, _, _ = await scim(acme, "DELETE", f"/Users/{first['id']}")
    assert status == 204
    await create_user(acme, "sam2", {"badgeNumber": "B-700"})


# the group extension ------------------------------------------------------------------------
async def test_group_extension_round_trip_and_filter(acme):
    status, g1, _ = await scim(acme, "POST", "/Groups", {
        "schemas": [CORE_GROUP, ACME_GROUP], "displayName": "eng",
        ACME_GROUP: {"costCode": "CC-10", "groupKey": "G1"}})
    assert status == 201, g1
    assert g1["schemas"] == [CORE_GROUP, ACME_GROUP]
    assert g1[ACME_GROUP] == {"costCode": "CC-10", "groupKey": "G1"}
    status, g2, _ = await scim(acme, "POST", "/Groups", {
        "displayName": "ops", f"{ACME_GROUP}:costCode": "CC-20"})
    assert status == 201, g2
    assert g2[ACME_GROUP] == {"costCode": "CC-20"}
    status, g3, _ = await scim(acme, "POST", "/Groups", {"displayName": "hr"})
    assert status == 201, g3
    assert g3["schemas"] == [CORE_GROUP]
    status, got, _ = await scim(acme, "GET", f"/Groups/{g1['id']}")
    assert got[ACME_GROUP] == {"costCode": "CC-10", "groupKey": "G1"}

    async def groups(flt: str) -> list[str]:
        status, body, _ = await scim(acme, "GET", f"/Groups?filter={q(flt)}")
        assert status == 200, body
        return sorted(r["displayName"] for r in body["Resources"])

    assert await groups(f'{ACME_GROUP}:costCode eq "cc-10"') == ["eng"]
    assert await groups('costCode sw "CC"') == ["eng", "ops"]
    assert await groups(f"{ACME_GROUP}:costCode pr") == ["eng", "ops"]
    status, body, _ = await scim(acme, "GET", f"/Groups?filter={q(ACME + ':clearance gt 1')}")
    assert_scim_error(status, body, 400, "invalidFilter")  # a User schema, not a Group one

    # PATCH (204), then the new value is there and found
    status, _, resp = await scim(acme, "PATCH", f"/Groups/{g2['id']}", patch_body(
        {"op": "replace", "path": f"{ACME_GROUP}:costCode", "value": "CC-30"}))
    assert status == 204
    status, got, _ = await scim(acme, "GET", f"/Groups/{g2['id']}")
    assert got[ACME_GROUP] == {"costCode": "CC-30"}
    assert await groups(f'{ACME_GROUP}:costCode eq "CC-30"') == ["ops"]
    assert await groups(f'{ACME_GROUP}:costCode eq "CC-20"') == []
    # PUT
    status, body, _ = await scim(acme, "PUT", f"/Groups/{g3['id']}", {
        "displayName": "hr", ACME_GROUP: {"costCode": "CC-40"}})
    assert status == 200, body
    assert body[ACME_GROUP] == {"costCode": "CC-40"}
    assert ACME_GROUP in body["schemas"]
    # the user extension is not the group's
    status, body, _ = await scim(acme, "POST", "/Groups", {
        "displayName": "bad", ACME: {"clearance": 1}})
    assert_scim_error(status, body, 400, "invalidSyntax")
    status, body, _ = await scim(acme, "POST", "/Groups", {
        "displayName": "bad", ACME_GROUP: {"costCode": 12}})
    assert_scim_error(status, body, 400, "invalidValue")


async def test_group_extension_immutable_attribute(acme):
    status, g, _ = await scim(acme, "POST", "/Groups", {
        "displayName": "fin", ACME_GROUP: {"groupKey": "G-1", "costCode": "A"}})
    assert status == 201, g
    status, body, _ = await scim(acme, "PATCH", f"/Groups/{g['id']}", patch_body(
        {"op": "replace", "path": f"{ACME_GROUP}:groupKey", "value": "G-2"}))
    assert_scim_error(status, body, 400, "mutability")
    status, body, _ = await scim(acme, "PUT", f"/Groups/{g['id']}", {
        "displayName": "fin", ACME_GROUP: {"groupKey": "G-2", "costCode": "A"}})
    assert_scim_error(status, body, 400, "mutability")
    status, got, _ = await scim(acme, "GET", f"/Groups/{g['id']}")
    assert got[ACME_GROUP] == {"groupKey": "G-1", "costCode": "A"}
    status, body, _ = await scim(acme, "PUT", f"/Groups/{g['id']}", {
        "displayName": "fin", ACME_GROUP: {"groupKey": "G-1", "costCode": "B"}})
    assert status == 200, body
    assert body[ACME_GROUP] == {"groupKey": "G-1", "costCode": "B"}
