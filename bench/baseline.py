"""The bare-aiohttp baseline the gateway is compared with: no auth, no store, no model.

``GET /scim2/Users/{id}`` returns a fixed SCIM user; ``POST /scim2/Users`` reads
the body and returns 201 with a fixed one; ``PATCH /scim2/Users/{id}`` reads the
body and returns 200 with the fixed user (as the gateway answers a user's PATCH);
``GET /scim2/Users`` returns a ListResponse of copies of the fixed user: one when
the query has a ``filter`` (the lookups of one user), else ``count`` (default
and at most 100, the gateway's page) from ``startIndex``. ``POST
/services/{operation}`` (``isExistingUser``, ``getUserClaimValues``,
``authenticate``) reads the body and returns a constant SOAP 1.1 response
envelope shaped and sized like the gateway's answer to that operation
(``bench/run_soap.py``); ``POST /services/RemoteUserStoreManagerService``, the
gateway's own path, answers the operation named by the ``SOAPAction`` header
(``"urn:isExistingUser"``), so a load generator can send the same requests to
both (``bench/run_wrk.py``). Same framework,
same port handling and one worker like the gateway under test, so the ratio
shows what the gateway itself costs on top of aiohttp.

    python bench/baseline.py --port 8299
"""

from __future__ import annotations

import argparse
import functools
import json

from aiohttp import web

USER = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "id": "2819c223-7f76-453a-919d-413861904646",
    "externalId": "ext-0000042",
    "userName": "user0000042",
    "name": {"givenName": "Given42", "familyName": "Family42"},
    "emails": [{"value": "user0000042@example.com", "type": "work", "primary": True}],
    "active": True,
    "groups": [],
    "meta": {
        "resourceType": "User",
        "created": "2024-01-01T00:00:00Z",
        "lastModified": "2024-01-01T00:00:00Z",
        "version": 'W/"1"',
        "location": "http://127.0.0.1/scim2/Users/2819c223-7f76-453a-919d-413861904646",
    },
}
BODY = json.dumps(USER, separators=(",", ":")).encode()
SCIM_JSON = "application/scim+json"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PAGE = 100  # the gateway's default and largest page
TOTAL = 10_000  # what the list answers say there is (the benchmarks' usual N)
SERVICE = "RemoteUserStoreManagerService"


@functools.lru_cache(maxsize=8)
def list_body(count: int, start: int = 1, total: int = TOTAL) -> bytes:
    """A ListResponse of ``count`` copies of the fixed user, as the gateway writes one."""
    return json.dumps({"schemas": [LIST_RESPONSE], "totalResults": total,
                       "startIndex": start, "itemsPerPage": count,
                       "Resources": [USER] * count}, separators=(",", ":")).encode()

# SOAP 1.1 replies as the gateway writes them (every namespace declared once on the
# envelope, ``dao:`` fields in each ClaimDTO), for the user above with a mobile number; the
# claims are those getUserClaimValues returns for a user loaded by bench/run_soap.py (the
# users of generate_users.py have no mobile: 11 claims, about 5% less)
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSO2_TNS = "http://service.ws.um.carbon.wso2.org"
WSO2_DAO = "http://dao.service.ws.um.carbon.wso2.org/xsd"
WSO2_CLAIM = "http://wso2.org/claims/"
NAMESPACES = (("soapenv", SOAP11_ENV), ("tns", WSO2_TNS),
              ("core", "http://core.user.carbon.wso2.org/xsd"),
              ("api", "http://api.user.carbon.wso2.org/xsd"),
              ("tenant", "http://tenant.core.user.carbon.wso2.org/xsd"),
              ("dao", WSO2_DAO), ("common", "http://common.mgt.user.carbon.wso2.org/xsd"))
CLAIMS = (
    ("username", USER["userName"]), ("userid", USER["id"]), ("externalid", USER["externalId"]),
    ("active", "true"), ("givenname", "Given42"), ("lastname", "Family42"),
    ("emailaddress", "user0000042@example.com"), ("emails.work", "user0000042@example.com"),
    ("mobile", "+1 555 0000042"), ("created", "2024-01-01T00:00:00.000000Z"),
    ("modified", "2024-01-01T00:00:00.000000Z"), ("resourceType", "User"),
)


def soap11(body: str) -> bytes:
    xmlns = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in NAMESPACES)
    return (f"<?xml version='1.0' encoding='UTF-8'?><soapenv:Envelope {xmlns}>"
            f"<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>").encode()


def _claim_dto(name: str, value: str) -> str:
    fields = (("claimUri", WSO2_CLAIM + name), ("dialectURI", WSO2_CLAIM.rstrip("/")),
              ("displayOrder", "0"), ("displayTag", name), ("required", "false"),
              ("supportedByDefault", "true"), ("value", value))
    return "<tns:return>" + "".join(f"<dao:{k}>{v}</dao:{k}>" for k, v in fields) \
        + "</tns:return>"


SOAP_REPLIES = {
    "isExistingUser": soap11("<tns:isExistingUserResponse><tns:return>true</tns:return>"
                             "</tns:isExistingUserResponse>"),
    "authenticate": soap11("<tns:authenticateResponse><tns:return>true</tns:return>"
                           "</tns:authenticateResponse>"),
    "getUserClaimValues": soap11("<tns:getUserClaimValuesResponse>"
                                 + "".join(_claim_dto(n, v) for n, v in CLAIMS)
                                 + "</tns:getUserClaimValuesResponse>"),
}


async def get_user(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type=SCIM_JSON, headers={"ETag": 'W/"1"'})


async def create_user(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=BODY, status=201, content_type=SCIM_JSON,
                        headers={"ETag": 'W/"1"', "Location": USER["meta"]["location"]})


async def patch_user(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=BODY, content_type=SCIM_JSON, headers={"ETag": 'W/"2"'})


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


async def list_users(request: web.Request) -> web.Response:
    query = request.query
    if "filter" in query:  # the benchmarks' filters select one user
        return web.Response(body=list_body(1, 1, 1), content_type=SCIM_JSON)
    count = min(max(_int(query.get("count"), PAGE), 0), PAGE)
    start = max(_int(query.get("startIndex"), 1), 1)
    return web.Response(body=list_body(count, start), content_type=SCIM_JSON)


async def soap(request: web.Request) -> web.Response:
    await request.read()
    operation = request.match_info["operation"]
    if operation == SERVICE:  # the gateway's path: the operation is the SOAPAction
        operation = request.headers.get("SOAPAction", "").strip('" ').removeprefix("urn:")
    reply = SOAP_REPLIES.get(operation)
    if reply is None:
        raise web.HTTPNotFound()
    return web.Response(body=reply, content_type="text/xml", charset="utf-8")


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/scim2/Users/{id}", get_user)
    app.router.add_patch("/scim2/Users/{id}", patch_user)
    app.router.add_get("/scim2/Users", list_users)
    app.router.add_post("/scim2/Users", create_user)
    app.router.add_post("/services/{operation}", soap)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="bare aiohttp baseline server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(create_app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
