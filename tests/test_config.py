"""The configuration: defaults, every section, environment overrides, and clear errors."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.config import DEFAULT_PORT, ConfigError
from gateway.settings import load

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - a configuration value; nothing binds to it
REPO = Path(__file__).resolve().parent.parent

ARGON2_HASH = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$5mAdu1+WvKq+0pBvZlSkrQ"
RSA_JWK = {"kty": "RSA", "kid": "k1", "e": "AQAB",
           "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95G"
                "Q7h1M9Bg2sxVZ6u6V1K0n4wYvJ7sXgQBl_wjG7pS1eYT0uNVtKc1Bd8O2x1-0kpYD7J4jAXhdSzN"}


def write(tmp_path: Path, text: str, name: str = "gateway.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str, environ: dict | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text), environ=environ or {})
    return str(info.value)


# --- defaults ------------------------------------------------------------------------------


def test_defaults_without_a_file():
    cfg = load(None, environ={})
    assert cfg.host == "127.0.0.1"
    assert cfg.port == DEFAULT_PORT == 8280
    assert cfg.workers == 1
    assert list(cfg.stores) == ["PRIMARY"]
    primary = cfg.primary
    assert primary.type == "sql"
    assert primary.url.startswith("sqlite")
    assert primary.url.endswith("/gateway.db")
    assert not primary.read_only
    assert cfg.clients == ()
    assert cfg.issuers == ()
    assert cfg.roles == {"admin": ("*",)}
    assert cfg.max_results == 1000
    assert cfg.default_count == 100
    assert cfg.auth_cache_seconds == 30.0
    assert cfg.source == "(defaults)"


def test_empty_file_gives_the_defaults(tmp_path):
    path = write(tmp_path, "")
    cfg = load(path, environ={})
    defaults = load(None, environ={})
    assert cfg.port == defaults.port
    assert cfg.stores == defaults.stores
    assert cfg.source == str(path)


def test_the_example_file_is_valid_and_matches_the_defaults():
    cfg = load(EXAMPLE, environ={})
    defaults = load(None, environ={})
    assert (cfg.host, cfg.port, cfg.workers) == (defaults.host, defaults.port, defaults.workers)
    assert (cfg.max_results, cfg.default_count, cfg.max_body_bytes) == (
        defaults.max_results, defaults.default_count, defaults.max_body_bytes)
    assert cfg.passwords == defaults.passwords
    assert cfg.auth_cache_seconds == defaults.auth_cache_seconds
    assert cfg.primary.url.endswith("gateway.db")
    assert cfg.roles == defaults.roles
    # all of it: the file as it is runs the gateway as no file does (PRIMARY says
    # required = true, which PRIMARY always is)
    primary = replace(cfg.primary, required=False)
    assert replace(cfg, source="", stores={"PRIMARY": primary}) == replace(defaults, source="")


# --- the example shows every setting ------------------------------------------------------

EXAMPLE = REPO / "gateway.example.toml"
# a commented-out setting or table header ("# key = value", "# [[outbound.connectors]]"), as
# opposed to a comment in words
_COMMENTED_SETTING = re.compile(
    r"^(\s*)#\s?(\s*(?:\[\[?[\w.-]+\]\]?\s*(?:#.*)?|[A-Za-z_][\w-]*\s*=\s*\S.*))$")


def _uncommented(text: str) -> dict:
    """The example with its commented-out settings taken as settings: every key it shows."""
    lines = []
    for line in text.splitlines():
        m = _COMMENTED_SETTING.match(line)
        lines.append(m.group(1) + m.group(2) if m else line)
    return tomllib.loads("\n".join(lines))


def _known_settings(monkeypatch) -> set[str]:
    """Every setting the configuration loader reads, as key paths (``server.port``,
    ``userstores.*.bind_dn``, ``clients[].name``, ``outbound.connectors[].url``), from the
    loader's own definitions: the parsers that check their table with
    ``config_values.unknown`` are run on empty tables and what they pass to it is
    recorded; the others' keys are their modules' constants (``OUTBOUND_KEYS``,
    ``connectors.config.KEYS``, ``gateway.jit.config.KEYS``)."""
    import sys

    from connectors.config import KEYS as CONNECTOR_KEYS
    from gateway import config_values
    from gateway.config import JitConfig
    from gateway.jit.config import KEYS as PROVIDER_KEYS
    from gateway.outbound.config import OUTBOUND_KEYS
    from gateway.settings import SECTIONS
    from userstores.config import TYPES

    seen: list[tuple[str, frozenset]] = []
    original = config_values.unknown

    def recording(sec, where, known):
        seen.append((where, frozenset(known)))
        return original(sec, where, known)

    for module in list(sys.modules.values()):
        if getattr(module, "unknown", None) is original:
            monkeypatch.setattr(module, "unknown", recording)
    probes = {"userstores": [{"S": {"type": kind}} for kind in TYPES]}
    for name, parse in SECTIONS.items():
        for probe in probes.get(name, [{}, [{}]]):
            try:
                parse(probe, REPO)
            except ConfigError:
                pass
    paths = set(SECTIONS)
    for where, known in seen:
        prefix = re.sub(r"\[\d+\]$", "[]", where)
        prefix = re.sub(r"^userstores\.[^.]+$", "userstores.*", prefix)
        paths |= {f"{prefix}.{key}" for key in known}
    paths |= {f"outbound.{key}" for key in OUTBOUND_KEYS}
    paths |= {f"outbound.connectors[].{key}" for key in CONNECTOR_KEYS}
    paths |= {f"jit.{key}" for key in JitConfig.__dataclass_fields__}
    paths |= {f"jit.providers[].{key}" for key in PROVIDER_KEYS}
    return paths


def _shown_settings(doc: dict, known: set[str]) -> set[str]:
    """The key paths of ``doc`` (the example, uncommented), walked where the loader reads
    tables of settings (free-form tables such as ``roles`` or ``attributes`` are values)."""
    containers = {".".join(p.split(".")[:i]) for p in known for i in range(1, p.count(".") + 1)}
    shown: set[str] = set()

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else key
            shown.add(path)
            if isinstance(value, list) and f"{path}[]" in containers:
                for entry in value:
                    walk(entry, f"{path}[]")
            elif isinstance(value, dict) and f"{path}.*" in containers:
                for entry in value.values():
                    walk(entry, f"{path}.*")
            elif isinstance(value, dict) and path in containers:
                walk(value, path)

    walk(doc, "")
    return shown


def test_the_example_file_shows_every_setting(monkeypatch):
    known = _known_settings(monkeypatch)
    # the derivation found the settings of every part (were it to find nothing, the
    # comparison below would prove nothing)
    assert {"server.port", "logging.format", "logging.access_log", "clients[].provisioning",
            "issuers[].leeway_seconds", "userstores.*.pool_size", "userstores.*.bind_password",
            "outbound.dispatcher", "outbound.connectors[].api_key",
            "jit.providers[].mode"} <= known
    shown = _shown_settings(_uncommented(EXAMPLE.read_text()), known)
    assert known - shown == set(), "settings gateway.example.toml does not show"
    assert shown - known == set(), "settings in gateway.example.toml that nothing reads"


def test_the_example_check_notices_a_missing_setting(monkeypatch):
    text = EXAMPLE.read_text()
    assert "# bind_password = " in text and "\nretention_hours = 168\n" in text
    text = re.sub(r"(?m)^# bind_password = .*\n", "", text).replace(
        "\nretention_hours = 168\n", "\n")
    known = _known_settings(monkeypatch)
    missing = known - _shown_settings(_uncommented(text), known)
    assert missing == {"userstores.*.bind_password", "outbound.retention_hours"}


def test_process_environment_is_used_when_no_environ_is_given(tmp_path, monkeypatch):
    monkeypatch.setenv("GATEWAY__SERVER__PORT", "9123")
    assert load(None).port == 9123


# --- every section ---------------------------------------------------------------------------


def test_every_section_is_parsed(tmp_path):
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [RSA_JWK]}))
    path = write(tmp_path, f"""
