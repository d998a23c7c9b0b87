"""Logs, as an operator gets them: ``gateway serve`` run as a real process, its standard
error read line by line.

- JSON lines parse, carry time, level, logger, message and the request id, and that id
  is the ``X-Request-Id`` of the reply;
- the access log is on by default (method, path, status, duration, bytes, principal)
  and can be turned off; the level setting is honoured;
- no password, client secret, bearer token or secret query value reaches the log, for
  Basic and bearer calls alike;
- a store that is down is logged once, not with a traceback for every request.

The down store is an LDAP store on a loopback port nothing listens on: every request
for its users fails the same way.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import ADMIN_CLIENT, ADMIN_USER, basic
from gateway_process import clean_env, free_port, wait_listening
from joserfc import jwt
from joserfc.jwk import RSAKey

GATEWAY = [sys.executable, "-m", "gateway.cli"]
WAIT_SECONDS = 15  # for a line to reach the log file; a bound on a hang, not a speed
STOP_SECONDS = 15
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only

ISSUER = "https://idp.example.test/"
AUDIENCE = "gateway-logging-test"
KEY = RSAKey.generate_key(2048, parameters={"kid": "log-1"})
BIND_PASSWORD = "ldap-bind-pw-7"  # noqa: S105 - a test directory's password
USER_PASSWORD = "body-password-3"  # noqa: S105 - set on a user the test creates
QUERY_SECRET = "tok-in-query-5"  # noqa: S105 - sent as a query parameter
FILTER_VALUE = "filter-value-9"
TEXT_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (DEBUG|INFO|WARNING|ERROR|"
                       r"CRITICAL) (\d+) (\S+) \[([^\]]+)\] (.*)$")


def _config(logging_section: str) -> str:
    jwks = json.dumps({"keys": [KEY.as_dict(private=False)]})
    closed = free_port()  # nothing listens there: the directory is down
    return f"""
[passwords]
time_cost = 1
memory_cost_kib = 8
parallelism = 1

[userstores.PRIMARY]
url = "sqlite:///gw.db"

[userstores.CORP]
type = "ldap"
url = "ldap://127.0.0.1:{closed}"
bind_dn = "cn=gateway,dc=example,dc=test"
bind_password = "{BIND_PASSWORD}"
users_base = "ou=people,dc=example,dc=test"
groups_base = "ou=groups,dc=example,dc=test"
timeout_seconds = 2

[[clients]]
name = "{ADMIN_CLIENT[0]}"
secret = "{ADMIN_CLIENT[1]}"
permissions = ["*"]

[[issuers]]
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
jwks = '{jwks}'
scope_permissions = {{ "scim.read" = ["users:list", "users:view"] }}

[outbound]
dispatcher = "inline"

