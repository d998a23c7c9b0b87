"""Behind a reverse proxy, and TLS without one, through the real ``gateway serve``.

``[server] trusted_proxies``: from a trusted peer (the test, on 127.0.0.1), ``Forwarded``
and ``X-Forwarded-*`` give the client's address (the access log, the audit trail, the
login throttle) and the scheme and host of the URLs the gateway writes (SCIM
``meta.location``, the SOAP address of ``?wsdl``); from a peer that is not trusted they
change nothing. ``cert_file``/``key_file``: HTTPS with a certificate made here, plain HTTP
refused. Wrong settings are configuration errors that name the key."""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import ssl
import time
import urllib.error
import urllib.request
from ipaddress import ip_address, ip_network
from pathlib import Path

import pytest
from conftest import ADMIN_USER, basic
from multidict import CIMultiDict
from test_cli import Server, clean_env, http, run, sqlite_url, write_config

from gateway.forwarded import client_of, forwarded_hops, parse_address, x_forwarded_hops

ADMIN_ENV = {"GATEWAY_ADMIN_USER": ADMIN_USER[0], "GATEWAY_ADMIN_PASSWORD": ADMIN_USER[1]}
AUTH = basic(*ADMIN_USER)
V1 = "/services/RemoteUserStoreManagerService"
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --- the rules, without a server ------------------------------------------------------------

NETS = [ip_network("127.0.0.1/32"), ip_network("10.0.0.0/8")]
PEER = ip_address("127.0.0.1")


def test_the_client_is_the_first_untrusted_hop_from_the_right():
    hops = forwarded_hops('for=192.0.2.60;proto=https;host=idm.example.com, for=10.1.1.1')
    client = client_of(PEER, hops, NETS)
    assert (client.address, client.scheme, client.host) == (
        "192.0.2.60", "https", "idm.example.com")
    # a client cannot hide behind an address it writes itself: the walk stops at the
    # first untrusted entry from the right
    hops = x_forwarded_hops(CIMultiDict({"X-Forwarded-For": "10.0.0.5, 198.51.100.9, 10.2.2.2"}))
    assert client_of(PEER, hops, NETS).address == "198.51.100.9"


@pytest.mark.parametrize(("header", "address", "scheme", "host"), [
    ('for="[2001:db8::1]:4711";proto=https', "2001:db8::1", "https", None),
    ("for=_hidden;proto=https;host=a.example", "127.0.0.1", "https", "a.example"),
    ("for=unknown", "127.0.0.1", None, None),
    ('For="192.0.2.1:80";Proto=HTTPS;Host="b.example:8443"', "192.0.2.1", "https",
     "b.example:8443"),
    ("for=192.0.2.1;proto=gopher;host=bad/host", "192.0.2.1", None, None),
])
def test_forwarded_values(header, address, scheme, host):
    client = client_of(PEER, forwarded_hops(header), NETS)
    assert (client.address, client.scheme, client.host) == (address, scheme, host)


def test_x_forwarded_port_and_mapped_addresses():
    hops = x_forwarded_hops(CIMultiDict({"X-Forwarded-For": "203.0.113.9",
                                         "X-Forwarded-Proto": "https",
                                         "X-Forwarded-Host": "idm.example.com",
                                         "X-Forwarded-Port": "8443"}))
    client = client_of(PEER, hops, NETS)
    assert (client.address, client.scheme, client.host) == (
        "203.0.113.9", "https", "idm.example.com:8443")
    assert parse_address("::ffff:10.0.0.1") == ip_address("10.0.0.1")
    assert parse_address("192.0.2.1:443") == ip_address("192.0.2.1")
    assert forwarded_hops("not a forwarded header") is None


# --- through the real server ---------------------------------------------------------------


def call(port: int, path: str, headers: dict, method: str = "GET", body: dict | None = None,
         raw: bool = False):
    data = json.dumps(body).encode() if body is not None else None
    headers = {**headers, **({"Content-Type": "application/scim+json"} if data else {})}
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers,
                                 method=method)
    try:
        with _HTTP.open(req, timeout=20) as resp:
            text = resp.read()
            return resp.status, text if raw else json.loads(text)
    except urllib.error.HTTPError as exc:
        text = exc.read()
        return exc.code, text if raw else (json.loads(text) if text else None)


def proxied_server(tmp_path: Path, trusted: str, label: str) -> Server:
    cfg = write_config(tmp_path, {"PRIMARY": sqlite_url(tmp_path / f"{label}.db")}, f"""
[server]
trusted_proxies = {trusted}

[logging]
format = "json"

[security]
address_burst = 2
address_per_minute = 1
account_burst = 100
""", name=f"{label}.toml")
    return Server(tmp_path, ["--config", str(cfg)], clean_env(**ADMIN_ENV), label)