[server]
host = "0.0.0.0"
port = 9443
workers = 4
base_url = "https://idm.example.test"

[limits]
max_body_bytes = 2048
max_results = 500
default_count = 20

[passwords]
time_cost = 3
memory_cost_kib = 65536
parallelism = 2
min_length = 12

[auth]
cache_seconds = 5

[userstores.PRIMARY]
type = "sql"
url = "postgresql://gw@127.0.0.1:5432/gw"
pool_size = 16

[userstores.secondary]
url = "sqlite:///secondary.db"
read_only = true

[[clients]]
name = "okta"
secret_hash = "{ARGON2_HASH}"
permissions = ["users:*", "groups:list"]

[[clients]]
name = "script"
secret = "s3cret"
permissions = ["*"]

[[issuers]]
issuer = "https://login.example.test"
audience = "gateway"
jwks_file = "jwks.json"
algorithms = ["RS256"]
scope_permissions = {{ "scim.read" = ["users:list", "users:view"], "scim.write" = ["users:*"] }}
subject_claim = "client_id"
leeway_seconds = 10

[[issuers]]
issuer = "https://other.example.test"
audience = "gw2"
jwks = {{ keys = [] }}

[roles]
helpdesk = ["users:list", "users:view", "users:update"]
""")
    cfg = load(path, environ={})
    assert (cfg.host, cfg.port, cfg.workers) == (ALL_INTERFACES, 9443, 4)
    assert cfg.base_url == "https://idm.example.test"
    assert (cfg.max_body_bytes, cfg.max_results, cfg.default_count) == (2048, 500, 20)
    assert (cfg.passwords.time_cost, cfg.passwords.memory_cost_kib, cfg.passwords.parallelism,
            cfg.passwords.min_length) == (3, 65536, 2, 12)
    assert cfg.auth_cache_seconds == 5.0
    assert isinstance(cfg.auth_cache_seconds, float)

    assert list(cfg.stores) == ["PRIMARY", "SECONDARY"]
    assert cfg.stores["PRIMARY"].url == "postgresql://gw@127.0.0.1:5432/gw"
    assert cfg.stores["PRIMARY"].pool_size == 16
    assert cfg.stores["PRIMARY"].read_only is False
    assert cfg.stores["SECONDARY"].domain == "SECONDARY"
    assert cfg.stores["SECONDARY"].read_only is True
    assert cfg.stores["SECONDARY"].url == "sqlite:///secondary.db"

    okta, script = cfg.clients
    assert (okta.name, okta.secret, okta.secret_hash) == ("okta", None, ARGON2_HASH)
    assert okta.permissions == ("users:*", "groups:list")
    assert (script.name, script.secret, script.permissions) == ("script", "s3cret", ("*",))

    first, second = cfg.issuers
    assert first.issuer == "https://login.example.test"
    assert first.audience == "gateway"
    assert first.jwks == {"keys": [RSA_JWK]}
    assert first.algorithms == ("RS256",)
    assert first.scope_permissions == {"scim.read": ("users:list", "users:view"),
                                       "scim.write": ("users:*",)}
    assert first.subject_claim == "client_id"
    assert first.leeway_seconds == 10
    assert second.jwks == {"keys": []}
    assert second.algorithms == ("RS256", "ES256", "PS256", "EdDSA")
    assert second.leeway_seconds == 60

    assert cfg.roles == {"admin": ("*",),
                         "helpdesk": ("users:list", "users:view", "users:update")}


def test_primary_store_is_added_when_only_others_are_configured(tmp_path):
    cfg = load(write(tmp_path, '[userstores.SECONDARY]\nurl = "sqlite:///s.db"\n'), environ={})
    assert list(cfg.stores) == ["PRIMARY", "SECONDARY"]
    assert cfg.primary.url.endswith("gateway.db")


def test_jwks_as_json_text(tmp_path):
    text = json.dumps({"keys": [RSA_JWK]})
    cfg = load(write(tmp_path, f"""
