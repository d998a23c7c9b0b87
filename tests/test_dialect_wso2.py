"""The WSO2 claim dialect reads and writes the same canonical attributes SCIM does."""

import pytest

from gateway.errors import InvalidPath
from gateway.model.dialect import Dialect
from gateway.model.dialects.wso2 import CLAIM, WSO2, WSO2_CLAIMS
from gateway.model.patch import apply_patch
from gateway.model.schema import ENTERPRISE_USER, USER, WSO2_USER

NEEDED = ["username", "givenname", "lastname", "emailaddress", "telephone", "mobile",
          "organization", "title", "nickname", "url", "fullname", "country", "streetaddress",
          "identity/accountLocked", "identity/accountDisabled", "department", "displayName"]


def test_table_covers_the_claims_the_soap_service_needs():
    for name in NEEDED:
        assert WSO2.known(CLAIM + name), name


def test_every_claim_resolves_to_a_canonical_path():
    # building the dialect parses every path; a typo in the table fails here
    d = Dialect("copy", USER, dict(WSO2_CLAIMS))
    assert len(d.table) == len(WSO2_CLAIMS)
    with pytest.raises(InvalidPath):
        Dialect("bad", USER, {"x": "emails[type eq \"work\"].nope"})


def test_claims_written_land_where_scim_reads_them():
    user = {"userName": "alice"}
    claims = {
        CLAIM + "givenname": "Alice",
        CLAIM + "lastname": "Liddell",
        CLAIM + "emailaddress": "alice@example.com",
        CLAIM + "telephone": "+1 555",
        CLAIM + "mobile": "+1 666",
        CLAIM + "organization": "Wonderland",
        CLAIM + "identity/accountLocked": "true",
        CLAIM + "url": "https://example.com/alice",
    }
    out = apply_patch(USER, user, [WSO2.write(k, v) for k, v in claims.items()]).resource
    assert out["name"] == {"givenName": "Alice", "familyName": "Liddell"}
    assert out["emails"] == [{"primary": True, "value": "alice@example.com"}]
    assert {"type": "work", "value": "+1 555"} in out["phoneNumbers"]
    assert {"type": "mobile", "value": "+1 666"} in out["phoneNumbers"]
    assert out[ENTERPRISE_USER] == {"organization": "Wonderland"}
    assert out[WSO2_USER] == {"accountLocked": True}
    assert out["profileUrl"] == "https://example.com/alice"
    read = WSO2.read_all(out)
    for k, v in claims.items():
        assert read[k] == v, k


def test_typed_claims_read_scim_values_and_removal():
    user = {"userName": "bob", "emails": [
        {"value": "bob@work.example", "type": "work", "primary": True},
        {"value": "bob@home.example", "type": "home"},
    ]}
    assert WSO2.read_text(user, CLAIM + "emails.work") == "bob@work.example"
    assert WSO2.read_text(user, CLAIM + "emails.home") == "bob@home.example"
    assert WSO2.read_text(user, CLAIM + "emailaddress") == "bob@work.example"
    assert WSO2.read_text(user, CLAIM + "mobile") is None
    out = apply_patch(USER, user, [WSO2.write(CLAIM + "emails.home", None)]).resource
    assert out["emails"] == [{"value": "bob@work.example", "type": "work", "primary": True}]


def test_claim_names_are_case_insensitive():
    assert WSO2.known("HTTP://WSO2.ORG/CLAIMS/GIVENNAME") == CLAIM + "givenname"
    assert WSO2.known(CLAIM + "nosuchclaim") is None