{logging_section}
"""


def _token() -> str:
    now = int(time.time())
    return jwt.encode({"alg": "RS256", "kid": KEY.kid},
                      {"iss": ISSUER, "aud": AUDIENCE, "sub": "svc-1", "iat": now,
                       "exp": now + 300, "scope": "scim.read"}, KEY)


class Served:
    """``gateway serve`` in the background (standard error in a file), always stopped."""

    def __init__(self, tmp_path: Path, config: str, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ()):
        self.tmp = tmp_path
        self.port = free_port()
        self.config = tmp_path / "gateway.toml"
        self.config.write_text(config, encoding="utf-8")
        self.out, self.err = tmp_path / "serve.out", tmp_path / "serve.err"
        self.env = clean_env(**(env or {}))
        self.args = args
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Served:
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [*GATEWAY, "serve", "--config", str(self.config), "--port", str(self.port),
                 *self.args], cwd=self.tmp, env=self.env, stdout=out, stderr=err,
                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            workers = int(self.args[self.args.index("--workers") + 1]) \
                if "--workers" in self.args else 1
            wait_listening(self.proc, self.out, workers, self.output)
            status, _, body = self.call("GET", "/health/live")
            assert status == 200, (body, self.output())
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # the session this test started
            self.proc.wait(timeout=5)

    def output(self) -> str:
        return (self.out.read_text(errors="replace") + self.err.read_text(errors="replace"))

    def log(self) -> list[str]:
        return [line for line in self.err.read_text(errors="replace").splitlines() if line]

    def call(self, method: str, path: str, headers: dict | None = None,
             body: dict | bytes | None = None) -> tuple[int, dict, str]:
        """One request: (status, reply headers, body text); bytes are sent as they are."""
        data = body if isinstance(body, bytes) else (
            json.dumps(body).encode() if body is not None else None)
        headers = dict(headers or {})
        if data is not None and "Content-Type" not in headers:
            headers["Content-Type"] = "application/scim+json"
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     headers=headers, method=method)
        try:
            with _HTTP.open(req, timeout=20) as resp:
                return resp.status, dict(resp.headers), resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read().decode()

    def wait_for(self, found, what: str):
        """Wait (bounded) until ``found(log lines)`` is true; its value."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            value = found(self.log())
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"not in the log after {WAIT_SECONDS} s: {what}\n"
                                     f"{self.output()[-6000:]}")
            time.sleep(0.05)


def _json_lines(lines: list[str]) -> list[dict]:
    docs = []
    for line in lines:
        try:
            doc = json.loads(line)
        except ValueError:
            raise AssertionError(f"a log line that is not JSON: {line!r}") from None
        assert isinstance(doc, dict), line
        docs.append(doc)
    return docs


CORP_FILTER = "/scim2/Users?filter=" + quote(f'userName eq "CORP/{FILTER_VALUE}"')
# PRIMARY's users only (a list of every user would ask CORP too)
PRIMARY_FILTER = "/scim2/Users?filter=" + quote('userName sw "r"')


def _soap_call() -> bytes:
    """isExistingUser("nobody") with the admin client's UsernameToken (PasswordText)."""
    wsse = ("http://docs.oasis-open.org/wss/2004/01/"
            "oasis-200401-wss-wssecurity-secext-1.0.xsd")
    return (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:ser="http://service.ws.um.carbon.wso2.org">'
        f'<soapenv:Header><wsse:Security xmlns:wsse="{wsse}"><wsse:UsernameToken>'
        f"<wsse:Username>{ADMIN_CLIENT[0]}</wsse:Username>"
        f"<wsse:Password>{ADMIN_CLIENT[1]}</wsse:Password>"
        "</wsse:UsernameToken></wsse:Security></soapenv:Header>"
        "<soapenv:Body><ser:isExistingUser><ser:userName>nobody</ser:userName>"
        "</ser:isExistingUser></soapenv:Body></soapenv:Envelope>").encode()


