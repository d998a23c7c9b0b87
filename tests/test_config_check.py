"""``gateway config check``, run as a real process: it changes nothing (no database file,
no table, no -wal file is created), and a wrong setting is a clear error naming the file
(or the environment variable) and the key path, never a traceback."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

GATEWAY = [sys.executable, "-m", "gateway.cli"]
CLI_TIMEOUT = 60
FAST = "[passwords]\ntime_cost = 1\nmemory_cost_kib = 8\nparallelism = 1\n"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith("GATEWAY") and k.lower() not in ("http_proxy",
                                                                         "https_proxy")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*GATEWAY, *args], cwd=cwd, env=clean_env(**env), text=True,
                          capture_output=True, timeout=CLI_TIMEOUT, stdin=subprocess.DEVNULL)


def check(cwd: Path, config: str = "gateway.toml", **env: str) -> subprocess.CompletedProcess:
    return run(["config", "check", "--config", config], cwd, **env)


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``folder``: its size and content hash."""
    return {str(p.relative_to(folder)): (p.stat().st_size,
                                         hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr


# --- no side effects ---------------------------------------------------------------------------


def test_check_creates_no_database_file(tmp_path):
    # PRIMARY by default (gateway.db in the working folder) and a second SQLite store
    (tmp_path / "gateway.toml").write_text(
        FAST + '\n[userstores.SECONDARY]\nurl = "sqlite:///second.db"\n')
    before = snapshot(tmp_path)
    result = check(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    no_traceback(result)
    assert "[PRIMARY] ok: sqlite: gateway.db does not exist yet" in result.stdout
    assert "[SECONDARY] ok: sqlite: second.db does not exist yet" in result.stdout
    assert snapshot(tmp_path) == before


def test_check_reads_an_existing_database_without_changing_it(tmp_path):
    (tmp_path / "gateway.toml").write_text(
        FAST + '\n[userstores.PRIMARY]\nurl = "sqlite:///gw.db"\n')
    users = tmp_path / "users.jsonl"
    users.write_text('{"userName": "a1"}\n{"userName": "a2"}\n')
    made = run(["import", str(users), "--config", "gateway.toml"], tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    assert (tmp_path / "gw.db").exists()
    before = snapshot(tmp_path)
    result = check(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[PRIMARY] ok: sqlite: 2 users, 0 groups" in result.stdout
    assert snapshot(tmp_path) == before  # not a byte, and no -wal or -shm file


def test_check_of_an_empty_database_creates_no_table(tmp_path):
    (tmp_path / "empty.db").write_bytes(b"")  # an empty file is an empty SQLite database
    (tmp_path / "gateway.toml").write_text(
        FAST + '\n[userstores.PRIMARY]\nurl = "sqlite:///empty.db"\n')
    result = check(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[PRIMARY] ok: sqlite: no tables yet" in result.stdout
    assert (tmp_path / "empty.db").stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db", "gateway.toml"]


async def test_check_of_postgres_creates_no_table(tmp_path, pg_databases):
    url = await pg_databases.create()
    (tmp_path / "gateway.toml").write_text(
        FAST + f'\n[userstores.PRIMARY]\nurl = "sqlite:///p.db"\n'
        f'\n[userstores.SECONDARY]\nurl = "{url}"\n')
    result = check(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[SECONDARY] ok: postgresql: no tables yet" in result.stdout
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetchval("SELECT count(*) FROM information_schema.tables "
                                     "WHERE table_schema = 'public'")
    finally:
        await conn.close()
    assert tables == 0
    assert not (tmp_path / "p.db").exists()


# --- clear errors ------------------------------------------------------------------------------


def test_pool_size_zero_is_an_error_naming_the_file_and_key(tmp_path):
    (tmp_path / "gateway.toml").write_text(
        FAST + '\n[userstores.SECONDARY]\nurl = "sqlite:///s.db"\npool_size = 0\n')
    result = check(tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    no_traceback(result)
    assert "configuration error: gateway.toml: userstores.SECONDARY.pool_size: must be >= 1" \
        in result.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "gateway.toml"]


def test_an_error_from_the_environment_names_the_variable(tmp_path):
    (tmp_path / "gateway.toml").write_text(
        FAST + '\n[userstores.SECONDARY]\nurl = "sqlite:///s.db"\n')
    result = check(tmp_path, GATEWAY__USERSTORES__SECONDARY__POOL_SIZE="0")
    assert result.returncode == 2
    no_traceback(result)
    assert ("configuration error: GATEWAY__USERSTORES__SECONDARY__POOL_SIZE: "
            "userstores.SECONDARY.pool_size: must be >= 1") in result.stderr


def test_an_unknown_connector_type_is_an_error(tmp_path):
    (tmp_path / "gateway.toml").write_text(
        FAST + '\n[[outbound.connectors]]\nname = "hr"\ntype = "scim2"\n'
        'url = "http://127.0.0.1:9/scim/v2"\n'
        '\n[[outbound.connectors]]\nname = "crm"\ntype = "scim3"\nurl = "http://127.0.0.1:9/"\n')
    result = check(tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    no_traceback(result)
    assert ("configuration error: gateway.toml: outbound.connectors[1].type: unknown "
            "connector type 'scim3'") in result.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "gateway.toml"]


@pytest.mark.parametrize("text, where", [
    ("[server]\nport = 0\n", "gateway.toml: server.port: "),
    ('[server]\nport = "80"\n', "gateway.toml: server.port: expected int"),
    ('[logging]\nformat = "xml"\n', "gateway.toml: logging.format: "),
    ('[logging]\nlevel = "loud"\n', "gateway.toml: logging.level: "),
    ("[outbound]\ndispatcher_nice = 30\n", "gateway.toml: [outbound] dispatcher_nice"),
    ("[serverr]\nport = 1\n", "gateway.toml: [top level]: unknown setting(s) serverr"),
])
def test_semantic_errors_name_the_file(tmp_path, text, where):
    (tmp_path / "gateway.toml").write_text(text)
    result = check(tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    no_traceback(result)
    assert f"configuration error: {where}" in result.stderr


def test_a_store_url_that_is_no_url_fails_without_a_traceback(tmp_path):
    (tmp_path / "gateway.toml").write_text(
        FAST + '\n[userstores.SECONDARY]\nurl = "no url at all"\n')
    result = check(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    no_traceback(result)
    assert "[SECONDARY] FAILED: userstores.SECONDARY.url: not a database URL" in result.stdout
    assert "[PRIMARY] ok" in result.stdout


def test_a_store_in_a_missing_folder_fails(tmp_path):
    (tmp_path / "gateway.toml").write_text(
        FAST + '\n[userstores.PRIMARY]\nurl = "sqlite:///nowhere/gw.db"\n')
    result = check(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    no_traceback(result)
    assert "[PRIMARY] FAILED: " in result.stdout and "does not exist" in result.stdout
    assert not (tmp_path / "nowhere").exists()


def test_serve_refuses_an_unknown_connector_type_before_writing_anything(tmp_path):
    (tmp_path / "gateway.toml").write_text(
        FAST + '\n[[outbound.connectors]]\nname = "crm"\ntype = "scim3"\n'
        'url = "http://127.0.0.1:9/"\n')
    result = run(["serve", "--config", "gateway.toml", "--port", "9"], tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    no_traceback(result)
    assert ("configuration error: gateway.toml: outbound.connectors[0].type: unknown "
            "connector type 'scim3'") in result.stderr
    assert "serving on" not in result.stdout
    assert list(tmp_path.iterdir()) == [tmp_path / "gateway.toml"]  # no gateway.db


def test_a_malformed_directory_url_fails_without_a_traceback(tmp_path):
    (tmp_path / "gateway.toml").write_text(
        FAST + '\n[userstores.CORP]\ntype = "ldap"\nurl = "ldap://[broken"\n'
        'users_base = "ou=people,dc=x"\ngroups_base = "ou=groups,dc=x"\n')
    result = check(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    no_traceback(result)
    assert "[CORP] FAILED: " in result.stdout
    assert "[PRIMARY] ok" in result.stdout
