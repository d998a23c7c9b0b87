"""A real OpenLDAP ``slapd`` for the tests, in a temporary directory, on a free loopback port.

Needs Debian's ``slapd`` and ``ldap-utils`` packages (``/usr/sbin/slapd``, schemas in
``/etc/ldap/schema``, modules in ``/usr/lib/ldap``); it never uses the system's slapd
configuration or port 389. Works as root and as a normal user (the directory must be
writable by the user running the tests).

What the server has (see ``_config``):

- one ``mdb`` database, suffix ``dc=example,dc=com``, rootdn ``cn=admin,dc=example,dc=com``
  with a plain-text rootpw; 4 GiB map (the file grows as used: 20k inetOrgPersons with
  these indexes take about 60 MB);
  ``dbnosync`` (fast writes; data survives ``stop()``, which always closes the
  database cleanly when it can, and even a kill, but not a machine crash);
- schemas core, cosine, inetorgperson, nis, and ``tests/data/ldap/ad-lite.schema``
  (AD names ``user``, ``group``, ``sAMAccountName``, ``userAccountControl``,
  ``userPrincipalName``... with fake OIDs; read its header);
- overlays ``memberof`` twice (once for ``groupOfNames``, once for the AD-lite
  ``group``; both maintain the operational ``memberOf`` from ``member``) and
  ``refint`` on ``member`` and ``memberOf``: deleting or renaming an entry fixes the
  groups that list it (memberof's own refint does it before the reply; slapd's refint
  overlay repeats it in a background thread);
- the ``ppolicy`` module is loaded for its schema only (``pwdAccountLockedTime``,
  ``pwdFailureTime``...; slapd 2.5+ defines them in the module), and no ``overlay
  ppolicy`` is on the database: slapd keeps and returns a lock a test sets, but does
  not enforce it in binds (a store must, by itself), nor lock after failed binds;
- the rootdn has no size or time limit (so it can list 100k entries, paged or not);
  other users keep slapd's default ``sizelimit 500`` (a paged search is then needed);
- access: the rootdn does everything; anonymous may only bind; a bound user may
  read its own entry and change (not read) its own ``userPassword`` (``=xw``);
  ``cn=limited-gateway,ou=t<hex>,dc=example,dc=com`` (``LIMITED_ACCOUNT``, an entry
  a test makes in its own subtree) may write every entry but only read the locks
  (``pwdAccountLockedTime``, AD-lite ``lockoutTime``), nor touch ``userPassword``;
  bound users may read the root DSE and the subschema;
- passwords: ``password-hash {SSHA}`` hashes only what arrives by the Password Modify
  extended operation (ldap3 ``conn.extend.standard.modify_password``). A plain
  add/modify of ``userPassword`` stores the value AS GIVEN (clear text unless the
  client sends ``{SSHA}...``). A simple bind with the user's DN checks either form.
- simple paged results (1.2.840.113556.1.4.319) is built into slapd: nothing to load.

``stop()`` then ``start()`` brings the same directory back on the same port with the
same data (entryUUIDs included).

Speed (2 shared cores): start about 0.1 s; adds over LDAP (``load_ldif``) about
0.4-1.5 ms an entry; ``bulk_load`` (offline slapadd) about 0.2 ms an entry.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

SLAPD = os.environ.get("GATEWAY_TEST_SLAPD", "/usr/sbin/slapd")
LDAPMODIFY = shutil.which("ldapmodify") or "/usr/bin/ldapmodify"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
AD_LITE_SCHEMA = Path(__file__).resolve().parent / "data" / "ldap" / "ad-lite.schema"

SUFFIX = "dc=example,dc=com"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "admin-secret"  # noqa: S105 (test directory)

PEOPLE_DN = f"ou=people,{SUFFIX}"
GROUPS_DN = f"ou=groups,{SUFFIX}"
AD_USERS_DN = f"ou=adusers,{SUFFIX}"
AD_GROUPS_DN = f"ou=adgroups,{SUFFIX}"

PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"

BASE_LDIF = f"""\
dn: {SUFFIX}
objectClass: top
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: {PEOPLE_DN}
objectClass: organizationalUnit
ou: people

dn: {GROUPS_DN}
objectClass: organizationalUnit
ou: groups

