"""The ``gateway`` command, run as a real process: config check, hash-password, serve, import."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from conftest import ADMIN_USER, assert_scim_error, basic, scim
from gateway_process import wait_listening

from gateway.app import create_app
from gateway.settings import load

GATEWAY = [sys.executable, "-m", "gateway.cli"]
FAST_PASSWORDS_TOML = "[passwords]\ntime_cost = 1\nmemory_cost_kib = 8\nparallelism = 1\n"
CLI_TIMEOUT = 60

# only loopback, never through a proxy
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any gateway setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith("GATEWAY") and k.lower() not in ("http_proxy",
                                                                         "https_proxy")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run(args, cwd: Path, env: dict | None = None, stdin: str | None = None):
    return subprocess.run([*GATEWAY, *args], cwd=cwd, env=env or clean_env(), input=stdin,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def write_config(tmp_path: Path, stores: dict[str, str], extra: str = "",
                 name: str = "gateway.toml") -> Path:
    text = FAST_PASSWORDS_TOML
    for domain, url in stores.items():
        text += f'\n[userstores.{domain}]\nurl = "{url}"\n'
    path = tmp_path / name
    path.write_text(text + extra, encoding="utf-8")
    return path


def http(port: int, path: str, auth: dict | None = None, method: str = "GET",
         body: dict | None = None) -> tuple[int, dict | None]:
    headers = dict(auth or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/scim+json"
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers,
                                 method=method)
    try:
        with _HTTP.open(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw else None


class Server:
    """``gateway serve`` in the background, output in files, always stopped."""

    def __init__(self, tmp_path: Path, args: list[str], env: dict[str, str], label: str):
        self.port = free_port()
        self.out = tmp_path / f"{label}.out"
        self.err = tmp_path / f"{label}.err"
        self.args = ["serve", "--port", str(self.port), *args]
        self.workers = int(args[args.index("--workers") + 1]) if "--workers" in args else 1
        self.env = env
        self.cwd = tmp_path
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen([*GATEWAY, *self.args], cwd=self.cwd, env=self.env,
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        try:
            self._wait_up()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_up(self) -> None:
        wait_listening(self.proc, self.out, self.workers, self.output)
        status, body = http(self.port, "/health")
        assert status == 200, (body, self.output())

    def output(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # the group this test started
            self.proc.wait(timeout=5)

    def __exit__(self, *exc) -> None:
        self.stop()


def generated_password(output: str) -> str | None:
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if "with the password" in line and i + 2 < len(lines):  # the whole block is there
            return lines[i + 1].strip()
    return None


def bootstrapped(server: Server, marker: str = "It is shown only now",
                 seconds: float = 20) -> str:
    """The server's output once ``marker`` is in it (the administrator is made once the
    server listens, a moment after it answers)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        output = server.output()
        if marker in output:
            return output
        time.sleep(0.05)
    raise AssertionError(f"{marker!r} never came:\n{server.output()}")


