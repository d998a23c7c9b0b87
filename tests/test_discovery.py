"""SCIM 2.0 discovery (RFC 7644 §4): ServiceProviderConfig, ResourceTypes, Schemas.

They describe the server, hold no data, and answer without credentials. The
backend does not matter to them, so these tests run on SQLite only.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import quote

import pytest
from conftest import ADMIN, ADMIN_CLIENT, FAST_PASSWORDS, assert_scim_error, scim
from scim2_models import Context, ResourceType, Schema, ServiceProviderConfig

from gateway.app import create_app
from gateway.config import ClientConfig, StoreConfig
from gateway.settings import load

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
WSO2 = "urn:scim:wso2:schema"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
MUTABILITY = {"readOnly", "readWrite", "immutable", "writeOnly"}
RETURNED = {"always", "never", "default", "request"}
UNIQUENESS = {"none", "server", "global"}
TYPES = {"string", "boolean", "decimal", "integer", "dateTime", "binary", "reference",
         "complex"}


@pytest.fixture
async def discovery_gateway(aiohttp_client, tmp_path, admin_env):
    async def make(**overrides):
        cfg = load(None, environ={})
        cfg = replace(cfg, passwords=FAST_PASSWORDS,
                      stores={"PRIMARY": StoreConfig(
                          "PRIMARY", f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")},
                      clients=(ClientConfig(ADMIN_CLIENT[0], ("*",), secret=ADMIN_CLIENT[1]),),
                      **overrides)
        return await aiohttp_client(create_app(cfg))

    return make


@pytest.fixture
async def client(discovery_gateway):
    return await discovery_gateway()


async def get(client, path, auth=None):
    status, body, resp = await scim(client, "GET", path, auth=auth)
    return status, body, resp


def by_name(attributes: list[dict]) -> dict[str, dict]:
    return {a["name"]: a for a in attributes}


def walk(attributes: list[dict], prefix: str = ""):
    for a in attributes:
        yield prefix + a["name"], a
        yield from walk(a.get("subAttributes", []), prefix + a["name"] + ".")


# --- ServiceProviderConfig ---------------------------------------------------------------


async def test_service_provider_config(client):
    status, body, resp = await get(client, "/ServiceProviderConfig")
    assert status == 200, body
    assert resp.content_type == "application/scim+json"
    assert body["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]
    assert body["patch"] == {"supported": True}
    assert body["bulk"] == {"supported": True, "maxOperations": 1000, "maxPayloadSize": 8388608}
    assert body["filter"]["supported"] is True
    assert body["filter"]["maxResults"] == 1000
    assert body["sort"]["supported"] is True
    assert body["etag"]["supported"] is True
    assert body["changePassword"]["supported"] is True
    schemes = {s["type"]: s for s in body["authenticationSchemes"]}
    assert set(schemes) == {"httpbasic", "oauthbearertoken"}
    for scheme in schemes.values():
        assert scheme["name"] and scheme["description"]
    assert body["meta"]["resourceType"] == "ServiceProviderConfig"
    assert body["meta"]["location"].endswith("/scim2/ServiceProviderConfig")
    # a well-formed RFC 7643 §5 document
    ServiceProviderConfig.model_validate(body, scim_ctx=Context.RESOURCE_QUERY_RESPONSE)


async def test_service_provider_config_follows_the_configuration(discovery_gateway):
    client = await discovery_gateway(max_results=50, default_count=10,
                                     base_url="https://idm.example.test/")
    status, body, _ = await get(client, "/ServiceProviderConfig")
    assert status == 200, body
    assert body["filter"]["maxResults"] == 50
    assert body["meta"]["location"] == "https://idm.example.test/scim2/ServiceProviderConfig"


async def test_discovery_answers_with_credentials_too(client):
    for path in ("/ServiceProviderConfig", "/ResourceTypes", "/Schemas"):
        status, body, _ = await get(client, path, auth=ADMIN)
        assert status == 200, (path, body)


async def test_discovery_is_read_only(client):
    status, body, _ = await scim(client, "POST", "/ServiceProviderConfig", {"patch": {}})
    assert_scim_error(status, body, 405)
    status, body, _ = await scim(client, "DELETE", "/Schemas/" + CORE_USER)
    assert_scim_error(status, body, 405)
    # without credentials, a write to them is refused before anything else
    status, body, _ = await scim(client, "POST", "/ResourceTypes", {"x": 1}, auth=None)
    assert status in (401, 405)
    assert_scim_error(status, body, status)


# --- ResourceTypes -----------------------------------------------------------------------


async def test_resource_types(client):
    status, body, _ = await get(client, "/ResourceTypes")
    assert status == 200, body
    assert body["schemas"] == [LIST_RESPONSE]
    assert body["totalResults"] == 2
    types = {r["name"]: r for r in body["Resources"]}
    assert set(types) == {"User", "Group"}

    user = types["User"]
    assert user["id"] == "User"
    assert user["endpoint"] == "/Users"
    assert user["schema"] == CORE_USER
    extensions = {e["schema"]: e["required"] for e in user["schemaExtensions"]}
    assert extensions == {ENTERPRISE: False, WSO2: False}
    assert user["meta"]["resourceType"] == "ResourceType"
    assert user["meta"]["location"].endswith("/scim2/ResourceTypes/User")

    group = types["Group"]
    assert group["endpoint"] == "/Groups"
    assert group["schema"] == CORE_GROUP
    assert group.get("schemaExtensions", []) == []
    for r in body["Resources"]:
        ResourceType.model_validate(r, scim_ctx=Context.RESOURCE_QUERY_RESPONSE)


async def test_one_resource_type(client):
    status, body, _ = await get(client, "/ResourceTypes/User")
    assert status == 200, body
    assert body["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"]
    assert body["name"] == "User"
    assert {e["schema"] for e in body["schemaExtensions"]} == {ENTERPRISE, WSO2}
    status, body, _ = await get(client, "/ResourceTypes/Group")
    assert status == 200, body
    assert body["endpoint"] == "/Groups"


async def test_unknown_resource_type_is_404(client):
    status, body, _ = await get(client, "/ResourceTypes/Printer")
    assert_scim_error(status, body, 404)


async def test_every_schema_a_resource_type_names_is_served(client):
    _, types, _ = await get(client, "/ResourceTypes")
    for rtype in types["Resources"]:
        for urn in [rtype["schema"], *(e["schema"] for e in rtype["schemaExtensions"])]:
            status, body, _ = await get(client, "/Schemas/" + quote(urn, safe=":"))
            assert status == 200, (urn, body)
            assert body["id"] == urn


# --- Schemas -------------------------------------------------------------------------------


async def test_schemas_list(client):
    status, body, _ = await get(client, "/Schemas")
    assert status == 200, body
    assert body["schemas"] == [LIST_RESPONSE]
    ids = [s["id"] for s in body["Resources"]]
    assert set(ids) == {CORE_USER, CORE_GROUP, ENTERPRISE, WSO2}
    assert body["totalResults"] == len(ids) == 4
    for schema in body["Resources"]:
        assert schema["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:Schema"]
        assert schema["name"]
        assert schema["attributes"]
        assert schema["meta"]["resourceType"] == "Schema"
        assert schema["meta"]["location"].endswith("/scim2/Schemas/" + schema["id"])
        Schema.model_validate(schema, scim_ctx=Context.RESOURCE_QUERY_RESPONSE)


async def test_every_attribute_is_fully_described(client):
    _, body, _ = await get(client, "/Schemas")
    for schema in body["Resources"]:
        for path, a in walk(schema["attributes"]):
            where = f"{schema['id']}:{path}"
            assert a["type"] in TYPES, where
            assert isinstance(a["multiValued"], bool), where
            assert isinstance(a["required"], bool), where
            assert a["mutability"] in MUTABILITY, where
            assert a["returned"] in RETURNED, where
            assert a.get("description"), where
            if a["type"] in ("string", "reference", "binary"):
                assert isinstance(a["caseExact"], bool), where
                assert a["uniqueness"] in UNIQUENESS, where
            if a["type"] == "complex":
                assert a.get("subAttributes"), where
            if a["type"] == "reference":
                assert a.get("referenceTypes"), where


async def test_core_user_schema(client):
    status, body, _ = await get(client, "/Schemas/" + CORE_USER)
    assert status == 200, body
    assert body["id"] == CORE_USER
    assert body["name"] == "User"
    attrs = by_name(body["attributes"])

    user_name = attrs["userName"]
    assert user_name["required"] is True
    assert user_name["uniqueness"] == "server"
    assert user_name["caseExact"] is False
    assert user_name["mutability"] == "readWrite"

    password = attrs["password"]
    assert password["returned"] == "never"
    assert password["mutability"] == "writeOnly"

    groups = attrs["groups"]
    assert groups["mutability"] == "readOnly"
    assert groups["multiValued"] is True
    assert {"value", "display", "type", "$ref"} <= set(by_name(groups["subAttributes"]))

    emails = attrs["emails"]
    assert emails["type"] == "complex" and emails["multiValued"] is True
    email_subs = by_name(emails["subAttributes"])
    assert {"value", "type", "primary", "display"} <= set(email_subs)
    assert email_subs["primary"]["type"] == "boolean"
    assert set(email_subs["type"]["canonicalValues"]) >= {"work", "home"}

    assert attrs["active"]["type"] == "boolean"
    assert attrs["name"]["type"] == "complex"
    assert {"givenName", "familyName", "formatted"} <= set(by_name(attrs["name"]["subAttributes"]))
    for name in ("displayName", "phoneNumbers", "addresses", "roles", "entitlements",
                 "x509Certificates", "title", "locale"):
        assert name in attrs, name


async def test_core_user_schema_describes_id(client):
    """``id`` is returned always, read-only, unique to the server (RFC 7643 §3.1)."""
    status, body, _ = await get(client, "/Schemas/" + CORE_USER)
    assert status == 200, body
    attrs = by_name(body["attributes"])
    assert "id" in attrs, sorted(attrs)
    assert attrs["id"]["returned"] == "always"
    assert attrs["id"]["mutability"] == "readOnly"
    assert attrs["id"]["uniqueness"] == "server"


async def test_group_schema(client):
    status, body, _ = await get(client, "/Schemas/" + CORE_GROUP)
    assert status == 200, body
    attrs = by_name(body["attributes"])
    assert attrs["displayName"]["required"] is True
    members = attrs["members"]
    assert members["multiValued"] is True
    assert members["type"] == "complex"
    subs = by_name(members["subAttributes"])
    assert subs["value"]["mutability"] == "immutable"
    assert set(subs["type"]["canonicalValues"]) == {"User", "Group"}


async def test_enterprise_schema(client):
    status, body, _ = await get(client, "/Schemas/" + ENTERPRISE)
    assert status == 200, body
    assert body["name"] == "EnterpriseUser"
    attrs = by_name(body["attributes"])
    assert {"employeeNumber", "costCenter", "organization", "division", "department",
            "manager"} == set(attrs)
    manager = attrs["manager"]
    assert manager["type"] == "complex"
    subs = by_name(manager["subAttributes"])
    assert {"value", "$ref", "displayName"} <= set(subs)
    assert subs["displayName"]["mutability"] == "readOnly"


async def test_wso2_schema(client):
    status, body, _ = await get(client, "/Schemas/" + WSO2)
    assert status == 200, body
    attrs = by_name(body["attributes"])
    assert attrs["accountLocked"]["type"] == "boolean"
    assert attrs["failedLoginAttempts"]["type"] == "integer"


async def test_schema_lookup_ignores_case(client):
    status, body, _ = await get(client, "/Schemas/" + CORE_USER.upper())
    assert status == 200, body
    assert body["id"] == CORE_USER


@pytest.mark.parametrize("urn", ["urn:ietf:params:scim:schemas:core:2.0:Printer",
                                 "nonsense", CORE_USER + "x"])
async def test_unknown_schema_is_404(client, urn):
    status, body, _ = await get(client, "/Schemas/" + urn)
    assert_scim_error(status, body, 404)
    assert body["detail"]