def admin_ready(server: Server) -> None:
    """Wait until the bootstrap administrator (made once the server listens) may list users."""
    deadline = time.monotonic() + 60
    while http(server.port, "/scim2/Users?count=1", AUTH)[0] != 200:
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.1)


def access_lines(server: Server) -> list[dict]:
    lines = []
    for line in server.err.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("logger") == "gateway.access":
                lines.append(record)
    return lines


def throttle(port: int, headers: dict) -> None:
    """Fail logins (each under a name of its own) with ``headers`` until the address they
    come from is throttled (429); [security] address_burst is 2."""
    for i in range(10):
        status = call(port, "/scim2/Users", {**basic(f"a{i}", "x"), **headers})[0]
        if status == 429:
            return
        assert status == 401, status
    raise AssertionError("never throttled")


XFF = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https",
       "X-Forwarded-Host": "idm.example.com"}
FORWARDED = {"Forwarded": 'for=198.51.100.4;proto=https;host="idm.example.org:8443"'}


def test_proxy_headers_from_a_trusted_peer(tmp_path):
    with proxied_server(tmp_path, '["127.0.0.1/32"]', "trusted") as server:
        admin_ready(server)
        port = server.port
        status, body = call(port, "/scim2/Users", {**AUTH, **XFF}, "POST", {"userName": "xff"})
        assert status == 201, body
        assert body["meta"]["location"] == f"https://idm.example.com/scim2/Users/{body['id']}"
        status, body = call(port, "/scim2/Users", {**AUTH, **FORWARDED}, "POST",
                            {"userName": "fwd"})
        assert status == 201, body
        assert body["meta"]["location"].startswith("https://idm.example.org:8443/scim2/Users/")
        # without the headers: the request's own
        status, body = call(port, "/scim2/Users", AUTH, "POST", {"userName": "plain"})
        assert body["meta"]["location"].startswith(f"http://127.0.0.1:{port}/scim2/Users/")

        # the SOAP address in ?wsdl
        status, wsdl = call(port, V1 + "?wsdl", XFF, raw=True)
        assert status == 200
        assert b'location="https://idm.example.com/services/' in wsdl
        assert b"127.0.0.1" not in wsdl

        # the audit trail has the client's address
        status, page = call(port, "/admin/audit?operation=CreateUser", AUTH)
        assert status == 200, page
        by_target = {e["target"]: e["address"] for e in page["events"]}
        assert by_target["xff"] == "203.0.113.7"
        assert by_target["fwd"] == "198.51.100.4"
        assert by_target["plain"] == "127.0.0.1"

        # the login throttle counts the client's address, not the proxy's
        throttle(port, XFF)
        other = {**XFF, "X-Forwarded-For": "203.0.113.8"}
        assert call(port, "/scim2/Users", {**basic("b1", "x"), **other})[0] == 401

    remotes = {(r["path"], r["remote"]) for r in access_lines(server)}
    assert ("/scim2/Users", "203.0.113.7") in remotes
    assert ("/scim2/Users", "198.51.100.4") in remotes
    assert (V1, "203.0.113.7") in remotes
    assert ("/scim2/Users", "203.0.113.8") in remotes


def test_proxy_headers_from_an_untrusted_peer_change_nothing(tmp_path):
    with proxied_server(tmp_path, '["10.9.9.9/32"]', "untrusted") as server:
        admin_ready(server)
        port = server.port
        mine = f"http://127.0.0.1:{port}"
        for headers, name in ((XFF, "xff"), (FORWARDED, "fwd")):
            status, body = call(port, "/scim2/Users", {**AUTH, **headers}, "POST",
                                {"userName": name})
            assert status == 201, body
            assert body["meta"]["location"].startswith(f"{mine}/scim2/Users/")
        status, wsdl = call(port, V1 + "?wsdl", XFF, raw=True)
        assert status == 200
        assert f'location="{mine}/services/'.encode() in wsdl
        assert b"idm.example.com" not in wsdl
        status, page = call(port, "/admin/audit?operation=CreateUser", AUTH)
        assert {e["target"]: e["address"] for e in page["events"]
                if e["target"] in ("xff", "fwd")} == {"xff": "127.0.0.1", "fwd": "127.0.0.1"}
        # a client cannot escape the throttle by naming another address
        throttle(port, XFF)
        other = {**XFF, "X-Forwarded-For": "203.0.113.8"}
        assert call(port, "/scim2/Users", {**basic("b1", "x"), **other})[0] == 429
    assert {r["remote"] for r in access_lines(server)} == {"127.0.0.1"}