dn: {AD_USERS_DN}
objectClass: organizationalUnit
ou: adusers

dn: {AD_GROUPS_DN}
objectClass: organizationalUnit
ou: adgroups
"""

# (attribute, index types); every attribute must exist in the loaded schemas
INDEXES = [
    ("objectClass", "eq"),
    ("entryUUID", "eq"),
    ("uid", "eq,sub"),
    ("cn", "eq,sub"),
    ("sn", "eq,sub"),
    ("givenName", "eq,sub"),
    ("mail", "eq,sub"),
    ("displayName", "eq,sub"),
    ("member", "eq"),
    ("memberOf", "eq"),
    ("sAMAccountName", "eq,sub"),
    ("userPrincipalName", "eq,sub"),
]

_MODULES = ["back_mdb", "memberof", "refint", "sssvlv", "ppolicy"]

# a bind account of a test's own subtree (``cn=limited-gateway,ou=t<hex>,…``) that may
# write every entry but only read the directory's locks, as a store's service account
# without the right to unlock accounts
LIMITED_ACCOUNT = "limited-gateway"
_LIMITED = f'dn.regex="^cn={LIMITED_ACCOUNT},ou=t[0-9a-f]+,{SUFFIX}$"'
_LOCKS = "pwdAccountLockedTime,lockoutTime"


def _libc_prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _libc_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    os.setsid()
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlapdError(RuntimeError):
    pass


class Slapd:
    """One slapd in ``workdir`` (created if missing). ``start()``, ``stop()``, context manager."""

    def __init__(self, workdir: str | os.PathLike, port: int | None = None,
                 start_timeout: float = 20.0, stop_timeout: float = 10.0):
        self.workdir = Path(workdir).resolve()
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.url = f"ldap://{self.host}:{self.port}"
        self.bind_dn = ROOT_DN
        self.password = ROOT_PASSWORD
        self.base_dn = SUFFIX
        self.people_dn = PEOPLE_DN
        self.groups_dn = GROUPS_DN
        self.ad_users_dn = AD_USERS_DN
        self.ad_groups_dn = AD_GROUPS_DN
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.conf_path = self.workdir / "slapd.conf"
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "slapd.log"
        self._pw_file = self.workdir / "rootpw"
        self._proc: subprocess.Popen | None = None
        self._log = None
        self._atexit = False

    # --- configuration -------------------------------------------------------------------

    def _config(self) -> str:
        for path in [Path(SLAPD), AD_LITE_SCHEMA, *(MODULE_DIR / f"{m}.so" for m in _MODULES)]:
            if not path.exists():
                raise SlapdError(
                    f"{path} is missing: install Debian's slapd and ldap-utils "
                    "(see .ci/run) to run the LDAP tests")
        schemas = [SCHEMA_DIR / f"{n}.schema" for n in ("core", "cosine", "inetorgperson", "nis")]
        lines = [f"include {p}" for p in [*schemas, AD_LITE_SCHEMA]]
        lines += [
            f"pidfile {self.workdir / 'slapd.pid'}",
            f"argsfile {self.workdir / 'slapd.args'}",
            f"modulepath {MODULE_DIR}",
            *(f"moduleload {m}" for m in _MODULES),
            "loglevel 0",
            "password-hash {SSHA}",
            # frontend ACLs (root DSE, subschema): bound users read them, anonymous not
            'access to dn.base="" by users read by * none',
            'access to dn.base="cn=Subschema" by users read by * none',
            "",
            "database mdb",
            f'suffix "{SUFFIX}"',
            f'rootdn "{ROOT_DN}"',
            f"rootpw {ROOT_PASSWORD}",
            f'directory "{self.data_dir}"',
            "maxsize 4294967296",
            "dbnosync",
            f'limits dn.exact="{ROOT_DN}" size=unlimited time=unlimited',
            *(f"index {attr} {kinds}" for attr, kinds in INDEXES),
            f"access to attrs={_LOCKS} by {_LIMITED} read by self read by * none",
            "access to attrs=userPassword by self =xw by anonymous auth by * none",
            f"access to * by {_LIMITED} write by self read by * none",
            "",
            # overlays run last-configured first; each memberof instance handles one group class
            "overlay memberof",
            "memberof-group-oc groupOfNames",
            "memberof-member-ad member",
            "memberof-memberof-ad memberOf",
            "memberof-refint TRUE",
            "",
            "overlay memberof",
            "memberof-group-oc group",
            "memberof-member-ad member",
            "memberof-memberof-ad memberOf",
            "memberof-refint TRUE",
            "",
            "overlay refint",
            "refint_attributes member memberOf",
            "",
            # server-side sorting and virtual list views: the store pages large lists with them
            "overlay sssvlv",
            "sssvlv-max 64",
            "sssvlv-maxkeys 2",
            "",
        ]
        return "\n".join(lines)

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Slapd:
        """Start slapd (same port and data as before, if it ran before); wait until it answers.

        On the first start of an empty directory, loads ``BASE_LDIF``.
        """
        if self.running:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        fresh = not (self.data_dir / "data.mdb").exists()
        self.data_dir.mkdir(exist_ok=True)
        self.conf_path.write_text(self._config())
        self._pw_file.write_text(self.password)  # ldapmodify -y: no trailing newline
        self._pw_file.chmod(0o600)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop())
        # -d: stay in the foreground (no fork), log to stderr -> slapd.log; level "none"
        # (32768) prints only the messages slapd logs at any level: errors, start, stop
        cmd = [SLAPD, "-d", "32768", "-f", str(self.conf_path), "-h", f"{self.url}/"]
        main = threading.current_thread() is threading.main_thread()
        self._proc = subprocess.Popen(  # noqa: S603
            cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            # die with the test process even if it is killed (only from the main thread:
            # PDEATHSIG fires when the forking *thread* ends)
            preexec_fn=_die_with_parent if main else None,
            start_new_session=not main)
        if not self._atexit:
            atexit.register(self.stop)
            self._atexit = True
        try:
            self._wait_ready()
            if fresh:
                self.load_ldif(BASE_LDIF)
        except BaseException:
            self.stop()
            raise
        return self

    def _log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def _wait_ready(self) -> None:
        # slapd binds its listener, opens the databases, writes the pidfile, then calls
        # listen(): our pid in the pidfile (so the port is ours, not a stranger's) plus a
        # successful connect means ready
        pidfile = self.workdir / "slapd.pid"
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._proc.poll() is not None:
                raise SlapdError(f"slapd exited with {self._proc.returncode} at start "
                                 f"({' '.join(self._proc.args)}):\n{self._log_text()}")
            try:
                if pidfile.read_text().strip() == str(self._proc.pid):
                    with socket.create_connection((self.host, self.port), timeout=0.5):
                        pass
                    if self._proc.poll() is None:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SlapdError(f"slapd did not answer on {self.url} within "
                                 f"{self.start_timeout}s:\n{self._log_text()}")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM (clean shutdown), then SIGKILL after ``stop_timeout``. Idempotent."""
        proc, self._proc = self._proc, None
        try:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(self.stop_timeout)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def __enter__(self) -> Slapd:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- data --------------------------------------------------------------------------

    def load_ldif(self, text: str, timeout: float = 300.0) -> None:
        """Apply LDIF as the rootdn with ``ldapmodify -a``: plain entries are added,
        ``changetype:`` records (modify, delete, modrdn) are applied. Stops at the first error.
        """
        if not self.running:
            raise SlapdError("slapd is not running")
        cmd = [LDAPMODIFY, "-a", "-x", "-H", self.url, "-D", self.bind_dn,
               "-y", str(self._pw_file)]
        try:
            done = subprocess.run(cmd, input=text.encode(), capture_output=True,  # noqa: S603
                                  timeout=timeout, check=False)
        except FileNotFoundError as exc:
            raise SlapdError(f"{LDAPMODIFY} is missing: install ldap-utils") from exc
        if done.returncode != 0:
            raise SlapdError(f"ldapmodify failed ({done.returncode}):\n"
                             f"{done.stderr.decode(errors='replace')[-4000:]}")

    def bulk_load(self, text: str, timeout: float = 1800.0) -> None:
        """Add many entries fast (about 0.2 ms an entry against 1-2 ms over LDAP) with
        ``slapadd -q``, offline: stops slapd if it runs, and starts it again after.

        slapadd bypasses the overlays: memberOf is NOT computed and refint does nothing.
        Write ``memberOf`` values on the member entries yourself (slapadd accepts this
        operational attribute). Parents must come before children and exist (or be in
        the LDIF); plain entries only (no changetype). entryUUID, createTimestamp and the
        other operational attributes are generated.
        """
        was_running = self.running
        self.stop()
        if not self.conf_path.exists():
            raise SlapdError("start() the server once before bulk_load()")
        path = self.workdir / "bulk.ldif"
        path.write_text(text)
        try:
            done = subprocess.run(  # noqa: S603
                [str(Path(SLAPD).with_name("slapadd")), "-q", "-f", str(self.conf_path),
                 "-l", str(path)], capture_output=True, timeout=timeout, check=False)
        finally:
            path.unlink(missing_ok=True)
        if was_running:
            self.start()
        if done.returncode != 0:
            raise SlapdError(f"slapadd failed ({done.returncode}):\n"
                             f"{done.stderr.decode(errors='replace')[-4000:]}")

    def delete_subtree(self, dn: str) -> int:
        """Delete ``dn`` and everything under it: listed with ldap3, deleted by one
        ``ldapmodify`` (2,500 entries in about 1 s). Returns the count deleted."""
        conn = self.connection()
        try:
            dns = subtree_dns(conn, dn)
            if not dns:
                return 0
            self.load_ldif("".join(f"dn: {d}\nchangetype: delete\n\n" for d in dns))
            if subtree_dns(conn, dn) is not None:
                raise SlapdError(f"{dn} is still there after deleting its subtree")
            return len(dns)
        finally:
            conn.unbind()

    def connection(self, user: str | None = None, password: str | None = None,
                   timeout: float = 5.0):
        """A bound ldap3 Connection (SYNC), by default as the rootdn. Caller unbinds."""
        import ldap3

        server = ldap3.Server(self.host, port=self.port, get_info=ldap3.NONE,
                              connect_timeout=timeout)
        return ldap3.Connection(server, user=user or self.bind_dn,
                                password=self.password if password is None else password,
                                auto_bind=True, receive_timeout=int(timeout * 6),
                                raise_exceptions=False)