def test_json_log_lines_carry_the_request_id_and_no_secret(tmp_path):
    token = _token()
    with Served(tmp_path, _config('[logging]\nformat = "json"\n')) as gw:
        calls = {}
        # an API client (Basic), with its own request id
        status, headers, body = gw.call("GET", PRIMARY_FILTER + "&count=5",
                                        {**basic(*ADMIN_CLIENT), "X-Request-Id": "trace-42"})
        assert status == 200, body
        assert headers["X-Request-Id"] == "trace-42"
        calls["client"] = "trace-42"
        # a store user (Basic), creating a user with a password; a generated id
        status, headers, body = gw.call("POST", "/scim2/Users", basic(*ADMIN_USER),
                                        {"userName": "pw-user", "password": USER_PASSWORD})
        assert status == 201, body
        calls["user"] = headers["X-Request-Id"]
        # a bearer token, and a secret in the query string
        status, headers, body = gw.call("GET", f"{PRIMARY_FILTER}&access_token={QUERY_SECRET}",
                                        {"Authorization": f"Bearer {token}"})
        assert status == 200, body
        calls["token"] = headers["X-Request-Id"]
        # SOAP, with the client's password in a WS-Security UsernameToken
        status, headers, body = gw.call("POST", "/services/RemoteUserStoreManagerService",
                                        {"Content-Type": "text/xml; charset=utf-8",
                                         "SOAPAction": "urn:isExistingUser"}, _soap_call())
        assert status == 200, body
        calls["soap"] = headers["X-Request-Id"]
        # a wrong password: refused, no principal
        status, headers, _ = gw.call("GET", "/scim2/Users", basic(ADMIN_USER[0], "wrong-pw-1"))
        assert status == 401
        calls["refused"] = headers["X-Request-Id"]
        # the directory of CORP is down: three requests fail the same way
        down = []
        for _ in range(3):
            status, headers, body = gw.call("GET", CORP_FILTER, basic(*ADMIN_CLIENT))
            assert status == 503, body
            down.append(headers["X-Request-Id"])
        assert len(set(calls.values()) | set(down)) == 8, "each request has its own id"

        def access_of(rid):
            return lambda lines: [d for d in _json_lines(lines)
                                  if d["logger"] == "gateway.access" and d["request_id"] == rid]

        for rid in [*calls.values(), *down]:
            gw.wait_for(access_of(rid), f"the access line of request {rid}")
        docs = _json_lines(gw.log())  # every line is one JSON object

    for doc in docs:
        assert {"time", "level", "logger", "message", "request_id"} <= set(doc), doc
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["time"]), doc
    access = {d["request_id"]: d for d in docs if d["logger"] == "gateway.access"}
    first = access["trace-42"]
    assert (first["method"], first["path"], first["query"], first["status"]) == (
        "GET", "/scim2/Users", "filter=***&count=5", 200)
    assert first["level"] == "INFO"
    assert isinstance(first["duration_ms"], int | float) and first["duration_ms"] >= 0
    assert first["bytes"] > 0
    assert first["principal"] == f"client:{ADMIN_CLIENT[0]}"
    assert (access[calls["user"]]["status"], access[calls["user"]]["principal"]) == (
        201, ADMIN_USER[0])
    assert access[calls["token"]]["principal"] == "token:svc-1"
    assert access[calls["soap"]]["principal"] == f"client:{ADMIN_CLIENT[0]}"
    assert access[calls["soap"]]["protocol"] == "soap"
    assert access[calls["token"]]["query"] == "filter=***&access_token=***"
    assert (access[calls["refused"]]["status"], access[calls["refused"]]["principal"]) == (
        401, None)
    assert access[down[0]]["query"] == "filter=***"

    # the lines written while a failing request was served carry its id
    for rid in down:
        errors = [d for d in docs if d["request_id"] == rid and d["logger"] != "gateway.access"]
        assert errors and all(d["level"] in ("WARNING", "ERROR") for d in errors), errors
    # the directory going down is logged once, and its traceback at most once
    store = [d for d in docs if d["logger"] == "gateway.store" and "CORP" in d["message"]]
    assert len(store) == 1, store
    assert store[0]["level"] == "WARNING" and store[0]["request_id"] == down[0]
    assert sum("exception" in d for d in docs) <= 1, [d for d in docs if "exception" in d]

    # no credential, in any form, anywhere in the output
    text = (tmp_path / "serve.err").read_text() + (tmp_path / "serve.out").read_text()
    secrets = [ADMIN_CLIENT[1], ADMIN_USER[1], "wrong-pw-1", USER_PASSWORD, QUERY_SECRET,
               BIND_PASSWORD, FILTER_VALUE, token, token.rsplit(".", 1)[1]]
    secrets += [base64.b64encode(f"{n}:{p}".encode()).decode()
                for n, p in (ADMIN_CLIENT, ADMIN_USER)]
    assert [s for s in secrets if s in text] == []


