"""WSO2's coded fault strings, word for word, for the cases the gateway shares with it.

Callers of WSO2's ``RemoteUserStoreManagerService`` look for these strings (or
their code) in the fault, so the SOAP adapter uses WSO2's text where WSO2 has one.
The texts are WSO2's ``UserCoreErrorConstants.ErrorMessages`` (wso2/carbon-kernel,
``core/org.wso2.carbon.user.core/src/main/java/org/wso2/carbon/user/core/constants/
UserCoreErrorConstants.java``, the same in 4.10.x and 4.12.x), including the
words its constants glue on without a space (``UserAlreadyExisting`` +
``Username …``); ``AbstractUserStoreManager`` throws them as ``code + " - " +
String.format(message, args)``, which is :func:`message`.

Names are written as WSO2 writes them: a secondary store's call is passed on with
the name without its domain (``userStore.getDomainFreeName()``), so
``SECONDARY/bob`` is ``bob`` in the text; hybrid roles keep their prefix.
"""

from __future__ import annotations

from ..names import SEPARATOR

CREDENTIAL_NOT_VALID = "30003"  # emitted by gateway.password_policy (its own text)
USER_EXISTS = "30004"
INVALID_CLAIM_URI = "30005"
OLD_CREDENTIAL = "30006"
USER_NOT_FOUND = "30007"
UPDATE_EVERYONE = "30009"
ROLE_EXISTS = "30012"
INTERNAL_ROLE_MISSING = "31303"
EXTERNAL_ROLE_MISSING = "31304"
DELETE_EVERYONE = "31805"
DELETE_MISSING_ROLE = "31806"

TEXTS = {
    CREDENTIAL_NOT_VALID: "Credential is not valid. Credential must be a non null string with "
                          "following format, %s",
    USER_EXISTS: "UserAlreadyExistingUsername %s already exists in the system. Please pick "
                 "another username.",
    INVALID_CLAIM_URI: "Claim URI is invalid, %s",
    OLD_CREDENTIAL: "PasswordInvalid Old credential does not match with the existing "
                    "credentials.",
    USER_NOT_FOUND: "UserNotFound: User %s does not exist in: %s",
    UPDATE_EVERYONE: "Cannot update everyone role",
    ROLE_EXISTS: "RoleExistingRole name: %s exists in the system. Please pick another role "
                 "name.",
    INTERNAL_ROLE_MISSING: "Internal role does not exist : %s",
    EXTERNAL_ROLE_MISSING: "External role does not exist : %s",
    DELETE_EVERYONE: "Cannot delete everyone role",
    DELETE_MISSING_ROLE: "Cannot delete non-existing role",
}


def message(code: str, *args: object) -> str:
    """``"30004 - UserAlreadyExistingUsername bob already exists …"``."""
    return f"{code} - {TEXTS[code] % args}"


def domain_free(name: str) -> str:
    """A name as WSO2's store writes it in a message: without the domain."""
    return name.split(SEPARATOR, 1)[1] if SEPARATOR in name else name