def users_in(db: Path) -> list[str]:
    import sqlite3

    with contextlib.closing(sqlite3.connect(db)) as conn:
        try:
            return sorted(r[0] for r in conn.execute("SELECT user_name FROM users"))
        except sqlite3.OperationalError:  # no table: nothing was ever made
            return []


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (from /proc)."""
    kids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: fields follow the last ')'
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[1]) == pid:
            kids.append(int(entry.name))
    return kids


def cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def listening_inodes(port: int) -> set[str]:
    """Inodes of the TCP sockets listening on ``port`` (IPv4 and IPv6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def socket_inodes(pid: int) -> set[str]:
    out = set()
    fd_dir = Path("/proc") / str(pid) / "fd"
    with contextlib.suppress(OSError):
        for fd in fd_dir.iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                m = re.fullmatch(r"socket:\[(\d+)\]", target)
                if m:
                    out.add(m.group(1))
    return out


def no_traceback(result) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr


# --- config check ------------------------------------------------------------------------------


async def test_config_check_valid_sqlite_and_postgres(tmp_path, pg_databases):
    pg_url = await pg_databases.create()
    cfg = write_config(tmp_path, {"PRIMARY": sqlite_url(tmp_path / "primary.db"),
                                  "SECONDARY": pg_url})
    result = run(["config", "check", "--config", str(cfg)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    no_traceback(result)
    assert "valid" in result.stdout
    assert re.search(r"\[PRIMARY\] ok: sqlite", result.stdout), result.stdout
    assert re.search(r"\[SECONDARY\] ok: postgresql", result.stdout), result.stdout
    assert "FAILED" not in result.stdout


async def test_config_check_from_gateway_config_env(tmp_path):
    cfg = write_config(tmp_path, {"PRIMARY": sqlite_url(tmp_path / "p.db")})
    result = run(["config", "check"], tmp_path, env=clean_env(GATEWAY_CONFIG=str(cfg)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(cfg) in result.stdout
    assert "[PRIMARY] ok" in result.stdout


def test_config_check_unreachable_postgres(tmp_path):
    cfg = write_config(tmp_path, {
        "PRIMARY": sqlite_url(tmp_path / "primary.db"),
        "SECONDARY": "postgresql://postgres@127.0.0.1:1/nowhere",
    })
    started = time.monotonic()
    result = run(["config", "check", "--config", str(cfg)], tmp_path)
    assert time.monotonic() - started < 30
    assert result.returncode != 0
    no_traceback(result)
    out = result.stdout + result.stderr
    assert "[PRIMARY] ok" in out
    assert re.search(r"\[SECONDARY\] FAILED: .*unavailable", out), out


def test_config_check_invalid_config_exits_2(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[server]\nprot = 1\n")
    result = run(["config", "check", "--config", str(cfg)], tmp_path)
    assert result.returncode == 2
    no_traceback(result)
    assert "configuration error" in result.stderr
    assert "prot" in result.stderr


def test_config_check_missing_file_exits_2(tmp_path):
    result = run(["config", "check", "--config", str(tmp_path / "nope.toml")], tmp_path)
    assert result.returncode == 2
    no_traceback(result)
    assert "not found" in result.stderr


def test_invalid_config_on_serve_exits_2(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[server]\nport = 0\n")
    result = run(["serve", "--config", str(cfg)], tmp_path)
    assert result.returncode == 2
    no_traceback(result)
    assert "port" in result.stderr


# --- hash-password ------------------------------------------------------------------------------


async def test_hash_password_makes_a_working_client_secret(tmp_path, aiohttp_client, admin_env):
    base = write_config(tmp_path, {"PRIMARY": sqlite_url(tmp_path / "p.db")})
    result = run(["hash-password", "--config", str(base)], tmp_path, stdin="s3cret-value\n")
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    hashed = result.stdout.strip()
    assert hashed.startswith("$argon2id$")
    assert "m=8,t=1,p=1" in hashed  # the configured cost
    assert "s3cret-value" not in result.stdout + result.stderr

    cfg_path = tmp_path / "with-client.toml"
    cfg_path.write_text(base.read_text() + f"""
[[clients]]
name = "svc"
secret_hash = "{hashed}"
permissions = ["users:list", "users:view"]
""")
    client = await aiohttp_client(create_app(load(cfg_path, environ={})))
    status, body, _ = await scim(client, "GET", "/Users", auth=basic("svc", "s3cret-value"))
    assert status == 200, body
    status, body, _ = await scim(client, "GET", "/Users", auth=basic("svc", "s3cret-value\n"))
    assert_scim_error(status, body, 401)
    status, body, _ = await scim(client, "GET", "/Users", auth=basic("svc", "wrong"))
    assert_scim_error(status, body, 401)
    status, body, _ = await scim(client, "POST", "/Users", {"userName": "x"},
                                 auth=basic("svc", "s3cret-value"))
    assert_scim_error(status, body, 403)


def test_hash_password_without_trailing_newline_uses_default_cost(tmp_path):
    result = run(["hash-password"], tmp_path, stdin="same")
    assert result.returncode == 0, result.stderr
    hashed = result.stdout.strip()
    assert hashed.startswith("$argon2id$")
    assert "m=19456,t=2,p=1" in hashed  # the default cost, without a configuration
    assert PasswordHasher().verify(hashed, "same")


def test_hash_password_empty_input_fails(tmp_path):
    result = run(["hash-password"], tmp_path, stdin="")
    assert result.returncode != 0
    no_traceback(result)
    assert "$argon2" not in result.stdout


# --- serve ------------------------------------------------------------------------------------


def test_serve_generates_admin_password_once(tmp_path):
    cfg = write_config(tmp_path, {"PRIMARY": sqlite_url(tmp_path / "gw.db")})
    env = clean_env()
    with Server(tmp_path, ["--config", str(cfg)], env, "first") as server:
        status, _ = http(server.port, "/scim2/Users")
        assert status == 401
        output = bootstrapped(server)
        password = generated_password(output)
        assert password, output
        assert len(password) >= 16
        assert output.count(password) == 1, output
        assert output.count("Created the administrator") == 1
        status, body = http(server.port, "/scim2/Users", basic("admin", password))
        assert status == 200, body
        assert [u["userName"] for u in body["Resources"]] == ["admin"]
        status, body = http(server.port, "/scim2/Users", basic("admin", password + "x"))
        assert status == 401
        output = server.output()
        assert output.count(password) == 1, "the password must not be logged"

    with Server(tmp_path, ["--config", str(cfg)], env, "second") as server:
        output = server.output()
        assert generated_password(output) is None, output
        assert password not in output
        assert "Created the administrator" not in output
        status, body = http(server.port, "/scim2/Users", basic("admin", password))
        assert status == 200, body
        assert body["totalResults"] == 1


def test_serve_with_admin_from_environment(tmp_path):
    cfg = write_config(tmp_path, {"PRIMARY": sqlite_url(tmp_path / "gw.db")})
    env = clean_env(GATEWAY_ADMIN_USER=ADMIN_USER[0], GATEWAY_ADMIN_PASSWORD=ADMIN_USER[1])
    with Server(tmp_path, ["--config", str(cfg)], env, "envadmin") as server:
        output = server.output()
        assert generated_password(output) is None, output
        assert ADMIN_USER[1] not in output
        auth = basic(*ADMIN_USER)
        status, body = http(server.port, "/scim2/Users", auth, "POST", {"userName": "alice"})
        assert status == 201, body
        status, body = http(server.port, "/scim2/Users", auth)
        assert status == 200, body
        names = sorted(u["userName"] for u in body["Resources"])
        assert names == ["alice", ADMIN_USER[0]]  # no generated 'admin'


def test_bootstrap_admin_only_for_a_serving_unadministered_gateway(tmp_path):
    """The random ``admin`` is made only once the server listens (a start that fails
    makes nothing), only while nobody holds PRIMARY's admin role, and never over an
    existing account of that name."""
    db = tmp_path / "gw.db"
    cfg = write_config(tmp_path, {"PRIMARY": sqlite_url(db)})
    # the port is taken: the start fails, and no account is made
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([*GATEWAY, "serve", "--config", str(cfg), "--port", str(port)],
                                cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                                timeout=60, check=False)
    assert result.returncode != 0, result.stdout
    assert "Created the administrator" not in result.stdout + result.stderr
    assert users_in(db) == []
    # an administrator of the operator's choosing holds the role...
    env = clean_env(GATEWAY_ADMIN_USER=ADMIN_USER[0], GATEWAY_ADMIN_PASSWORD=ADMIN_USER[1])
    with Server(tmp_path, ["--config", str(cfg)], env, "chosen") as server:
        status, body = http(server.port, "/scim2/Users", basic(*ADMIN_USER), "POST",
                            {"userName": "admin", "password": "Not-An-Admin-9"})
        assert status == 201, body
    # ...so a start without the environment makes no admin, and leaves 'admin' alone
    with Server(tmp_path, ["--config", str(cfg)], clean_env(), "unchosen") as server:
        time.sleep(1)  # the moment in which it would have been made
        output = server.output()
        assert "Created the administrator" not in output, output
        status, body = http(server.port, "/scim2/Users", basic("admin", "Not-An-Admin-9"))
        assert status == 403, body  # still an ordinary account
    assert users_in(db) == sorted(["admin", ADMIN_USER[0]])
    # a database where nobody holds the role but 'admin' exists: not promoted, said so
    db2 = tmp_path / "other.db"
    cfg2 = write_config(tmp_path, {"PRIMARY": sqlite_url(db2)}, name="other.toml")
    lines = tmp_path / "users.jsonl"
    lines.write_text('{"userName": "admin", "password": "Not-An-Admin-9"}\n')
    result = run(["import", str(lines), "--config", str(cfg2)], tmp_path, clean_env())
    assert result.returncode == 0, result.stderr
    with Server(tmp_path, ["--config", str(cfg2)], clean_env(), "existing") as server:
        output = bootstrapped(server, "is not made an administrator")
        assert "Created the administrator" not in output
        status, body = http(server.port, "/scim2/Users", basic("admin", "Not-An-Admin-9"))
        assert status == 403, body
    assert users_in(db2) == ["admin"]


def test_serve_with_two_workers(tmp_path):
    cfg = write_config(tmp_path, {"PRIMARY": sqlite_url(tmp_path / "gw.db")})
    env = clean_env(GATEWAY_ADMIN_USER=ADMIN_USER[0], GATEWAY_ADMIN_PASSWORD=ADMIN_USER[1])
    auth = basic(*ADMIN_USER)
    with Server(tmp_path, ["--config", str(cfg), "--workers", "2"], env, "workers") as server:
        # both workers said they listen, and do, on the port (each its own SO_REUSEPORT socket)
        workers = [p for p in children(server.proc.pid) if "spawn_main" in cmdline(p)]
        listening = listening_inodes(server.port)
        serving = [p for p in workers if socket_inodes(p) & listening]
        assert len(workers) == 2, [cmdline(p) for p in children(server.proc.pid)]
        assert len(serving) == 2, (workers, listening)

        created = []
        for i in range(10):
            status, body = http(server.port, "/scim2/Users", auth, "POST", {"userName": f"u{i}"})
            assert status == 201, body
            created.append(body["id"])
        for uid in created:
            status, body = http(server.port, f"/scim2/Users/{uid}", auth)
            assert status == 200, body
        status, body = http(server.port, "/scim2/Users?count=100", auth)
        assert body["totalResults"] == 11
    # stopping the parent stops the workers
    assert all(not Path(f"/proc/{p}").exists() or "spawn_main" not in cmdline(p)
               for p in workers)


def test_serve_without_config_uses_gateway_db_in_cwd(tmp_path):
    env = clean_env()
    assert not (tmp_path / "gateway.db").exists()
    with Server(tmp_path, [], env, "noconfig") as server:
        status, body = http(server.port, "/health")
        assert status == 200
        assert body == {"status": "up", "stores": {"PRIMARY": "up"}}
        assert (tmp_path / "gateway.db").exists()
        password = generated_password(bootstrapped(server))
        assert password
        status, body = http(server.port, "/scim2/Users", basic("admin", password))
        assert status == 200, body


# --- import ---------------------------------------------------------------------------------


async def test_import_jsonl(tmp_path, store_url, aiohttp_client, admin_env):
    url = await store_url("import")
    cfg = write_config(tmp_path, {"PRIMARY": url})
    users = [
        {"userName": "imp1", "name": {"givenName": "Ima", "familyName": "Porter"},
         "emails": [{"value": "imp1@example.test", "primary": True}]},
        {"userName": "imp2", "password": "imported-pw-2",
         "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "42"}},
        {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "imp3",
         "active": False},
    ]
    data = tmp_path / "users.jsonl"
    data.write_text("\n".join(json.dumps(u) for u in users) + "\n\n")
    result = run(["import", str(data), "--config", str(cfg)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    no_traceback(result)
    assert "imported 3 users" in result.stdout

    client = await aiohttp_client(create_app(load(cfg, environ={})))
    status, body, _ = await scim(client, "GET", '/Users?filter=userName sw "imp"&sortBy=userName',
                                 auth=basic(*ADMIN_USER))
    assert status == 200, body
    assert [u["userName"] for u in body["Resources"]] == ["imp1", "imp2", "imp3"]
    imp1, imp2, imp3 = body["Resources"]
    assert imp1["name"]["givenName"] == "Ima"
    assert imp1["emails"][0]["value"] == "imp1@example.test"
    assert imp2["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"][
        "employeeNumber"] == "42"
    assert "password" not in imp2
    assert imp3["active"] is False
    # the imported password was hashed and works (the user is in no role: 403, not 401)
    status, body, _ = await scim(client, "GET", "/Users", auth=basic("imp2", "imported-pw-2"))
    assert_scim_error(status, body, 403)
    status, body, _ = await scim(client, "GET", "/Users", auth=basic("imp2", "wrong"))
    assert_scim_error(status, body, 401)


def test_import_bad_json_line(tmp_path):
    cfg = write_config(tmp_path, {"PRIMARY": sqlite_url(tmp_path / "p.db")})
    data = tmp_path / "users.jsonl"
    data.write_text('{"userName": "ok1"}\n{"userName": "broken"\n{"userName": "ok3"}\n')
    result = run(["import", str(data), "--config", str(cfg)], tmp_path)
    assert result.returncode != 0
    no_traceback(result)
    assert "import failed" in result.stderr
    assert "line 2" in result.stderr


def test_import_invalid_user(tmp_path):
    cfg = write_config(tmp_path, {"PRIMARY": sqlite_url(tmp_path / "p.db")})
    data = tmp_path / "users.jsonl"
    data.write_text('{"userName": "ok1"}\n{"displayName": "no user name"}\n')
    result = run(["import", str(data), "--config", str(cfg)], tmp_path)
    assert result.returncode != 0
    no_traceback(result)
    assert "import failed" in result.stderr
    assert "line 2" in result.stderr
    assert "userName" in result.stderr


def test_import_missing_file(tmp_path):
    cfg = write_config(tmp_path, {"PRIMARY": sqlite_url(tmp_path / "p.db")})
    result = run(["import", str(tmp_path / "nope.jsonl"), "--config", str(cfg)], tmp_path)
    assert result.returncode != 0
    no_traceback(result)
    assert "nope.jsonl" in result.stderr


def test_import_from_stdin(tmp_path):
    cfg = write_config(tmp_path, {"PRIMARY": sqlite_url(tmp_path / "p.db")})
    result = run(["import", "-", "--config", str(cfg)], tmp_path,
                 stdin='{"userName": "s1"}\n{"userName": "s2"}\n')
    assert result.returncode == 0, result.stderr
    assert "imported 2 users" in result.stdout


async def _names(cfg: Path, aiohttp_client, prefix: str) -> list[str]:
    client = await aiohttp_client(create_app(load(cfg, environ={})))
    status, body, _ = await scim(
        client, "GET", f'/Users?filter=userName sw "{prefix}"&sortBy=userName&count=1000',
        auth=basic(*ADMIN_USER))
    assert status == 200, body
    return [u["userName"] for u in body["Resources"]]


async def test_import_duplicate_names_its_line_and_user(tmp_path, store_url, aiohttp_client,
                                                        admin_env):
    """A user whose name is taken stops the import naming its line and userName; the
    batches before it are kept, nothing of its batch is written; --skip-existing resumes."""
    cfg = write_config(tmp_path, {"PRIMARY": await store_url("dup")})
    names = [f"dup{i:02d}" for i in range(1, 13)]
    names[6] = "dup02"  # line 7 repeats line 2 (written with the first batch)
    data = tmp_path / "users.jsonl"
    data.write_text("".join(json.dumps({"userName": n}) + "\n" for n in names))
    result = run(["import", str(data), "--config", str(cfg), "--batch", "4"], tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    no_traceback(result)
    assert "import failed: line 7: user 'dup02' already exists" in result.stderr
    assert "imported before the failure: 4 users (through line 4)" in result.stderr
    assert "nothing of lines 5-8 was written" in result.stderr
    assert "\r" not in result.stderr  # no terminal: no progress line
    assert await _names(cfg, aiohttp_client, "dup") == names[:4]

    # resumed: the users already there are left out, the others written
    result = run(["import", str(data), "--config", str(cfg), "--batch", "4",
                  "--skip-existing"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "imported 7 users" in result.stdout and "skipped 5 existing" in result.stdout
    assert await _names(cfg, aiohttp_client, "dup") == sorted(set(names))


async def test_import_duplicate_within_a_batch(tmp_path, store_url, aiohttp_client,
                                               admin_env):
    cfg = write_config(tmp_path, {"PRIMARY": await store_url("dupin")})
    names = ["in1", "in2", "in3", "in4", "in5", "in4", "in7"]
    data = tmp_path / "users.jsonl"
    data.write_text("".join(json.dumps({"userName": n}) + "\n" for n in names))
    result = run(["import", str(data), "--config", str(cfg), "--batch", "3"], tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "line 6: user 'in4' already exists (line 4 has it too)" in result.stderr
    assert await _names(cfg, aiohttp_client, "in") == ["in1", "in2", "in3"]


def test_import_taken_unique_value_names_line_user_and_value(tmp_path):
    acme = "urn:example:params:scim:schemas:extension:acme:2.0:User"
    cfg = write_config(tmp_path, {"PRIMARY": sqlite_url(tmp_path / "p.db")}, f"""
[[extensions]]
id = "{acme}"
name = "AcmeUser"
resource = "User"

[[extensions.attributes]]
name = "badgeNumber"
type = "string"
uniqueness = "server"
""")
    data = tmp_path / "users.jsonl"
    data.write_text("".join(json.dumps({"userName": f"b{i}", acme: {"badgeNumber": badge}})
                            + "\n" for i, badge in enumerate(["B1", "B2", "B3", "B1"], 1)))
    result = run(["import", str(data), "--config", str(cfg), "--batch", "2"], tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    no_traceback(result)
    assert f"line 4: user 'b4': {acme}:badgeNumber 'B1' is taken" in result.stderr
    assert users_in(tmp_path / "p.db") == ["b1", "b2"]


def test_import_refused_user_names_line_and_user(tmp_path):
    cfg = write_config(tmp_path, {"PRIMARY": sqlite_url(tmp_path / "p.db")})
    data = tmp_path / "users.jsonl"
    data.write_text('{"userName": "ok1"}\n{"userName": "bad", "active": "perhaps"}\n')
    result = run(["import", str(data), "--config", str(cfg)], tmp_path)
    assert result.returncode == 1
    no_traceback(result)
    assert "line 2 (user 'bad')" in result.stderr
    assert users_in(tmp_path / "p.db") == []  # its batch: all or none


@pytest.mark.parametrize("args", [["import"], ["config"], []])
def test_usage_errors_exit_2(tmp_path, args):
    result = run(args, tmp_path)
    assert result.returncode == 2
    assert "usage" in result.stderr


def test_version():
    import subprocess
    import sys
    from pathlib import Path

    gateway = Path(sys.executable).with_name("gateway")
    out = subprocess.run([str(gateway), "--version"], capture_output=True, text=True,
                         timeout=60, check=True)
    import configparser

    setup = configparser.ConfigParser()
    setup.read(Path(__file__).resolve().parent.parent / "setup.cfg")
    assert out.stdout.strip() == f"gateway {setup['metadata']['version']}"


def test_serve_with_admin_password_from_a_file(tmp_path):
    """GATEWAY_ADMIN_PASSWORD_FILE: the chosen administrator's password read from a file
    (one trailing newline dropped); with GATEWAY_ADMIN_PASSWORD too, or unreadable, the
    start is refused naming the variable."""
    cfg = write_config(tmp_path, {"PRIMARY": sqlite_url(tmp_path / "gw.db")})
    secret_file = tmp_path / "admin-password"
    secret_file.write_text(ADMIN_USER[1] + "\n")
    env = clean_env(GATEWAY_ADMIN_USER=ADMIN_USER[0],
                    GATEWAY_ADMIN_PASSWORD_FILE=str(secret_file))
    with Server(tmp_path, ["--config", str(cfg)], env, "pwfile") as server:
        assert ADMIN_USER[1] not in server.output()
        status, body = http(server.port, "/scim2/Users", basic(*ADMIN_USER))
        assert status == 200, body
        status, _ = http(server.port, "/scim2/Users", basic(ADMIN_USER[0],
                                                            ADMIN_USER[1] + "\n"))
        assert status == 401
    for extra, says in (({"GATEWAY_ADMIN_PASSWORD": "other"}, "not both"),
                        ({"GATEWAY_ADMIN_PASSWORD_FILE": str(tmp_path / "missing")},
                         "cannot read")):
        result = run(["serve", "--config", str(cfg), "--port", str(free_port())], tmp_path,
                     {**env, **extra})
        assert result.returncode == 2, result.stdout + result.stderr
        assert "GATEWAY_ADMIN_PASSWORD_FILE" in result.stderr and says in result.stderr
        no_traceback(result)
