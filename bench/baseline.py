"""The bare-aiohttp baseline the gateway is compared with: no auth, no store, no model.

``GET /scim2/Users/{id}`` returns a fixed SCIM user; ``POST /scim2/Users`` reads
the body and returns 201 with a fixed one. ``POST /services/{operation}``
(``isExistingUser``, ``getUserClaimValues``, ``authenticate``) reads the body
and returns a constant SOAP 1.1 response envelope shaped and sized like the
gateway's answer to that operation (``bench/run_soap.py``). Same framework,
same port handling and one worker like the gateway under test, so the ratio
shows what the gateway itself costs on top of aiohttp.

    python bench/baseline.py --port 8299
"""

from __future__ import annotations

import argparse
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

# SOAP 1.1 replies as the gateway writes them (Spyne: a namespace declaration on every
# ClaimDTO field), for the user above with a mobile number; the claims are those
# getUserClaimValues returns for a user loaded by bench/run_soap.py
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSO2_TNS = "http://service.ws.um.carbon.wso2.org"
WSO2_DAO = "http://dao.service.ws.um.carbon.wso2.org/xsd"
WSO2_CLAIM = "http://wso2.org/claims/"
CLAIMS = (
    ("username", USER["userName"]), ("userid", USER["id"]), ("externalid", USER["externalId"]),
    ("active", "true"), ("givenname", "Given42"), ("lastname", "Family42"),
    ("emailaddress", "user0000042@example.com"), ("emails.work", "user0000042@example.com"),
    ("mobile", "+1 555 0000042"), ("created", "2024-01-01T00:00:00.000000Z"),
    ("modified", "2024-01-01T00:00:00.000000Z"), ("resourceType", "User"),
)


def soap11(body: str) -> bytes:
    return (f"<?xml version='1.0' encoding='UTF-8'?>\n<soap11env:Envelope xmlns:soap11env="
            f'"{SOAP11_ENV}" xmlns:tns="{WSO2_TNS}"><soap11env:Body>{body}'
            "</soap11env:Body></soap11env:Envelope>").encode()


def _claim_dto(name: str, value: str) -> str:
    fields = (("claimUri", WSO2_CLAIM + name), ("dialectURI", WSO2_CLAIM.rstrip("/")),
              ("displayOrder", "0"), ("displayTag", name), ("required", "false"),
              ("supportedByDefault", "true"), ("value", value))
    return "<tns:return>" + "".join(f'<ns0:{k} xmlns:ns0="{WSO2_DAO}">{v}</ns0:{k}>'
                                    for k, v in fields) + "</tns:return>"


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


async def soap(request: web.Request) -> web.Response:
    await request.read()
    reply = SOAP_REPLIES.get(request.match_info["operation"])
    if reply is None:
        raise web.HTTPNotFound()
    return web.Response(body=reply, content_type="text/xml", charset="utf-8")


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/scim2/Users/{id}", get_user)
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
