"""PHP's SoapClient and Perl's SOAP::Lite, built at run time from the gateway's ``?wsdl``.

Legacy applications written in PHP and Perl talk to WSO2 through these two: they read
the WSDL when they start and call its operations by name. Each test runs the real
interpreter (Debian ``php-cli`` + ``php-soap``, ``libsoap-lite-perl``; ``.ci/run``
installs them, and a missing one fails the test, it is never skipped) as a child
process against a gateway listening on 127.0.0.1, with a script that calls
``isExistingUser``, ``addUser`` (with claims) and ``getUserClaimValues`` and an
operation that faults, and prints what it got as one JSON line. What the scripts
print, and what the gateway then holds, is asserted here.

PHP's SoapClient takes the first SOAP port of the WSDL whatever version it is told
to speak, so with ``SOAP_1_2`` it posts SOAP 1.2 (``application/soap+xml``) to the
``…HttpsSoap11Endpoint`` address, as it does with WSO2: every endpoint takes both
versions, told apart by the Content-Type (``docs/soap.md``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ADMIN_CLIENT, scim
from test_soap_security import V2 as SOAP_V2
from test_soap_security import Raw, call, op, returns

TIMEOUT = 60  # seconds a script may take (it starts an interpreter, reads the WSDL, calls)
CLAIM = "http://wso2.org/claims/"
V1 = "RemoteUserStoreManagerService"
V2 = "RemoteUserStoreManagerServiceV2"

PHP_CLIENT = r"""<?php
// argv: WSDL URL, API client, its secret, SOAP version (1.1 or 1.2), a user name, and
// "add" (create it with addUser) or "read" (it exists)
[, $wsdl, $user, $secret, $version, $name, $add] = $argv;
ini_set('default_socket_timeout', '10');
$client = new SoapClient($wsdl, [
    'login' => $user, 'password' => $secret,
    'soap_version' => $version === '1.2' ? SOAP_1_2 : SOAP_1_1,
    'cache_wsdl' => WSDL_CACHE_NONE, 'trace' => true, 'exceptions' => true,
    'connection_timeout' => 10, 'features' => SOAP_SINGLE_ELEMENT_ARRAYS,
]);
$claim = 'http://wso2.org/claims/';
$out = [];
$out['root_exists'] = $client->isExistingUser(['userName' => 'root'])->return;
$added = false;  // not called
if ($add === 'add') {
    $added = $client->addUser([
        'userName' => $name, 'credential' => 'Php-password-1', 'roleList' => [],
        'claims' => [['claimURI' => $claim . 'givenname', 'value' => 'Pee Aitch'],
                     ['claimURI' => $claim . 'emailaddress', 'value' => "$name@example.com"]],
        'profileName' => 'default', 'requirePasswordChange' => false,
    ]);
    $headers = $client->__getLastRequestHeaders();
    $out['request_line'] = strtok($headers, "\r\n");
    preg_match('/^Content-Type:\s*([^;\r\n]+)/mi', $headers, $m);
    $out['content_type'] = $m[1] ?? null;
}
$out['added'] = $added === null || $added === false ? $added : $added->return;
// V1's addUser is one-way: PHP sends it and does not wait for the answer, so the user
// is there when the gateway has done it (bounded wait: 50 x 0.1 s)
for ($i = 0; $i < 50; $i++) {
    $out['new_exists'] = $client->isExistingUser(['userName' => $name])->return;
    if ($out['new_exists'] || $added !== null) break;
    usleep(100000);
}
$claims = [];
foreach ($client->getUserClaimValues(['userName' => $name, 'profileName' => 'default'])->return
         as $dto) {
    $claims[$dto->claimUri] = $dto->value;
}
$out['claims'] = $claims;
try {
    $client->getUserClaimValues(['userName' => 'ghost', 'profileName' => 'default']);
    $out['fault'] = null;
} catch (SoapFault $fault) {
    $out['fault'] = $fault->faultstring;
    $out['faultcode'] = $fault->faultcode;
}
echo json_encode($out), "\n";
"""


PERL_CLIENT = r"""# A SOAP::Lite client whose stub is generated at run time from the gateway's ?wsdl
# (SOAP::Lite->service). argv: WSDL URL, API client, its secret, the user to create.
use strict;
use warnings;
use SOAP::Lite;
use JSON::PP;
my ($wsdl, $user, $secret, $name) = @ARGV;
sub SOAP::Transport::HTTP::Client::get_basic_credentials { return ($user, $secret); }
my $claim = 'http://wso2.org/claims/';
my $svc = SOAP::Lite->service($wsdl);
my $last_fault;
$svc->on_fault(sub {
    my ($soap, $res) = @_;
    $last_fault = ref $res ? { code => $res->faultcode, string => $res->faultstring }
                           : { transport => $soap->transport->status };
    return;
});
my %out;
$out{root_exists} = '' . $svc->isExistingUser('root');
# SOAP::Lite's stubs send no complex values: the claims go with setUserClaimValue
my $added = $svc->addUser($name, 'Perl-password-1', undef, undef, 'default', 'false');
$out{added} = defined $added ? "$added" : undef;
$out{add_fault} = $last_fault;
$out{new_exists} = '' . $svc->isExistingUser($name);
$svc->setUserClaimValue($name, $claim . 'givenname', 'Pearl', 'default');
$svc->setUserClaimValue($name, $claim . 'emailaddress', "$name\@example.com", 'default');
my %claims = map { $_->{claimUri} => $_->{value} } $svc->getUserClaimValues($name, 'default');
$out{claims} = \%claims;
$out{given} = '' . $svc->getUserClaimValue($name, $claim . 'givenname', 'default');
$last_fault = undef;
my $ghost = $svc->getUserClaimValue('ghost', $claim . 'givenname', 'default');
$out{fault} = $last_fault;
print JSON::PP->new->canonical->encode(\%out), "\n";
"""


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` not found on PATH: .ci/run must install it "
                    f"(apt-get install -y --no-install-recommends {package})")
    return path


def _php() -> str:
    php = _tool("php", "php-cli php-soap")
    modules = subprocess.run([php, "-m"], capture_output=True, text=True, timeout=30).stdout
    if "soap" not in modules.split():
        pytest.fail("PHP has no soap extension: .ci/run must install php-soap")
    return php


def _perl() -> str:
    perl = _tool("perl", "perl")
    found = subprocess.run([perl, "-MSOAP::Lite", "-MJSON::PP", "-e", "1"],
                           capture_output=True, text=True, timeout=30)
    if found.returncode != 0:
        pytest.fail("Perl has no SOAP::Lite: .ci/run must install libsoap-lite-perl\n"
                    + found.stderr)
    return perl


async def run_script(*cmd: str, cwd: Path) -> dict:
    """Run a client script (bounded in time); its one JSON line."""
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    shown = f"$ {' '.join(cmd)}\nexit {proc.returncode}\n{out.decode()}\n{err.decode()}"
    assert proc.returncode == 0, shown
    lines = out.decode().strip().splitlines()
    assert lines, shown
    return json.loads(lines[-1])


def base_url(gateway) -> str:
    return f"http://{gateway.server.host}:{gateway.server.port}/services/"


async def given_name(gateway, name: str) -> str | None:
    status, body, _ = await scim(gateway, "GET", f'/Users?filter=userName eq "{name}"')
    assert status == 200, body
    assert body["totalResults"] == 1, body
    return body["Resources"][0].get("name", {}).get("givenName")


async def add_with_claims(gateway, name: str) -> None:
    """The user, created over the wire (raw SOAP 1.1 to V2, which answers when it is done)."""
    claims = [Raw(f"<xsd:claimURI>{CLAIM}{k}</xsd:claimURI><xsd:value>{v}</xsd:value>")
              for k, v in (("givenname", "Pee Aitch"), ("emailaddress", f"{name}@example.com"))]
    status, text, _ = await call(gateway, op("addUser", ("userName", name),
                                             ("credential", "Php-password-1"),
                                             ("claims", claims)), path=SOAP_V2)
    assert status == 200 and returns(text) == ["true"], text


CASES = [(service, version) for service in (V1, V2) for version in ("1.1", "1.2")]


@pytest.mark.parametrize(("service", "version"), CASES,
                         ids=[f"{'V2' if s == V2 else 'V1'}-soap{v}" for s, v in CASES])
async def test_php_soapclient_from_our_wsdl(gateway, tmp_path, service, version):
    """isExistingUser, getUserClaimValues and a fault through both versions of both
    services; addUser through V2. (V1's addUser is one-way: PHP sends it and closes the
    connection without reading the 202, and a request whose connection is gone before
    aiohttp dispatches it is dropped unhandled; for V1 the user is created beforehand.)"""
    php = _php()
    script = tmp_path / "client.php"
    script.write_text(PHP_CLIENT)
    name = f"php{version.replace('.', '')}"
    mode = "add" if service == V2 else "read"
    if mode == "read":
        await add_with_claims(gateway, name)
    got = await run_script(php, str(script), f"{base_url(gateway)}{service}?wsdl",
                           *ADMIN_CLIENT, version, name, mode, cwd=tmp_path)
    assert got["root_exists"] is True, got
    if mode == "add":
        assert got["added"] is True, got
        # PHP took the first port (SOAP 1.1's) and spoke its own version there
        port = f"{service}HttpsSoap11Endpoint"
        assert got["request_line"] == f"POST /services/{service}.{port} HTTP/1.1", got
        assert got["content_type"] == ("application/soap+xml" if version == "1.2"
                                       else "text/xml"), got
    assert got["new_exists"] is True, got
    assert got["claims"][CLAIM + "givenname"] == "Pee Aitch", got
    assert got["claims"][CLAIM + "emailaddress"] == f"{name}@example.com", got
    assert got["fault"] == "30007 - UserNotFound: User ghost does not exist in: PRIMARY", got
    assert got["faultcode"].split(":")[-1] == ("Sender" if version == "1.2" else "Client"), got
    # the user is there, with its claims, for every protocol
    assert await given_name(gateway, name) == "Pee Aitch"


@pytest.mark.parametrize("service", [V1, V2], ids=["V1", "V2"])
async def test_perl_soap_lite_stub_from_our_wsdl(gateway, tmp_path, service):
    """SOAP::Lite->service(?wsdl): its generated stub calls isExistingUser, addUser (its
    stubs send lists they are not given as one nil element: no roles, no claims),
    setUserClaimValue, getUserClaimValues, getUserClaimValue, and sees WSO2's fault."""
    perl = _perl()
    script = tmp_path / "client.pl"
    script.write_text(PERL_CLIENT)
    name = "perl2" if service == V2 else "perl1"
    got = await run_script(perl, str(script), f"{base_url(gateway)}{service}?wsdl",
                           *ADMIN_CLIENT, name, cwd=tmp_path)
    assert got["root_exists"] == "true", got
    # V1's addUser is one-way (HTTP 202, no answer: undef); V2's answers true
    assert got["added"] == ("true" if service == V2 else None), got
    assert got["add_fault"] is None, got
    assert got["new_exists"] == "true", got
    assert got["claims"][CLAIM + "givenname"] == "Pearl", got
    assert got["claims"][CLAIM + "emailaddress"] == f"{name}@example.com", got
    assert got["claims"][CLAIM + "username"] == name, got
    assert got["given"] == "Pearl", got
    assert got["fault"] == {"code": "soapenv:Client", "string": "30007 - UserNotFound: User "
                            "ghost does not exist in: PRIMARY"}, got
    assert await given_name(gateway, name) == "Pearl"