# --- TLS --------------------------------------------------------------------------------------


def self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class TlsServer(Server):
    context: ssl.SSLContext

    def _wait_up(self) -> None:
        from gateway_process import wait_listening

        wait_listening(self.proc, self.out, self.workers, self.output)

    def https(self, path: str, auth: dict | None = None, method: str = "GET",
              body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {**(auth or {}), **({"Content-Type": "application/scim+json"} if data else {})}
        req = urllib.request.Request(f"https://127.0.0.1:{self.port}{path}", data=data,
                                     headers=headers, method=method)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=self.context))
        with opener.open(req, timeout=20) as resp:
            return resp.status, json.loads(resp.read())


def test_tls_serves_https_and_refuses_plain_http(tmp_path):
    certs = tmp_path / "tls"
    certs.mkdir()
    cert, _key = self_signed(certs)
    cfg = write_config(tmp_path, {"PRIMARY": sqlite_url(tmp_path / "gw.db")}, """
[server]
cert_file = "tls/cert.pem"
key_file = "tls/key.pem"
""")
    server = TlsServer(tmp_path, ["--config", str(cfg)], clean_env(**ADMIN_ENV), "tls")
    server.context = ssl.create_default_context(cafile=str(cert))
    with server:
        deadline = time.monotonic() + 60
        while True:  # the bootstrap administrator is made once the server listens
            try:
                if server.https("/scim2/Users?count=1", AUTH)[0] == 200:
                    break
            except urllib.error.HTTPError:
                pass
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.1)
        assert re.search(rf"listening on https://127\.0\.0\.1:{server.port}", server.output())
        status, body = server.https("/health")
        assert status == 200 and body["status"] == "up"
        status, body = server.https("/scim2/Users", AUTH, "POST", {"userName": "tls"})
        assert status == 201, body
        assert body["meta"]["location"].startswith(f"https://127.0.0.1:{server.port}/")
        with server.context.wrap_socket(
                __import__("socket").create_connection(("127.0.0.1", server.port), 10),
                server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
        # plain HTTP on the same port gets no answer
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            http(server.port, "/health")


# --- configuration errors -------------------------------------------------------------------


@pytest.mark.parametrize(("server_toml", "names"), [
    ('trusted_proxies = ["10.0.0.300/8"]', "server.trusted_proxies: '10.0.0.300/8'"),
    ('trusted_proxies = ["10.1.2.3/8"]', "server.trusted_proxies: '10.1.2.3/8'"),
    ('trusted_proxies = "not, cidrs"', "server.trusted_proxies: 'not'"),
    ("trusted_proxies = [1]", "server.trusted_proxies: must be a list"),
    ('cert_file = "cert.pem"\nkey_file = "missing.pem"', "server.key_file:"),
    ('cert_file = "cert.pem"', "server.key_file: missing (server.cert_file is set"),
    ('key_file = "key.pem"', "server.cert_file: missing"),
    ('cert_file = "key.pem"\nkey_file = "key.pem"', "server.cert_file, server.key_file: not a "
                                                    "PEM certificate"),
    ("shutdown_grace_seconds = -1", "server.shutdown_grace_seconds: must be >= 0"),
])
def test_config_errors_name_the_key(tmp_path, server_toml, names):
    self_signed(tmp_path)
    cfg = write_config(tmp_path, {"PRIMARY": sqlite_url(tmp_path / "gw.db")},
                       f"[server]\n{server_toml}\n")
    for command in (["config", "check"], ["serve", "--port", "1"]):
        result = run([*command, "--config", str(cfg)], tmp_path)
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"configuration error: {cfg}: {names}" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "gw.db").exists()


def test_trusted_proxies_from_the_environment(tmp_path):
    cfg = write_config(tmp_path, {"PRIMARY": sqlite_url(tmp_path / "gw.db")})
    env = clean_env(GATEWAY__SERVER__TRUSTED_PROXIES="127.0.0.1/32, 10.0.0.0/8")
    result = run(["config", "check", "--config", str(cfg)], tmp_path, env)
    assert result.returncode == 0, result.stdout + result.stderr
    env = clean_env(GATEWAY__SERVER__TRUSTED_PROXIES="10.0.0.0/33")
    result = run(["config", "check", "--config", str(cfg)], tmp_path, env)
    assert result.returncode == 2
    assert result.stderr.startswith("configuration error: GATEWAY__SERVER__TRUSTED_PROXIES: "
                                    "server.trusted_proxies: '10.0.0.0/33'"), result.stderr
