"""The WSO2 claim dialect (``http://wso2.org/claims/...``) for users.

The table follows WSO2 Identity Server's local claims and their SCIM 2.0
mappings (its ``claim-config.xml``, IS 5.10 to 7), so that a claim set over
the SOAP user-admin service is the same attribute a SCIM client sees. Claims
held by the server (id, timestamps, roles) are read-only here.

Where WSO2 has no SCIM 2.0 mapping (telephone, im, the address parts,
country, fullname, otherphone) the claim gets the attribute its SCIM 1.1
mapping names. WSO2's own slips are not copied: its ``gender`` maps to the
enterprise manager, ``stateorprovince`` to the division and
``addresses.locality`` to the home address; here they are what their names
say.
"""

from __future__ import annotations

from ..dialect import Dialect
from ..schema import ENTERPRISE_USER, USER, WSO2_USER

CLAIM = "http://wso2.org/claims/"
E = ENTERPRISE_USER
W = WSO2_USER

WSO2_CLAIMS: dict[str, str] = {
    # identity
    CLAIM + "username": "userName",
    CLAIM + "userid": "id",
    CLAIM + "externalid": "externalId",
    CLAIM + "displayName": "displayName",
    CLAIM + "nickname": "nickName",
    CLAIM + "userType": "userType",
    CLAIM + "title": "title",
    CLAIM + "url": "profileUrl",
    CLAIM + "preferredLanguage": "preferredLanguage",
    CLAIM + "local": "locale",
    CLAIM + "timeZone": "timezone",
    CLAIM + "active": "active",
    # name
    CLAIM + "givenname": "name.givenName",
    CLAIM + "lastname": "name.familyName",
    CLAIM + "fullname": "name.formatted",
    CLAIM + "formattedName": "name.formatted",
    CLAIM + "middleName": "name.middleName",
    CLAIM + "honorificPrefix": "name.honorificPrefix",
    CLAIM + "honorificSuffix": "name.honorificSuffix",
    # e-mail and phones (the untyped claims are the primary values)
    CLAIM + "emailaddress": "emails[primary eq true].value",
    CLAIM + "emails.work": 'emails[type eq "work"].value',
    CLAIM + "emails.home": 'emails[type eq "home"].value',
    CLAIM + "emails.other": 'emails[type eq "other"].value',
    CLAIM + "telephone": 'phoneNumbers[type eq "work"].value',
    CLAIM + "mobile": 'phoneNumbers[type eq "mobile"].value',
    CLAIM + "phoneNumbers.work": 'phoneNumbers[type eq "work"].value',
    CLAIM + "phoneNumbers.home": 'phoneNumbers[type eq "home"].value',
    CLAIM + "phoneNumbers.fax": 'phoneNumbers[type eq "fax"].value',
    CLAIM + "phoneNumbers.pager": 'phoneNumbers[type eq "pager"].value',
    CLAIM + "phoneNumbers.other": 'phoneNumbers[type eq "other"].value',
    CLAIM + "otherphone": f"{W}:otherPhone",
    CLAIM + "im": 'ims[type eq "skype"].value',
    CLAIM + "skype": 'ims[type eq "skype"].value',
    CLAIM + "gtalk": 'ims[type eq "gtalk"].value',
    CLAIM + "photourl": 'photos[type eq "photo"].value',
    CLAIM + "thumbnail": 'photos[type eq "thumbnail"].value',
    # address
    CLAIM + "addresses.formatted": 'addresses[type eq "work"].formatted',
    CLAIM + "streetaddress": 'addresses[type eq "work"].streetAddress',
    CLAIM + "locality": 'addresses[type eq "work"].locality',
    CLAIM + "region": 'addresses[type eq "work"].region',
    CLAIM + "postalcode": 'addresses[type eq "work"].postalCode',
    CLAIM + "country": f"{W}:country",
    CLAIM + "stateorprovince": f"{W}:stateOrProvince",
    # enterprise
    CLAIM + "organization": f"{E}:organization",
    CLAIM + "department": f"{E}:department",
    CLAIM + "division": f"{E}:division",
    CLAIM + "costCenter": f"{E}:costCenter",
    CLAIM + "employeeNumber": f"{E}:employeeNumber",
    CLAIM + "extendedExternalId": f"{E}:employeeNumber",
    CLAIM + "manager": f"{E}:manager.value",
    CLAIM + "extendedDisplayName": f"{E}:manager.displayName",
    # account state (WSO2 identity claims)
    CLAIM + "identity/accountLocked": f"{W}:accountLocked",
    CLAIM + "identity/accountDisabled": f"{W}:accountDisabled",
    CLAIM + "identity/failedLoginAttempts": f"{W}:failedLoginAttempts",
    CLAIM + "identity/unlockTime": f"{W}:unlockTime",
    CLAIM + "identity/lastLoginTime": f"{W}:lastLoginTime",
    CLAIM + "identity/lastPasswordUpdateTime": f"{W}:lastPasswordUpdateTime",
    CLAIM + "identity/askPassword": f"{W}:askPassword",
    CLAIM + "identity/emailVerified": f"{W}:emailVerified",
    CLAIM + "identity/phoneVerified": f"{W}:phoneVerified",
    CLAIM + "dob": f"{W}:dateOfBirth",
    CLAIM + "gender": f"{W}:gender",
    CLAIM + "userSource": f"{W}:userSource",
    # server-held
    CLAIM + "created": "meta.created",
    CLAIM + "modified": "meta.lastModified",
    CLAIM + "resourceType": "meta.resourceType",
    CLAIM + "location": "meta.location",
}

READ_ONLY = frozenset({
    CLAIM + "userid", CLAIM + "created", CLAIM + "modified", CLAIM + "resourceType",
    CLAIM + "location",
})

# The role claims are no attribute: they are the user's roles (its groups), outside the
# table. They are read, never written (the role operations change them), and a search by
# one lists a role's members; the SOAP adapter answers them from memberships, in one place
# (gateway/soap/claims.py).
ROLE_CLAIM = CLAIM + "role"
GROUPS_CLAIM = CLAIM + "groups"
ROLE_CLAIMS = frozenset({ROLE_CLAIM, GROUPS_CLAIM})

WSO2 = Dialect("wso2", USER, WSO2_CLAIMS, READ_ONLY)