[[issuers]]
issuer = "i"
audience = "a"
jwks = '{text}'
"""), environ={})
    assert cfg.issuers[0].jwks == {"keys": [RSA_JWK]}


# --- environment overrides -------------------------------------------------------------------


def test_env_overrides_the_file(tmp_path):
    path = write(tmp_path, """
[server]
port = 8000
[limits]
max_results = 200
default_count = 10
[userstores.PRIMARY]
url = "sqlite:///file.db"
""")
    cfg = load(path, environ={
        "GATEWAY__SERVER__PORT": "9000",
        "GATEWAY__USERSTORES__PRIMARY__URL": "postgresql://gw@127.0.0.1:5432/prod",
        "GATEWAY__LIMITS__MAX_RESULTS": "50",
        "PATH": "/usr/bin",
        "GATEWAY_ADMIN_USER": "someone",  # one underscore: not an override
    })
    assert cfg.port == 9000
    assert isinstance(cfg.port, int)
    assert cfg.primary.url == "postgresql://gw@127.0.0.1:5432/prod"
    assert cfg.max_results == 50
    assert cfg.default_count == 10


def test_env_overrides_without_a_file():
    cfg = load(None, environ={
        "GATEWAY__SERVER__PORT": "9000",
        "GATEWAY__USERSTORES__PRIMARY__URL": "postgresql://gw@127.0.0.1:5432/prod",
    })
    assert cfg.port == 9000
    assert list(cfg.stores) == ["PRIMARY"]
    assert cfg.primary.url == "postgresql://gw@127.0.0.1:5432/prod"


def test_env_lowering_max_results_alone_is_accepted():
    """Lowering max_results below the default page size must not need default_count too."""
    cfg = load(None, environ={"GATEWAY__LIMITS__MAX_RESULTS": "50"})
    assert cfg.max_results == 50
    assert 0 < cfg.default_count <= 50


def test_env_names_are_case_insensitive_and_match_domains_in_any_case(tmp_path):
    path = write(tmp_path, '[userstores.primary]\nurl = "sqlite:///a.db"\n')
    cfg = load(path, environ={"gateway__userstores__Primary__url": "sqlite:///b.db",
                              "Gateway__Server__Host": ALL_INTERFACES})
    assert list(cfg.stores) == ["PRIMARY"]
    assert cfg.primary.url == "sqlite:///b.db"
    assert cfg.host == ALL_INTERFACES


def test_env_values_are_typed(tmp_path):
    cfg = load(None, environ={
        "GATEWAY__USERSTORES__SECONDARY__URL": "sqlite:///second.db",
        "GATEWAY__USERSTORES__SECONDARY__READ_ONLY": "true",
        "GATEWAY__ROLES__AUDITORS": '["users:list", "groups:list"]',
        "GATEWAY__AUTH__CACHE_SECONDS": "0",
    })
    assert cfg.stores["SECONDARY"].read_only is True
    assert cfg.stores["SECONDARY"].url == "sqlite:///second.db"
    assert cfg.roles["auditors"] == ("users:list", "groups:list")
    assert cfg.auth_cache_seconds == 0.0


def test_env_override_of_unknown_setting_is_an_error():
    with pytest.raises(ConfigError, match="prot"):
        load(None, environ={"GATEWAY__SERVER__PROT": "9000"})


def test_env_override_with_wrong_type_is_an_error():
    with pytest.raises(ConfigError, match=r"server\.port"):
        load(None, environ={"GATEWAY__SERVER__PORT": "nine thousand"})


# --- errors ------------------------------------------------------------------------------------


def test_unknown_key(tmp_path):
    msg = error_of(tmp_path, "[server]\nprot = 9000\n")
    assert "server" in msg and "prot" in msg


def test_unknown_section(tmp_path):
    msg = error_of(tmp_path, "[serverr]\nport = 9000\n")
    assert "serverr" in msg


def test_unknown_store_key(tmp_path):
    msg = error_of(tmp_path, '[userstores.PRIMARY]\nurl = "sqlite:///a.db"\npassword = "x"\n')
    assert "userstores.PRIMARY" in msg and "password" in msg


@pytest.mark.parametrize("text, where", [
    ('[server]\nport = "8280"\n', "server.port"),
    ("[server]\nport = true\n", "server.port"),
    ("[server]\nport = 80.5\n", "server.port"),
    ('[server]\nhost = 127\n', "server.host"),
    ('[limits]\nmax_results = "many"\n', "limits.max_results"),
    ('[userstores.PRIMARY]\nurl = "sqlite:///a.db"\nread_only = "yes"\n',
     "userstores.PRIMARY.read_only"),
    ('[auth]\ncache_seconds = "30"\n', "auth.cache_seconds"),
    ('[passwords]\ntime_cost = 1.5\n', "passwords.time_cost"),
])
def test_wrong_type(tmp_path, text, where):
    msg = error_of(tmp_path, text)
    assert where in msg
    assert "expected" in msg


def test_section_that_is_not_a_table(tmp_path):
    assert "server" in error_of(tmp_path, 'server = "x"\n')


@pytest.mark.parametrize("text", [
    '[[clients]]\nname = "c"\nsecret = "s"\npermissions = ["users:destroy"]\n',
    '[[clients]]\nname = "c"\nsecret = "s"\npermissions = ["Users:list"]\n',
    '[roles]\nhelpdesk = ["users:read"]\n',
    '[[issuers]]\nissuer = "i"\naudience = "a"\njwks = { keys = [] }\n'
    'scope_permissions = { "s" = ["everything"] }\n',
])
def test_bad_permission_name(tmp_path, text):
    msg = error_of(tmp_path, text)
    assert "unknown permission" in msg
    assert "users:list" in msg  # says what is allowed


def test_permissions_must_be_a_list(tmp_path):
    msg = error_of(tmp_path, '[[clients]]\nname = "c"\nsecret = "s"\npermissions = "*"\n')
    assert "clients[0]" in msg and "list" in msg


def test_client_with_both_secret_and_hash(tmp_path):
    msg = error_of(tmp_path, f'[[clients]]\nname = "c"\nsecret = "s"\n'
                             f'secret_hash = "{ARGON2_HASH}"\npermissions = ["*"]\n')
    assert "exactly one of 'secret' or 'secret_hash'" in msg
    assert "clients[0]" in msg and "(c)" in msg


def test_client_with_neither_secret_nor_hash(tmp_path):
    msg = error_of(tmp_path, '[[clients]]\nname = "ok"\nsecret = "s"\npermissions = ["*"]\n'
                             '[[clients]]\nname = "c2"\npermissions = ["*"]\n')
    assert "exactly one of 'secret' or 'secret_hash'" in msg
    assert "clients[1]" in msg and "c2" in msg


def test_client_without_name(tmp_path):
    msg = error_of(tmp_path, '[[clients]]\nsecret = "s"\npermissions = ["*"]\n')
    assert "clients[0]" in msg and "name" in msg


@pytest.mark.parametrize("bad_hash", [
    "$2b$12$abcdefghijklmnopqrstuu5Jqf0Qz9G3y4nH6lY0v1k2a3b4c5d6e",  # bcrypt
    "5f4dcc3b5aa765d61d8327deb882cf99",  # md5
    "plain-secret",
])
def test_client_secret_hash_must_be_argon2(tmp_path, bad_hash):
    msg = error_of(tmp_path, f'[[clients]]\nname = "c"\nsecret_hash = "{bad_hash}"\n'
                             f'permissions = ["*"]\n')
    assert "argon2" in msg
    assert "hash-password" in msg


def test_clients_must_be_an_array_of_tables(tmp_path):
    assert "clients" in error_of(tmp_path, 'clients = "c"\n')


def test_client_entry_must_be_a_table(tmp_path):
    msg = error_of(tmp_path, "clients = [1]\n")
    assert "clients" in msg


@pytest.mark.parametrize("algs", ['["none"]', '["RS256", "NONE"]', '["HS256"]',
                                  '["RS256", "HS512"]'])
def test_issuer_with_symmetric_or_no_algorithm(tmp_path, algs):
    msg = error_of(tmp_path, f'[[issuers]]\nissuer = "i"\naudience = "a"\n'
                             f'jwks = {{ keys = [] }}\nalgorithms = {algs}\n')
    assert "issuers[0]" in msg
    assert "not allowed" in msg


def test_issuer_without_jwks(tmp_path):
    msg = error_of(tmp_path, '[[issuers]]\nissuer = "i"\naudience = "a"\n')
    assert "issuers[0]" in msg and "JWKS" in msg


def test_issuer_with_jwks_not_a_key_set(tmp_path):
    msg = error_of(tmp_path, '[[issuers]]\nissuer = "i"\naudience = "a"\njwks = { k = 1 }\n')
    assert "JWKS" in msg


def test_issuer_with_jwks_text_that_is_not_json(tmp_path):
    msg = error_of(tmp_path, '[[issuers]]\nissuer = "i"\naudience = "a"\njwks = "{not json"\n')
    assert "issuers[0]" in msg
    assert "jwks" in msg.lower()


def test_issuer_with_missing_jwks_file(tmp_path):
    msg = error_of(tmp_path, '[[issuers]]\nissuer = "i"\naudience = "a"\n'
                             'jwks_file = "nowhere.json"\n')
    assert "jwks_file" in msg and "issuers[0]" in msg


def test_issuer_without_audience(tmp_path):
    msg = error_of(tmp_path, '[[issuers]]\nissuer = "i"\njwks = { keys = [] }\n')
    assert "audience" in msg


@pytest.mark.parametrize("domain", ["INTERNAL", "internal", "Internal"])
def test_internal_domain_is_reserved(tmp_path, domain):
    msg = error_of(tmp_path, f'[userstores.{domain}]\nurl = "sqlite:///i.db"\n')
    assert "INTERNAL" in msg and "reserved" in msg


def test_domain_name_with_a_slash(tmp_path):
    msg = error_of(tmp_path, '[userstores."A/B"]\nurl = "sqlite:///i.db"\n')
    assert "domain" in msg


def test_store_without_url(tmp_path):
    msg = error_of(tmp_path, "[userstores.PRIMARY]\nread_only = true\n")
    assert "url" in msg and "userstores.PRIMARY" in msg


def test_unknown_store_type(tmp_path):
    msg = error_of(tmp_path, '[userstores.PRIMARY]\ntype = "nosql"\nurl = "x"\n')
    assert "nosql" in msg


@pytest.mark.parametrize("port", [0, -1, 65536, 100000])
def test_bad_port(tmp_path, port):
    msg = error_of(tmp_path, f"[server]\nport = {port}\n")
    assert "port" in msg and str(port) in msg


def test_bad_port_from_env():
    with pytest.raises(ConfigError, match="port"):
        load(None, environ={"GATEWAY__SERVER__PORT": "70000"})


def test_workers_must_be_positive(tmp_path):
    assert "workers" in error_of(tmp_path, "[server]\nworkers = 0\n")


def test_default_count_above_max_results(tmp_path):
    msg = error_of(tmp_path, "[limits]\nmax_results = 50\ndefault_count = 100\n")
    assert "default_count" in msg and "max_results" in msg


def test_default_count_zero(tmp_path):
    assert "default_count" in error_of(tmp_path, "[limits]\ndefault_count = 0\n")


def test_weak_password_settings(tmp_path):
    assert "memory_cost_kib" in error_of(tmp_path, "[passwords]\nmemory_cost_kib = 1\n")


def test_invalid_toml(tmp_path):
    path = write(tmp_path, "[server\nport = 9000\n")
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    msg = str(info.value)
    assert str(path) in msg
    assert "TOML" in msg
    assert "line 1" in msg  # says where


def test_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    assert "not found" in str(info.value)
    assert str(path) in str(info.value)


def test_a_store_may_be_required_for_readiness(tmp_path):
    from gateway.settings import load as load_settings

    path = tmp_path / "gw.toml"
    path.write_text('[userstores.SECONDARY]\nurl = "sqlite:///s.db"\nrequired = true\n',
                    encoding="utf-8")
    cfg = load_settings(str(path), environ={})
    assert cfg.stores["SECONDARY"].required is True
    assert cfg.stores["PRIMARY"].required is False
    path.write_text('[userstores.SECONDARY]\nurl = "sqlite:///s.db"\nrequired = "yes"\n',
                    encoding="utf-8")
    with pytest.raises(ConfigError, match="required"):
        load_settings(str(path), environ={})


# --- [logging] -----------------------------------------------------------------------------


def test_logging_defaults_and_settings(tmp_path):
    cfg = load(None, environ={})
    assert (cfg.logging.level, cfg.logging.format, cfg.logging.access_log) == (
        "info", "text", True)
    cfg = load(write(tmp_path, '[logging]\nlevel = "WARNING"\nformat = "json"\n'
                               'access_log = false\n'), environ={})
    assert (cfg.logging.level, cfg.logging.format, cfg.logging.access_log) == (
        "warning", "json", False)


def test_logging_from_the_environment():
    cfg = load(None, environ={"GATEWAY__LOGGING__LEVEL": "debug",
                              "GATEWAY__LOGGING__FORMAT": "json",
                              "GATEWAY__LOGGING__ACCESS_LOG": "false"})
    assert (cfg.logging.level, cfg.logging.format, cfg.logging.access_log) == (
        "debug", "json", False)


@pytest.mark.parametrize("text, where", [
    ('[logging]\nlevel = "loud"\n', "logging.level"),
    ('[logging]\nformat = "xml"\n', "logging.format"),
    ("[logging]\naccess_log = 1\n", "logging.access_log"),
    ('[logging]\nlevle = "info"\n', "levle"),
])
def test_bad_logging_settings(tmp_path, text, where):
    assert where in error_of(tmp_path, text)


# --- errors name the file (or the variable) and the key path ------------------------------


def test_an_error_names_the_file_and_the_key_path(tmp_path):
    msg = error_of(tmp_path, '[userstores.SECONDARY]\nurl = "sqlite:///s.db"\npool_size = 0\n')
    assert msg.startswith(f"{tmp_path / 'gateway.toml'}: userstores.SECONDARY.pool_size: ")
    assert "must be >= 1" in msg
    msg = error_of(tmp_path, "[server]\nport = 70000\n")
    assert msg.startswith(f"{tmp_path / 'gateway.toml'}: server.port: ")


def test_an_error_from_the_environment_names_the_variable(tmp_path):
    path = write(tmp_path, '[userstores.SECONDARY]\nurl = "sqlite:///s.db"\n')
    with pytest.raises(ConfigError) as info:
        load(path, environ={"GATEWAY__USERSTORES__SECONDARY__POOL_SIZE": "-2"})
    assert str(info.value).startswith(
        "GATEWAY__USERSTORES__SECONDARY__POOL_SIZE: userstores.SECONDARY.pool_size: must be")
    with pytest.raises(ConfigError) as info:
        load(None, environ={"GATEWAY__SERVER__PORT": "0"})
    assert str(info.value).startswith("GATEWAY__SERVER__PORT: server.port: ")


@pytest.mark.parametrize("text, where", [
    ("[server]\nworkers = 0\n", "server.workers: must be >= 1"),
    ("[limits]\nmax_body_bytes = 10\n", "limits.max_body_bytes: must be >= 1024"),
    ("[limits]\nbulk_max_operations = 0\n", "limits.bulk_max_operations: must be >= 1"),
    ("[limits]\nmax_results = 50\ndefault_count = 100\n",
     "limits.default_count: must be between 1 and max_results (50)"),
    ("[passwords]\nparallelism = 0\n", "passwords.parallelism: must be >= 1"),
    ("[security]\naddress_burst = 0\n", "security.address_burst: must be >= 1"),
    ("[security]\nlockout_seconds = 600\nlockout_max_seconds = 60\n",
     "security.lockout_max_seconds: must be >= lockout_seconds"),
    ("[audit]\nretention_days = -1\n", "audit.retention_days: must be >= 0"),
    ('[soap]\nunqualified_names = "any"\n', 'soap.unqualified_names: must be "primary"'),
])
def test_a_value_out_of_range_names_its_key(tmp_path, text, where):
    assert error_of(tmp_path, text).startswith(f"{tmp_path / 'gateway.toml'}: {where}")