def subtree_dns(conn, dn: str, page_size: int = 1000) -> list[str] | None:
    """DNs of ``dn`` and everything under it, deepest first; None if ``dn`` does not exist.

    ``conn`` is a bound ldap3 SYNC connection (the rootdn: no size limit applies).
    """
    import ldap3
    from ldap3.utils.dn import parse_dn

    dns: list[str] = []
    cookie = None
    for _ in range(1_000_000):  # bounded; ends on the empty cookie
        conn.search(dn, "(objectClass=*)", ldap3.SUBTREE, attributes=["1.1"],
                    paged_size=page_size, paged_cookie=cookie)
        if conn.result["result"] != 0:  # search() is False also on success with 0 entries
            if conn.result["result"] == 32:  # noSuchObject
                return None
            raise SlapdError(f"cannot list {dn}: {conn.result}")
        dns += [e["dn"] for e in conn.response if e["type"] == "searchResEntry"]
        cookie = conn.result["controls"][PAGED_RESULTS_OID]["value"]["cookie"]
        if not cookie:
            break
    dns.sort(key=lambda d: len(parse_dn(d)), reverse=True)
    return dns


def delete_subtree(conn, dn: str) -> int:
    """Delete ``dn`` and everything under it with ldap3, one request at a time (about 1 ms
    an entry; ``Slapd.delete_subtree`` is faster). Returns the count deleted.

    OpenLDAP's mdb has no tree-delete control, hence the search.
    """
    dns = subtree_dns(conn, dn) or []
    for entry_dn in dns:
        if not conn.delete(entry_dn) and conn.result["result"] != 32:
            raise SlapdError(f"cannot delete {entry_dn}: {conn.result}")
    return len(dns)


if __name__ == "__main__":  # manual check: python tests/ldap_server.py /tmp/somedir
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, Slapd(sys.argv[1] if sys.argv[1:] else tmp) as s:
        print(f"slapd on {s.url} as {s.bind_dn} / {s.password}; Ctrl-C to stop")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