def test_text_lines_and_the_level_setting(tmp_path):
    # level from the environment, as any setting; the access log stays on (its own switch)
    with Served(tmp_path, _config('[logging]\nformat = "text"\n'),
                env={"GATEWAY__LOGGING__LEVEL": "warning"}) as gw:
        status, headers, _ = gw.call("GET", CORP_FILTER, basic(*ADMIN_CLIENT))
        assert status == 503
        rid = headers["X-Request-Id"]
        # a path that would forge a line of its own, were it logged decoded
        status, _, _ = gw.call("GET", "/nowhere/x%0D%0A2001-01-01T00:00:00.000Z%20ERROR"
                               "%201%20forged%20%5B-%5D%20line", basic(*ADMIN_CLIENT))
        assert status == 404
        status, headers, _ = gw.call("GET", PRIMARY_FILTER, basic(*ADMIN_CLIENT))
        assert status == 200
        ok = headers["X-Request-Id"]
        lines = gw.wait_for(lambda lines: lines if any(f"[{ok}]" in line for line in lines)
                            else None, "the access line of the last request")
    parsed = [m.groups() for m in map(TEXT_LINE.match, lines) if m]
    assert parsed, lines
    assert not any(line.startswith("2001-01-01") for line in lines), lines
    assert any("/nowhere/x%0D%0A2001-01-01" in g[5] for g in parsed), lines
    levels = {(level, logger) for _, level, _, logger, _, _ in parsed}
    assert ("WARNING", "gateway.store") in levels and ("ERROR", "gateway.scim") in levels
    # nothing at INFO but the access log (start-up says things at INFO)
    assert {logger for level, logger in levels if level == "INFO"} == {"gateway.access"}
    assert {lvl for lvl, _ in levels} <= {"INFO", "WARNING", "ERROR", "CRITICAL"}
    mine = [g for g in parsed if g[4] == rid]
    assert {g[3] for g in mine} >= {"gateway.store", "gateway.scim", "gateway.access"}, mine
    access = next(g for g in parsed if g[4] == ok and g[3] == "gateway.access")
    assert re.fullmatch(r"GET /scim2/Users\?filter=\*\*\* 200 [\d.]+ms \d+B client:"
                        + ADMIN_CLIENT[0],
                        access[5]), access


def test_the_access_log_can_be_turned_off(tmp_path):
    with Served(tmp_path, _config('[logging]\nformat = "json"\n'),
                env={"GATEWAY__LOGGING__ACCESS_LOG": "false"}) as gw:
        for _ in range(3):
            status, _, _ = gw.call("GET", PRIMARY_FILTER, basic(*ADMIN_CLIENT))
            assert status == 200
        status, headers, _ = gw.call("GET", CORP_FILTER, basic(*ADMIN_CLIENT))
        assert status == 503
        rid = headers["X-Request-Id"]
        # a header too long for the server: refused, and said at INFO
        status, _, _ = gw.call("GET", "/health/live", {"X-Long": "x" * 20_000})
        assert status == 431
        # the failing requests' own lines come, written while they were served: by then
        # the access lines of the requests before them would have been written
        gw.wait_for(lambda lines: [d for d in _json_lines(lines) if d["request_id"] == rid],
                    "the failing request's lines")
        gw.wait_for(lambda lines: [d for d in _json_lines(lines) if d["level"] == "INFO"],
                    "the refusal's INFO line")
        docs = _json_lines(gw.log())
    assert [d for d in docs if d["logger"] == "gateway.access"] == []
    assert any(d["level"] == "INFO" for d in docs), "info lines are still written"


