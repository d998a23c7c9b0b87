"""The bare-aiohttp baseline the gateway is compared with: no auth, no store, no model.

``GET /scim2/Users/{id}`` returns a fixed SCIM user; ``POST /scim2/Users`` reads
the body and returns 201 with a fixed one. Same framework, same port handling
and one worker like the gateway under test, so the ratio shows what the
gateway itself costs on top of aiohttp.

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


async def get_user(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type=SCIM_JSON, headers={"ETag": 'W/"1"'})


async def create_user(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=BODY, status=201, content_type=SCIM_JSON,
                        headers={"ETag": 'W/"1"', "Location": USER["meta"]["location"]})


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/scim2/Users/{id}", get_user)
    app.router.add_post("/scim2/Users", create_user)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="bare aiohttp baseline server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(create_app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
