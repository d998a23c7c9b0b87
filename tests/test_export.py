"""``gateway export`` through the real CLI: SCIM 2.0 JSON Lines, no secrets, re-importable
by ``gateway import`` (round trip), progress only on a terminal."""

from __future__ import annotations

import json
import os
import pty
import subprocess

from conftest import ADMIN_USER, basic, scim
from test_cli import CLI_TIMEOUT, GATEWAY, clean_env, no_traceback, run, write_config

from gateway.app import create_app
from gateway.settings import load

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ACME = "urn:example:params:scim:schemas:extension:acme:2.0:User"

EXTENSIONS_TOML = f'''
[[extensions]]
id = "{ACME}"
name = "AcmeUser"
resource = "User"

[[extensions.attributes]]
name = "badgeNumber"
type = "string"
uniqueness = "server"

[[extensions.attributes]]
name = "clearance"
type = "integer"
'''

USERS = [
    {"schemas": [CORE, ENTERPRISE, ACME], "userName": f"exp{i:02d}",
     "password": f"secret-pw-{i}", "name": {"givenName": f"Given{i}", "familyName": "Ex"},
     "emails": [{"value": f"exp{i}@example.test", "type": "work", "primary": True}],
     ENTERPRISE: {"employeeNumber": str(1000 + i), "department": "R&D"},
     ACME: {"badgeNumber": f"B-{i}", "clearance": i % 3}}
    for i in range(1, 26)
]


def _same(user: dict) -> str:
    """What must come back: the name, the given name, the emails, both extensions."""
    return json.dumps([user["userName"], user["name"]["givenName"],
                       [e["value"] for e in user["emails"]], user[ENTERPRISE], user[ACME]],
                      sort_keys=True)


async def _users(cfg, aiohttp_client) -> dict[str, dict]:
    client = await aiohttp_client(create_app(load(cfg, environ={})))
    status, body, _ = await scim(client, "GET", '/Users?filter=userName sw "exp"&count=1000',
                                 auth=basic(*ADMIN_USER))
    assert status == 200, body
    return {u["userName"]: u for u in body["Resources"]}


async def test_export_then_import_round_trip(tmp_path, store_url, aiohttp_client, admin_env):
    url = await store_url("source")
    source = write_config(tmp_path, {"PRIMARY": url}, EXTENSIONS_TOML, name="source.toml")
    data = tmp_path / "users.jsonl"
    data.write_text("".join(json.dumps(u) + "\n" for u in USERS))
    result = run(["import", str(data), "--config", str(source), "--batch", "10"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # a group with members, through the SCIM API
    client = await aiohttp_client(create_app(load(source, environ={})))
    before = await _users(source, aiohttp_client)
    status, body, _ = await scim(client, "POST", "/Groups", {
        "displayName": "exporters",
        "members": [{"value": before["exp01"]["id"]}, {"value": before["exp02"]["id"]}]},
        auth=basic(*ADMIN_USER))
    assert status == 201, body

    # a small [limits] max_results: many cursor pages
    small = write_config(tmp_path, {"PRIMARY": url}, EXTENSIONS_TOML
                         + "\n[limits]\nmax_results = 7\ndefault_count = 7\n",
                         name="small.toml")
    out = tmp_path / "export.jsonl"
    result = run(["export", "--config", str(small), "--groups", "--output", str(out)],
                 tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    no_traceback(result)
    assert "\r" not in result.stderr  # no terminal: no progress line
    # the 25, the administrator; the group and the administrator's role
    assert "exported 26 users and 2 groups" in result.stderr
    text = out.read_text()
    assert "password" not in text.lower() and "$argon2" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    users = [r for r in lines if CORE in r["schemas"]]
    groups = [r for r in lines if CORE_GROUP in r["schemas"]]
    assert len(users) == 26 and len(groups) == 2
    assert len({u["id"] for u in users}) == 26  # each once, across the pages
    group = next(g for g in groups if g["displayName"] == "exporters")
    assert sorted(m["display"] for m in group["members"]) == ["exp01", "exp02"]
    exported = {u["userName"]: u for u in users}
    assert exported["exp03"]["meta"]["resourceType"] == "User"
    assert {_same(exported[u["userName"]]) for u in USERS} == {_same(u) for u in USERS}

    # into a fresh database: the same users come back (the group lines are skipped)
    fresh = write_config(tmp_path, {"PRIMARY": await store_url("fresh")}, EXTENSIONS_TOML,
                         name="fresh.toml")
    no_admin = [json.dumps(u) + "\n" for u in users if u["userName"] != ADMIN_USER[0]]
    again = tmp_path / "again.jsonl"
    again.write_text("".join(no_admin) + json.dumps(group) + "\n")
    result = run(["import", str(again), "--config", str(fresh)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "imported 25 users" in result.stdout
    assert "skipped 1 group lines" in result.stdout
    after = await _users(fresh, aiohttp_client)
    assert {_same(u) for u in after.values()} == {_same(u) for u in USERS}
    assert {u["id"] for u in after.values()}.isdisjoint(u["id"] for u in users)  # new ids

    # to standard output, one domain, no groups
    result = run(["export", "--config", str(fresh), "--domain", "PRIMARY"], tmp_path)
    assert result.returncode == 0, result.stderr
    names = sorted(json.loads(line)["userName"] for line in result.stdout.splitlines())
    assert names[:25] == sorted(u["userName"] for u in USERS)
    assert "password" not in result.stdout.lower()


def test_export_unknown_domain_fails(tmp_path):
    cfg = write_config(tmp_path, {"PRIMARY": f"sqlite:///{tmp_path / 'p.db'}"})
    result = run(["export", "--config", str(cfg), "--domain", "NOPE", "-o",
                  str(tmp_path / "x.jsonl")], tmp_path)
    assert result.returncode != 0
    no_traceback(result)
    assert "NOPE" in result.stderr
    assert not (tmp_path / "x.jsonl").exists()
    assert not (tmp_path / "x.jsonl.partial").exists()


def _on_a_terminal(args, cwd) -> tuple[int, str]:
    """Run the CLI with standard error on a pseudo-terminal; its exit status and what it
    wrote there."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([*GATEWAY, *args], cwd=cwd, env=clean_env(),
                                stdout=subprocess.DEVNULL, stderr=slave,
                                stdin=subprocess.DEVNULL)
    finally:
        os.close(slave)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
    return proc.wait(timeout=CLI_TIMEOUT), b"".join(chunks).decode(errors="replace")


def test_progress_only_on_a_terminal(tmp_path):
    cfg = write_config(tmp_path, {"PRIMARY": f"sqlite:///{tmp_path / 'p.db'}"})
    data = tmp_path / "users.jsonl"
    data.write_text("".join(json.dumps({"userName": f"t{i}"}) + "\n" for i in range(30)))
    code, err = _on_a_terminal(["import", str(data), "--config", str(cfg), "--batch", "10"],
                               tmp_path)
    assert code == 0, err
    assert "\rimported: 30 users" in err
    assert "/s" in err
    code, err = _on_a_terminal(["export", "--config", str(cfg), "-o",
                                str(tmp_path / "out.jsonl")], tmp_path)
    assert code == 0, err
    assert "\rexported: 30 users" in err
    assert "exported 30 users" in err
    # the same without a terminal: the summary only
    result = run(["export", "--config", str(cfg), "-o", str(tmp_path / "out2.jsonl")],
                 tmp_path)
    assert result.returncode == 0 and "\r" not in result.stderr
    assert "exported 30 users" in result.stderr