@pytest.mark.parametrize("flag, expected", [("--no-access-log", 0), ("--access-log", 1)])
def test_the_command_line_overrides_the_access_log_setting(tmp_path, flag, expected):
    setting = "true" if expected == 0 else "false"
    with Served(tmp_path, _config(f'[logging]\nformat = "json"\naccess_log = {setting}\n'),
                args=(flag,)) as gw:
        status, headers, _ = gw.call("GET", "/health/live", {"X-Request-Id": "probe-1"})
        assert status == 200 and headers["X-Request-Id"] == "probe-1"
        status, headers, _ = gw.call("GET", CORP_FILTER, basic(*ADMIN_CLIENT))
        rid = headers["X-Request-Id"]
        gw.wait_for(lambda lines: [d for d in _json_lines(lines) if d["request_id"] == rid],
                    "the failing request's lines")
        docs = _json_lines(gw.log())
    probes = [d for d in docs if d["logger"] == "gateway.access" and d["request_id"] == "probe-1"]
    assert len(probes) == expected, docs


def test_a_directory_going_down_and_back_is_logged_once_each_way(tmp_path, ldap_base):
    config = _config('[logging]\nformat = "json"\n')
    config = re.sub(r'(?ms)^\[userstores\.CORP\].*?(?=^\[\[clients\]\])', f"""[userstores.CORP]
type = "ldap"
url = "{ldap_base.url}"
bind_dn = "{ldap_base.bind_dn}"
bind_password = "{ldap_base.password}"
users_base = "{ldap_base.users_dn}"
groups_base = "{ldap_base.groups_dn}"
timeout_seconds = 2

""", config)
    assert ldap_base.url in config
    path = "/scim2/Users?filter=" + quote('userName eq "CORP/nobody"')
    with Served(tmp_path, config) as gw:
        status, _, body = gw.call("GET", path, basic(*ADMIN_CLIENT))
        assert status == 200, body
        ldap_base.server.stop()
        try:
            for _ in range(3):
                status, _, body = gw.call("GET", path, basic(*ADMIN_CLIENT))
                assert status == 503, body
        finally:
            ldap_base.server.start()
        status, _, body = gw.call("GET", path, basic(*ADMIN_CLIENT))
        assert status == 200, body
        gw.wait_for(lambda lines: [d for d in _json_lines(lines)
                                   if "answers again" in d["message"]], "the store is back")
        docs = _json_lines(gw.log())
    store = [(d["level"], d["message"]) for d in docs if d["logger"] == "gateway.store"]
    assert len(store) == 2, store
    assert store[0][0] == "WARNING" and "user store CORP is unavailable" in store[0][1]
    assert store[1] == ("INFO", "user store CORP: the directory answers again")
    assert ldap_base.password not in (tmp_path / "serve.err").read_text()


def test_every_process_logs_in_the_configured_format(tmp_path):
    """With two workers and the dispatcher in a process of its own, every process's
    lines are JSON (the processes `gateway serve` spawns set up their logging first)."""
    config = _config('[logging]\nformat = "json"\n').replace(
        'dispatcher = "inline"', 'dispatcher = "process"')
    config += f"""
[[outbound.connectors]]
name = "downstream"
type = "scim2"
url = "http://127.0.0.1:{free_port()}/scim/v2"
"""
    with Served(tmp_path, config, args=("--workers", "2")) as gw:
        for i in range(6):
            status, _, body = gw.call("GET", PRIMARY_FILTER, {**basic(*ADMIN_CLIENT),
                                                              "X-Request-Id": f"w-{i}"})
            assert status == 200, body

        def complete(lines):
            docs = _json_lines(lines)  # every line so far, whichever process wrote it
            mine = [d for d in docs if str(d["request_id"]).startswith("w-")]
            dispatched = any(d["logger"] == "gateway.outbound" for d in docs)
            return docs if dispatched and len(mine) == 6 else None

        docs = gw.wait_for(complete, "the dispatcher's line and six access lines")
    dispatcher = {d["process"] for d in docs if d["logger"] == "gateway.outbound"}
    workers = {d["process"] for d in docs if d["logger"] == "gateway.access"}
    assert dispatcher and not dispatcher & workers
    assert {d["request_id"] for d in docs if str(d["request_id"]).startswith("w-")} == {
        f"w-{i}" for i in range(6)}
