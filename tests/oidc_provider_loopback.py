"""A real OpenID Connect provider on loopback, for the JIT tests: the npm package
``oidc-provider`` (``tests/oidc_provider/``, pinned there with its lock file) run by Node.js.

The tests log in through it the way a browser and an application do: the authorization
request, the login and consent interactions, the code exchanged at the token endpoint (with
PKCE and the client's secret). The ID token that comes back is the one the gateway gets.

Node's packages are installed on first use when ``tests/oidc_provider/node_modules`` is
missing (``npm ci``, from the lock file); CI installs them beforehand with
``npm ci --prefix tests/oidc_provider --no-audit --no-fund``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import selectors
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import aiohttp
from joserfc.jwk import RSAKey

NODE_DIR = Path(__file__).parent / "oidc_provider"
CLIENT = ("gateway-app", "gateway-app-secret")
OTHER_CLIENT = ("other-app", "other-app-secret")
REDIRECT_URI = "http://127.0.0.1:9/callback"
START_TIMEOUT = 30.0
INSTALL_TIMEOUT = 300


def ensure_installed() -> None:
    """``npm ci`` into tests/oidc_provider when its packages are not there yet."""
    if (NODE_DIR / "node_modules" / "oidc-provider" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm (Node.js 20+) is needed for the OIDC provider of the tests")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True,
                   timeout=INSTALL_TIMEOUT, stdout=subprocess.DEVNULL)


def signing_keys(kid: str) -> dict:
    """A private JWKS of one RS256 key named ``kid``."""
    key = RSAKey.generate_key(2048, {"kid": kid, "alg": "RS256", "use": "sig"}, private=True)
    return {"keys": [key.as_dict(private=True)]}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class LoopbackOidcProvider:
    """One ``node server.mjs`` process; ``restart`` brings it back on the same port (and so
    the same issuer and JWKS URL), e.g. with new signing keys."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.issuer = ""
        self.keys: dict = {}
        self._log = None

    # the process ---------------------------------------------------------------------------
    def start(self, keys: dict, port: int = 0, id_token_ttl: int = 600) -> None:
        ensure_installed()
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node (Node.js 20+) is needed for the OIDC provider of the tests")
        self.keys = keys
        path = self.workdir / f"oidc-keys-{secrets.token_hex(4)}.json"
        path.write_text(json.dumps(keys))
        self._log = open(self.workdir / "oidc-provider.log", "ab")  # noqa: SIM115
        env = dict(os.environ, NODE_ENV="test", DEBUG="")
        self.proc = subprocess.Popen(
            [node, str(NODE_DIR / "server.mjs"), "--keys", str(path), "--port", str(port),
             "--id-token-ttl", str(id_token_ttl)],
            cwd=NODE_DIR, stdout=subprocess.PIPE, stderr=self._log, env=env)
        line = self._first_line()
        ready = json.loads(line)
        self.port, self.issuer = ready["port"], ready["issuer"]

    def _first_line(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    self.stop()
                    log = (self.workdir / "oidc-provider.log").read_text(errors="replace")
                    raise RuntimeError(f"the OIDC provider did not start:\n{log[-4000:]}")
                if sel.select(min(left, 0.5)):
                    chunk = os.read(self.proc.stdout.fileno(), 4096)
                    if not chunk:
                        continue
                    buf += chunk
        return buf.split(b"\n", 1)[0].decode()

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self, keys: dict) -> None:
        """The same issuer (same port), new signing keys: a key rotation at the provider."""
        port = self.port
        self.stop()
        for attempt in range(50):  # the port was just freed; bounded retries
            try:
                self.start(keys, port=port)
                return
            except RuntimeError:
                if attempt == 49:
                    raise
                time.sleep(0.1)

    # what the provider publishes ---------------------------------------------------------------
    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/jwks"

    async def discovery(self) -> dict:
        async with aiohttp.ClientSession() as http, http.get(
                f"{self.issuer}/.well-known/openid-configuration") as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def published_jwks(self) -> dict:
        url = (await self.discovery())["jwks_uri"]
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def jwks_requests(self) -> int:
        async with aiohttp.ClientSession() as http, http.get(
                f"{self.issuer}/_test/stats") as resp:
            assert resp.status == 200
            return (await resp.json())["jwks_requests"]

    # accounts and logins -------------------------------------------------------------------------
    async def set_account(self, account_id: str, **claims) -> None:
        """The account's claims from now on (the next token issued carries them)."""
        async with aiohttp.ClientSession() as http, http.put(
                f"{self.issuer}/_test/accounts/{account_id}", json=claims) as resp:
            assert resp.status == 204, await resp.text()

    async def login(self, account_id: str, client: tuple[str, str] = CLIENT,
                    scope: str = "openid profile email groups") -> str:
        """A complete authorization code flow as ``account_id``: returns the ID token."""
        meta = await self.discovery()
        verifier = _b64(secrets.token_bytes(32))
        state, nonce = _b64(secrets.token_bytes(12)), _b64(secrets.token_bytes(12))
        query = urlencode({
            "client_id": client[0], "response_type": "code", "scope": scope,
            "redirect_uri": REDIRECT_URI, "state": state, "nonce": nonce,
            "code_challenge": _b64(hashlib.sha256(verifier.encode()).digest()),
            "code_challenge_method": "S256",
        })
        jar = aiohttp.CookieJar(unsafe=True)  # a browser's cookies, on 127.0.0.1
        timeout = aiohttp.ClientTimeout(total=15)
        async with aiohttp.ClientSession(cookie_jar=jar, timeout=timeout) as http:
            url = f"{meta['authorization_endpoint']}?{query}"
            resp = await http.get(url, allow_redirects=False)
            code = None
            for _ in range(12):  # authorize -> login -> consent -> back: a few hops only
                assert resp.status in (302, 303), (resp.status, await resp.text())
                url = urljoin(url, resp.headers["Location"])
                resp.release()
                if url.startswith(REDIRECT_URI):
                    got = parse_qs(urlsplit(url).query)
                    assert got.get("state") == [state], got
                    assert "code" in got, got
                    code = got["code"][0]
                    break
                if urlsplit(url).path.startswith("/interaction/"):
                    async with http.get(url) as page:
                        assert page.status == 200, await page.text()
                        prompt = (await page.json())["prompt"]["name"]
                    if prompt == "login":
                        resp = await http.post(url + "/login", json={"login": account_id},
                                               allow_redirects=False)
                    elif prompt == "consent":
                        resp = await http.post(url + "/confirm", json={},
                                               allow_redirects=False)
                    else:
                        raise AssertionError(f"unexpected prompt {prompt!r}")
                else:
                    resp = await http.get(url, allow_redirects=False)
            assert code is not None, "the authorization flow did not come back with a code"
            async with http.post(meta["token_endpoint"], data={
                    "grant_type": "authorization_code", "code": code,
                    "redirect_uri": REDIRECT_URI, "code_verifier": verifier},
                    headers={"Authorization": "Basic " + base64.b64encode(
                        f"{client[0]}:{client[1]}".encode()).decode()}) as token:
                body = await token.json()
                assert token.status == 200, body
        assert body.get("token_type", "").lower() in ("bearer", "dpop"), body
        return body["id_token"]
