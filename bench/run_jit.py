"""The just-in-time provisioning benchmark (``POST /jit/{provider}``), in one command.

    /work/venv/bin/python bench/run_jit.py [--seconds 8] [--users 1000]

The target (from the issue): a JIT call for an existing, unchanged user under
5 ms server-side at p99 (keys cached), and at least 30% of the bare aiohttp
baseline's throughput.

1. makes an RSA 2048 (RS256) and an EC P-256 (ES256) signing key with joserfc,
   writes the public JWKS to a file and a gateway configuration with one OIDC
   provider ``bench`` (``jwks_file``, claims mapped to the name, the work
   e-mail, and an IdP group mapped to the local role ``engineers``) and an API
   client ``jitapp`` with only the ``jit`` permission; starts ``gateway
   serve`` (one worker, fresh SQLite) as a real process. By default through
   this file's ``timed-gateway`` sub-command, which runs the gateway's own
   CLI with an aiohttp access logger that keeps each ``/jit/`` request's
   server time (aiohttp's request start to the end of writing the reply) in
   memory (a list append: no log line); ``--plain`` runs the ``gateway``
   script itself, without server times;
2. setup, from a load generator in a process of its own (this file,
   ``loadgen setup``): creates the group ``engineers``, then the ``--users``
   (N) users by one JIT call each (their first login, 201 ``created``), and
   checks a later login (200 ``unchanged``, same id and version, member of
   ``engineers``) and a replayed token (401). It keeps the gateway's reply to
   an unchanged login, and measures the cost of one signature check alone
   (RS256 against ES256, joserfc as the gateway calls it, the gateway's own
   ``OidcVerifier``, and bare ``cryptography``) while the servers are idle;
3. starts the baseline: this file's ``baseline`` sub-command, the bare aiohttp
   app of ``baseline.py`` plus ``POST /jit/{provider}`` that reads the body and
   answers that same reply (same bytes), with the same timing access logger;
4. measuring (``loadgen measure``): ID tokens are single-use (``jti``,
   replay protection), so every gateway request needs a token of its own:
   before each phase the load generator mints all the tokens it may send
   (one per request, unique ``jti``, the user's unchanged claims; minting is
   the load generator's cost, not timed). Per target a warm-up, then one
   client (p50/p99, client-side and server-side), one more single-client
   phase of the gateway with ES256 tokens, then ``--concurrency`` (16)
   clients in ``--rounds`` (8) slices alternating baseline and gateway
   (req/s, server CPU per request). Every gateway answer must be 200
   ``unchanged`` for the right user, else it is an error;
5. if a target is missed (``--profile auto``; ``always``/``never``), two
   profiled gateway phases under py-spy (not counted for the targets), one
   client and ``--concurrency`` clients, and for each a summary of where the
   time goes: by thread (the event loop, the SQLite reader threads) and by
   step of the call, in % of samples and in ms per request;
6. prints the table and the targets (MET/MISS) and keeps everything in
   ``bench/results/<timestamp>-jit-<N>/`` (gitignored).

``--what-if FILE`` runs a Python file inside the gateway process before it
starts (monkeypatches that try a change), to measure a proposed change without
editing the product; the report is headed WHAT-IF.

Every loop is bounded by a request count and by seconds, the whole run by
``--max-seconds``; only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from array import array

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import (  # noqa: E402
    Phase,
    PostOperation,
    Slices,
    basic_auth,
    columns,
    fmt,
    mark,
    measure,
    own_cpu,
    percentile,
    raw_samples,
    require_loopback,
    run_phase,
    shares,
    split_frame,
    start_py_spy,
    stop_py_spy,
)
from common import write_config as write_base_config  # noqa: E402

TARGET_P99_MS = 5.0
TARGET_RATIO = 0.30
PROVIDER = "bench"
ISSUER = "https://idp.bench.test"
AUDIENCE = "gateway-bench-client"
ROLE = "engineers"
IDP_GROUP = "idp-engineering"
JIT_CLIENT = ("jitapp", "jitsecret")
TOKEN_TTL = 1800  # seconds: longer than any run; the replay memory keeps each jti that long


# server-side times: an aiohttp access logger that keeps durations, dumped on SIGUSR1 ------------
class _Timings:
    prefix = "/jit/"
    directory: str | None = None
    times = array("d")
    others = 0


def _access_logger_class():
    from aiohttp.abc import AbstractAccessLogger

    class TimingLogger(AbstractAccessLogger):
        """Keeps the time of each request under the prefix: aiohttp measures it from the
        start of the request's handling to the end of writing its reply."""

        def log(self, request, response, time):  # noqa: A002 - aiohttp's name
            if request.path.startswith(_Timings.prefix):
                _Timings.times.append(time)
            else:
                _Timings.others += 1

    return TimingLogger


def _dump_timings(_signum, _frame) -> None:
    """SIGUSR1: write the times kept since the last dump to <dir>/<name>.json (the name is
    read from <dir>/request) and start again."""
    directory = _Timings.directory
    try:
        with open(os.path.join(directory, "request")) as f:
            name = f.read().strip()
        times, _Timings.times = _Timings.times, array("d")
        tmp = os.path.join(directory, f".{name}.tmp")
        with open(tmp, "w") as f:
            json.dump({"times": times.tolist(), "others": _Timings.others}, f)
        os.replace(tmp, os.path.join(directory, f"{name}.json"))
    except (OSError, ValueError) as exc:  # never take the server down for a benchmark
        print(f"timings dump failed: {exc}", file=sys.stderr, flush=True)


def _install_timing(directory: str):
    from aiohttp import web

    os.makedirs(directory, exist_ok=True)
    _Timings.directory = directory
    signal.signal(signal.SIGUSR1, _dump_timings)
    logger_class, logger = _access_logger_class(), logging.getLogger("bench.timing")
    real = web.run_app

    def run_app(app, **kwargs):
        kwargs["access_log_class"], kwargs["access_log"] = logger_class, logger
        return real(app, **kwargs)

    web.run_app = run_app


def timed_gateway_main(argv: list[str]) -> int:
    """``gateway`` (its own CLI, unchanged) with the timing access logger."""
    p = argparse.ArgumentParser(prog="run_jit.py timed-gateway")
    p.add_argument("--timings", required=True, help="folder of the timing dumps")
    p.add_argument("--what-if", help="a Python file run in this process before the gateway")
    p.add_argument("gateway_args", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    rest = args.gateway_args[1:] if args.gateway_args[:1] == ["--"] else args.gateway_args
    if "--workers" in rest and rest[rest.index("--workers") + 1] != "1":
        p.error("one worker only (the times are kept in the worker's memory)")
    _install_timing(args.timings)
    if args.what_if:
        import runpy

        runpy.run_path(args.what_if, run_name="what_if")
    from gateway.cli import main as gateway_main

    return gateway_main(rest)


def baseline_main(argv: list[str]) -> int:
    """The bare aiohttp baseline of ``baseline.py`` plus ``POST /jit/{provider}``: reads the
    body, answers a constant JSON reply (the gateway's own reply to an unchanged login)."""
    import baseline
    from aiohttp import web

    p = argparse.ArgumentParser(prog="run_jit.py baseline")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--reply", required=True, help="file holding the reply body")
    p.add_argument("--timings", required=True)
    args = p.parse_args(argv)
    with open(args.reply, "rb") as f:
        reply = f.read()

    async def jit(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=reply, content_type="application/json")

    app = baseline.create_app()
    app.router.add_post("/jit/{provider}", jit)
    _install_timing(args.timings)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)
    return 0


# the identity provider's side: keys and tokens ---------------------------------------------------
def make_keys(workdir: str) -> tuple[str, str]:
    """(the private JWKS, for the load generator; the public JWKS, for the gateway)."""
    from joserfc.jwk import ECKey, RSAKey

    rsa = RSAKey.generate_key(2048, {"kid": "bench-rs256", "alg": "RS256", "use": "sig"},
                              private=True)
    ec = ECKey.generate_key("P-256", {"kid": "bench-es256", "alg": "ES256", "use": "sig"},
                            private=True)
    private, public = os.path.join(workdir, "idp-private.json"), os.path.join(workdir,
                                                                              "jwks.json")
    with open(private, "w") as f:
        json.dump({"keys": [k.as_dict(private=True) for k in (rsa, ec)]}, f)
    os.chmod(private, 0o600)
    with open(public, "w") as f:
        json.dump({"keys": [k.as_dict(private=False) for k in (rsa, ec)]}, f)
    return private, public


def load_keys(path: str) -> dict:
    from joserfc.jwk import ECKey, RSAKey

    with open(path) as f:
        keys = json.load(f)["keys"]
    out = {}
    for k in keys:
        key = RSAKey.import_key(k) if k["kty"] == "RSA" else ECKey.import_key(k)
        out[k["alg"]] = key
    return out


def user_name(i: int) -> str:
    return f"jit{i:06d}"


def user_claims(i: int) -> dict:
    """What the IdP says of user i: the same every login, so later logins are unchanged."""
    return {"sub": f"bench-subject-{i:06d}", "preferred_username": user_name(i),
            "given_name": f"Given{i}", "family_name": f"Family{i}",
            "email": f"{user_name(i)}@corp.example", "email_verified": True,
            "groups": [IDP_GROUP, "idp-everyone"], "amr": ["pwd"]}


class Minter:
    def __init__(self, keys: dict, run_id: str):
        self.keys, self.run_id, self.count = keys, run_id, 0

    def token(self, i: int, alg: str = "RS256", jti: str | None = None) -> str:
        from joserfc import jwt

        self.count += 1
        now = int(time.time())
        key = self.keys[alg]
        claims = {"iss": ISSUER, "aud": AUDIENCE, "azp": AUDIENCE, "iat": now,
                  "auth_time": now, "exp": now + TOKEN_TTL, "nonce": uuid.uuid4().hex,
                  "jti": jti or f"{self.run_id}-{self.count}", **user_claims(i)}
        return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, claims, key)

    def body(self, i: int, alg: str = "RS256") -> bytes:
        return json.dumps({"id_token": self.token(i, alg)}, separators=(",", ":")).encode()

    def pool(self, count: int, users: int, alg: str, rng: random.Random,
             deadline: float) -> tuple[list[tuple[bytes, bytes]], float]:
        """``count`` request bodies of random users (each a token of its own), as (body,
        the userName the reply must carry); and the CPU seconds per token it took."""
        out = []
        cpu0 = time.process_time()
        while len(out) < count and time.perf_counter() < deadline:
            i = rng.randint(1, users)
            out.append((self.body(i, alg), f'"userName":"{user_name(i)}"'.encode()))
        cpu = time.process_time() - cpu0
        return out, (cpu / len(out) if out else 0.0)


# the configuration ---------------------------------------------------------------------------
CLAIMS = ("{ given_name = \"name.givenName\", family_name = \"name.familyName\", "
          "email = 'emails[type eq \"work\"].value' }")  # TOML: an inline table is one line


def write_config(path: str, db: str, port: int, jwks: str) -> None:
    # the configuration of run.py (common.write_config: bench client, auth cache), and the
    # JIT client and provider
    write_base_config(path, db, port, f"""
[[clients]]
name = "{JIT_CLIENT[0]}"
secret = "{JIT_CLIENT[1]}"
permissions = ["jit"]

[[jit.providers]]
name = "{PROVIDER}"
type = "oidc"
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
algorithms = ["RS256", "ES256"]
jwks_file = "{os.path.abspath(jwks)}"
leeway_seconds = 60
username_claim = "preferred_username"
subject_claim = "sub"
claims = {CLAIMS}
roles_claim = "groups"
roles = {{ "{IDP_GROUP}" = "{ROLE}" }}
mode = "silent"
""")


# the load generator --------------------------------------------------------------------------
def basic(credentials: tuple[str, str]) -> str:
    return basic_auth(":".join(credentials))


async def server_times(pid: int | None, directory: str | None, name: str,
                       seconds: float = 10.0) -> list[float] | None:
    """The server times kept since the last call (SIGUSR1 to a timed server), in seconds."""
    if not pid or not directory:
        return None
    out = _ask_dump(pid, directory, name)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        times = _read_dump(out)
        if times is not None:
            return times
        await asyncio.sleep(0.01)
    print(f"loadgen: no server times from pid {pid} ({name})", file=sys.stderr)
    return None


def _ask_dump(pid: int, directory: str, name: str) -> str:
    with open(os.path.join(directory, "request"), "w") as f:
        f.write(name)
    out = os.path.join(directory, f"{name}.json")
    if os.path.exists(out):
        os.unlink(out)
    os.kill(pid, signal.SIGUSR1)
    return out


def _read_dump(path: str) -> list[float] | None:
    try:
        with open(path) as f:
            return json.load(f)["times"]
    except FileNotFoundError:
        return None


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def times_summary(times: list[float] | None) -> dict | None:
    if not times:
        return None
    ms = sorted(t * 1000 for t in times)
    return {"requests": len(ms), "p50_ms": round(percentile(ms, 0.50), 3),
            "p90_ms": round(percentile(ms, 0.90), 3), "p99_ms": round(percentile(ms, 0.99), 3),
            "max_ms": round(ms[-1], 3), "mean_ms": round(statistics.fmean(ms), 3)}


class Kernel:
    """A server's system-mode share of its CPU and its context switches (all its threads:
    voluntary, e.g. a thread going to sleep on a queue or the GIL, and involuntary),
    added up over the phases watched."""

    def __init__(self):
        self.user = self.system = 0.0
        self.switches = 0

    @staticmethod
    def read(pid: int | None) -> tuple[float, float, int] | None:
        if not pid:
            return None
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            switches = 0
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith(("voluntary_ctxt", "nonvoluntary_ctxt")):
                            switches += int(line.split()[1])
        except OSError:
            return None
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick, switches

    @contextlib.contextmanager
    def watch(self, pid: int | None):
        before = self.read(pid)
        yield
        after = self.read(pid)
        if before and after:
            self.user += after[0] - before[0]
            self.system += after[1] - before[1]
            self.switches += after[2] - before[2]  # threads gone meanwhile: not counted

    def summary(self, requests: int) -> dict:
        cpu = self.user + self.system
        return {"system_share": round(self.system / cpu, 3) if cpu else None,
                "switches_per_req": round(self.switches / requests, 2) if requests else None}


class JitOperation(PostOperation):
    """``POST /jit/bench``: each request takes the next body of a pool (a token is used
    once); each answer is checked with ``ok``."""

    def __init__(self, name, target, session, url, headers, pool, ok, reuse=False):
        super().__init__(name, target, session, url, headers, self._next, ok)
        self.pool, self.reuse = pool, reuse
        self.used = 0

    def _next(self, rng: random.Random) -> tuple[bytes, bytes] | None:
        if self.reuse:
            item = rng.choice(self.pool)
        elif self.pool:
            item = self.pool.pop()
        else:  # bounded by the pool: never sends a token twice
            return None
        self.used += 1
        return item


def gateway_ok(expect: bytes, data: bytes) -> bool:
    return b'"result":"unchanged"' in data and expect in data


def baseline_ok(_expect: bytes, data: bytes) -> bool:
    return b'"result":"unchanged"' in data


async def post_json(session, url: str, body, headers: dict) -> tuple[int, dict | str]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with session.post(url, data=data, headers=headers) as resp:
        raw = await resp.read()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw[:500].decode(errors="replace")


async def setup_async(args) -> dict:
    """Create the role and the N users (first logins); check an unchanged login and a replay;
    keep the gateway's reply to an unchanged login; measure a signature check alone."""
    import aiohttp

    deadline = time.perf_counter() + args.max_seconds
    minter = Minter(load_keys(args.keys), f"setup-{uuid.uuid4().hex[:8]}")
    jit_url = f"{args.gateway}/jit/{PROVIDER}"
    jit_headers = {"Authorization": basic(JIT_CLIENT), "Content-Type": "application/json"}
    scim_headers = {"Authorization": basic(("bench", "secret")),
                    "Content-Type": "application/scim+json"}
    facts: dict = {}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout,
                                     connector=aiohttp.TCPConnector(limit=8)) as s:
        status, body = await post_json(s, f"{args.gateway}/scim2/Groups",
                                       {"displayName": ROLE}, scim_headers)
        if status != 201:
            raise SystemExit(f"setup: creating the group {ROLE} failed: {status} {body}")
        group_id = body["id"]

        # first logins: N users, the tokens minted before the clock starts
        bodies = [(i, minter.body(i)) for i in range(1, args.users + 1)]
        ids: dict[int, str] = {}
        latencies: list[float] = []
        queue = list(reversed(bodies))

        async def first_login() -> None:
            while queue and time.perf_counter() < deadline:
                i, b = queue.pop()
                t0 = time.perf_counter()
                status, reply = await post_json(s, jit_url, b, jit_headers)
                latencies.append(time.perf_counter() - t0)
                if status != 201 or reply.get("result") != "created" \
                        or reply["user"].get("userName") != user_name(i):
                    raise SystemExit(f"setup: first login of {user_name(i)}: {status} "
                                     f"{str(reply)[:800]}")
                ids[i] = reply["user"]["id"]

        t0 = time.perf_counter()
        await asyncio.gather(*(first_login() for _ in range(4)))
        took = time.perf_counter() - t0
        if len(ids) != args.users:
            raise SystemExit(f"setup: only {len(ids)} of {args.users} first logins within "
                             f"the time bound")
        lat = sorted(latencies)
        facts["first_logins"] = {"users": len(ids), "seconds": round(took, 2),
                                 "per_s": round(len(ids) / took, 1), "concurrency": 4,
                                 "p50_ms": round(percentile(lat, 0.5) * 1000, 2),
                                 "p99_ms": round(percentile(lat, 0.99) * 1000, 2)}

        # a later login: unchanged, same user and version; the user is in the role
        i = args.users
        token = minter.token(i)
        status, first = await post_json(s, jit_url, {"id_token": minter.token(i)},
                                        jit_headers)
        status2, reply = await post_json(s, jit_url, {"id_token": token}, jit_headers)
        for st, r in ((status, first), (status2, reply)):
            if st != 200 or r.get("result") != "unchanged" or r["user"]["id"] != ids[i]:
                raise SystemExit(f"setup: a later login of {user_name(i)} is not 200 "
                                 f"unchanged: {st} {str(r)[:800]}")
        if first["user"]["meta"]["version"] != reply["user"]["meta"]["version"]:
            raise SystemExit("setup: an unchanged login changed the user's version")
        if ROLE not in [g.get("display") for g in reply["user"].get("groups", [])]:
            raise SystemExit(f"setup: {user_name(i)} is not in {ROLE}: {reply['user']}")
        # the same token again: a replay, refused
        status, refused = await post_json(s, jit_url, {"id_token": token}, jit_headers)
        if status != 401:
            raise SystemExit(f"setup: a replayed token was not refused: {status} {refused}")
        # the reply the baseline will send: the gateway's own, to an unchanged login
        async with s.post(jit_url, data=minter.body(1), headers=jit_headers) as resp:
            raw = await resp.read()
            if resp.status != 200 or b'"result":"unchanged"' not in raw:
                raise SystemExit(f"setup: unchanged login of {user_name(1)}: {resp.status} "
                                 f"{raw[:500]!r}")
        _write(args.reply_out, raw)
        facts["reply_bytes"] = len(raw)
        facts["request_bytes"] = {alg: len(minter.body(1, alg)) for alg in ("RS256", "ES256")}
        async with s.get(f"{args.gateway}/scim2/Groups/{group_id}",
                         headers=scim_headers) as resp:
            members = (await resp.json(content_type=None)).get("members", [])
        if len(members) != args.users:
            raise SystemExit(f"setup: {ROLE} has {len(members)} members, not {args.users}")
    facts["verify_alone"] = verify_alone(minter, args.verify_seconds)
    return facts


def verify_alone(minter: Minter, seconds: float) -> dict:
    """CPU per signature check, RS256 and ES256, measured alone (one thread, nothing else of
    this benchmark running): joserfc ``jwt.decode`` with the provider's key set as the gateway
    calls it; the gateway's own ``OidcVerifier.verify`` (decode, claims checks; keys inline);
    bare ``cryptography`` verify of the same signature; and joserfc ``jwt.encode`` (minting,
    the load generator's cost)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    from joserfc import jwt
    from joserfc.jwk import KeySet

    from gateway.jit.config import ProviderConfig
    from gateway.jit.oidc import OidcVerifier

    public = {"keys": [k.as_dict(private=False) for k in minter.keys.values()]}
    keyset = KeySet.import_key_set(public)
    cfg = ProviderConfig(name=PROVIDER, type="oidc", issuer=ISSUER, audience=AUDIENCE,
                         algorithms=("RS256", "ES256"), jwks=public)
    verifier = OidcVerifier(cfg, None)

    def run_sync(coro):  # the verify awaits nothing that suspends (inline keys): no loop
        try:
            coro.send(None)
        except StopIteration as stop:
            return stop.value
        raise RuntimeError("OidcVerifier.verify suspended")

    def per_call(fn, budget: float, max_calls: int = 20000) -> float:
        fn()
        n, cpu0, end = 0, time.process_time(), time.perf_counter() + budget
        while n < max_calls and time.perf_counter() < end:
            fn()
            n += 1
        return (time.process_time() - cpu0) / max(1, n) * 1e6  # µs of CPU per call

    def contended(fn, budget: float, max_calls: int = 20000) -> float:
        """Wall time per call while another thread runs Python (as the SQLite reader
        threads do): a call that releases the GIL waits to take it back."""
        import threading

        stop = threading.Event()

        def busy() -> None:
            x = 0
            while not stop.is_set():
                x += 1

        other = threading.Thread(target=busy, daemon=True)
        other.start()
        try:
            n, t0, end = 0, time.perf_counter(), time.perf_counter() + budget
            while n < max_calls and time.perf_counter() < end:
                fn()
                n += 1
            return (time.perf_counter() - t0) / max(1, n) * 1e6
        finally:
            stop.set()
            other.join(timeout=5)

    out = {}
    budget = max(0.2, seconds / 8)
    for alg in ("RS256", "ES256"):
        token = minter.token(1, alg)
        signing_input, sig = token.rsplit(".", 1)
        sig = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
        key = minter.keys[alg].public_key
        if alg == "RS256":
            def raw(key=key, sig=sig, data=signing_input.encode()):
                key.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                       int.from_bytes(sig[32:], "big"))

            def raw(key=key, sig=der, data=signing_input.encode()):
                key.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        out[alg] = {
            "joserfc_decode_us": round(per_call(
                lambda t=token: jwt.decode(t, keyset, algorithms=["RS256", "ES256"]),
                budget), 1),
            "gateway_verify_us": round(per_call(
                lambda t=token: run_sync(verifier.verify(t)), budget), 1),
            "cryptography_verify_us": round(per_call(raw, budget), 1),
            "contended_wall_us": round(contended(raw, budget), 1),
            "mint_us": round(per_call(lambda a=alg: minter.token(1, a), budget, 2000), 1),
        }
    return out


def setup_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="run_jit.py loadgen setup")
    p.add_argument("--gateway", required=True, help="http://127.0.0.1:P")
    p.add_argument("--keys", required=True, help="the IdP's private JWKS")
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--reply-out", required=True)
    p.add_argument("--verify-seconds", type=float, default=6.0)
    p.add_argument("--max-seconds", type=float, default=120.0)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    require_loopback(p, args.gateway)
    facts = asyncio.run(setup_async(args))
    with open(args.out, "w") as f:
        json.dump(facts, f, indent=2)
    return 0


async def measure_async(args) -> dict:
    import aiohttp

    deadline = time.perf_counter() + args.max_seconds
    rng = random.Random(args.seed)
    minter = Minter(load_keys(args.keys), f"measure-{uuid.uuid4().hex[:8]}")
    timeout = aiohttp.ClientTimeout(total=60)

    def session():
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=args.concurrency + 1), timeout=timeout)

    def left(bound: float) -> float:
        return max(0.5, min(bound, deadline - time.perf_counter()))

    def mint(count: int, alg: str = "RS256") -> list:
        pool, cpu = minter.pool(count, args.users, alg, rng, deadline - 30)
        mint_cpu.setdefault(alg, []).append(cpu)
        return pool

    gw_pid, bl_pid = args.gateway_pid, args.baseline_pid
    gw_times = (gw_pid, args.gateway_timings)
    bl_times = (bl_pid, args.baseline_timings)
    gw_headers = {"Authorization": basic(JIT_CLIENT), "Content-Type": "application/json"}
    bl_headers = {"Content-Type": "application/json"}
    url_g, url_b = f"{args.gateway}/jit/{PROVIDER}", f"{args.baseline}/jit/{PROVIDER}"
    mint_cpu: dict[str, list[float]] = {}
    results: dict = {"operations": [], "settings": {k: v for k, v in vars(args).items()}}
    gw, bl = session(), session()
    try:
        baseline_pool = mint(256)  # the baseline checks nothing: a few bodies, re-used
        baseline = JitOperation("POST /jit (unchanged)", "baseline", bl, url_b, bl_headers,
                                baseline_pool, baseline_ok, reuse=True)
        single: dict[str, dict] = {}
        # one client: latency, client-side and server-side; the baseline first
        for target, alg in (("baseline", "RS256"), ("gateway", "RS256"), ("gateway", "ES256")):
            if deadline - time.perf_counter() < 10:
                print(f"loadgen: time budget spent, skipping {target} c=1 {alg}",
                      file=sys.stderr)
                continue
            requests = args.requests_single if alg == "RS256" else args.requests_single // 2
            secs = args.seconds if alg == "RS256" else args.seconds / 2
            if target == "baseline":
                op = baseline
            else:
                pool = mint(args.warmup + requests, alg)
                op = JitOperation(f"POST /jit (unchanged, {alg})", "gateway", gw, url_g,
                                  gw_headers, pool, gateway_ok)
            await run_phase(op, 1, args.warmup, left(5.0), args.seed, None)
            pid, directory = gw_times if target == "gateway" else bl_times
            await server_times(pid, directory, f"reset-c1-{target}-{alg}")
            slot, kernel = Slices(1), Kernel()
            with kernel.watch(pid):
                await measure(op, 1, requests, left(secs), args.seed + 1,
                              [pid] if pid else [], slot)
            server = times_summary(await server_times(pid, directory, f"c1-{target}-{alg}"))
            single[f"{target}-{alg}"] = {"client": slot.summary(), "server": server,
                                         "kernel": kernel.summary(slot.phase.requests)}

        # throughput: baseline and gateway alternate, in slices, so both see the same machine
        rounds = max(1, args.rounds)
        per_slice = max(1, args.requests_concurrent // rounds)
        c1 = single.get("gateway-RS256", {}).get("client") or {}
        # tokens for the gateway's slices: its single-client rate x4 (a c=16 rate above that
        # is not expected with one worker), bounded by --requests-concurrent
        rate1 = c1.get("req_per_s") or 1000.0
        pool_size = min(args.requests_concurrent,
                        max(2000, int(rate1 * 4 * args.seconds)) + args.concurrency * rounds)
        gateway = JitOperation("POST /jit (unchanged, RS256)", "gateway", gw, url_g, gw_headers,
                               mint(pool_size + args.warmup), gateway_ok)
        await run_phase(gateway, args.concurrency, args.warmup, left(5.0), args.seed, None)
        await run_phase(baseline, args.concurrency, args.warmup, left(5.0), args.seed, None)
        conc = {"baseline": Slices(args.concurrency), "gateway": Slices(args.concurrency)}
        kernels = {"baseline": Kernel(), "gateway": Kernel()}
        await server_times(gw_pid, args.gateway_timings, "reset-conc-gateway")
        await server_times(bl_pid, args.baseline_timings, "reset-conc-baseline")
        ran_out = False
        for r in range(rounds):
            for op in (baseline, gateway):
                bound = left(args.seconds / rounds)
                count = per_slice if op is baseline else min(per_slice, len(gateway.pool))
                if count < 1:
                    ran_out = True
                    continue
                pid = gw_pid if op is gateway else bl_pid
                with kernels[op.target].watch(pid):
                    await measure(op, args.concurrency, count, bound, args.seed + 2 + r,
                                  [pid] if pid else [], conc[op.target])
        conc_server = {
            "gateway": times_summary(await server_times(gw_pid, args.gateway_timings,
                                                        "conc-gateway")),
            "baseline": times_summary(await server_times(bl_pid, args.baseline_timings,
                                                         "conc-baseline"))}
        results["single"] = single
        results["concurrent"] = {t: {"client": s.summary(), "server": conc_server[t],
                                     "kernel": kernels[t].summary(s.phase.requests)}
                                 for t, s in conc.items()}
        results["gateway_tokens"] = {"minted": pool_size, "left": len(gateway.pool),
                                     "ran_out": ran_out}
        results["mint_cpu_ms_per_token"] = {a: round(statistics.fmean(v) * 1000, 3)
                                            for a, v in mint_cpu.items()}
        for key, entry in single.items():
            c, s = entry["client"], entry["server"] or {}
            print(f"loadgen: c=1 {key:16s} client p50 {c['p50_ms']} p99 {c['p99_ms']} ms, "
                  f"server p50 {s.get('p50_ms')} p99 {s.get('p99_ms')} ms, errors "
                  f"{c['errors']}", file=sys.stderr, flush=True)
        for key, entry in results["concurrent"].items():
            c = entry["client"]
            print(f"loadgen: c={args.concurrency} {key:9s} {c['req_per_s']} req/s "
                  f"(slices {c['slices_req_per_s']}) cpu {c['server_cpu_ms_per_req']} ms/req "
                  f"errors {c['errors']}", file=sys.stderr, flush=True)

        # a profile, when a target is missed (or asked for)
        verdict = verdicts(results)
        missed = any(v["met"] is False for v in verdict.values())
        if args.profile == "always" or (args.profile == "auto" and missed):
            results["profile"] = await profile_phase(args, gw, url_g, gw_headers, mint,
                                                     results, left)
    finally:
        await gw.close()
        await bl.close()
    results["own_cpu_s"] = own_cpu()
    return results


async def profile_phase(args, session, url: str, headers: dict, mint, results: dict,
                        left) -> dict:
    """The gateway alone, recorded with py-spy: one client (where a request's latency goes),
    then ``--concurrency`` clients (where the CPU goes under load), ``--profile-seconds``
    each. Not counted for the targets (py-spy samples the process)."""
    out = {}
    for concurrency in (1, args.concurrency):
        key = "c1" if concurrency == 1 else f"c{concurrency}"
        entry = (results["single"].get("gateway-RS256") if concurrency == 1
                 else results["concurrent"].get("gateway")) or {}
        rate = (entry.get("client") or {}).get("req_per_s") or 500.0
        seconds = left(args.profile_seconds)
        if seconds < 3:
            out[key] = {"skipped": "time budget spent"}
            continue
        pool = mint(int(rate * 1.5 * seconds) + concurrency)
        op = JitOperation("POST /jit (unchanged, RS256)", "gateway", session, url, headers,
                          pool, gateway_ok)
        await run_phase(op, concurrency, min(len(pool), args.warmup), left(5.0),
                        args.seed + 98, None)
        raw = args.profile_out.replace(".txt", f"-{key}.txt")
        flags = args.profile_flags.split()
        # --nonblocking: the gateway is not paused at each sample (--native needs the pauses);
        # idle threads are not sampled
        spy = start_py_spy(args.gateway_pid, raw, seconds + 20, rate=args.profile_rate,
                           nonblocking="--native" not in flags, flags=flags, file=sys.stderr)
        if spy is None:
            return {key: {"skipped": "py-spy not found (pip install py-spy)"}}
        phase = Phase(concurrency)
        try:
            phase = await run_phase(op, concurrency, len(op.pool), seconds, args.seed + 99,
                                    args.gateway_pid)
        finally:
            await asyncio.get_running_loop().run_in_executor(None, stop_py_spy, spy)
        out[key] = {"phase": phase.summary(), "raw": raw, "rate_hz": args.profile_rate,
                    "flags": args.profile_flags, "concurrency": concurrency}
    return out


def measure_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="run_jit.py loadgen measure")
    p.add_argument("--gateway", required=True)
    p.add_argument("--baseline", required=True)
    p.add_argument("--keys", required=True)
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--requests-single", type=int, default=2000)
    p.add_argument("--requests-concurrent", type=int, default=12000)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--max-seconds", type=float, default=200.0)
    p.add_argument("--gateway-pid", type=int)
    p.add_argument("--baseline-pid", type=int)
    p.add_argument("--gateway-timings")
    p.add_argument("--baseline-timings")
    p.add_argument("--profile", choices=("auto", "always", "never"), default="auto")
    p.add_argument("--profile-seconds", type=float, default=8.0)
    p.add_argument("--profile-rate", type=int, default=200)
    p.add_argument("--profile-out")
    p.add_argument("--profile-flags", default="")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    require_loopback(p, args.gateway, args.baseline)
    results = asyncio.run(measure_async(args))
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    return 0


# the report -----------------------------------------------------------------------------------
def verdicts(results: dict) -> dict:
    """The two targets: server-side p99 of one client (keys cached: the provider's JWKS is a
    file, read once), and req/s over the baseline's with the same clients."""
    out = {}
    g1 = results.get("single", {}).get("gateway-RS256") or {}
    server, client = g1.get("server"), g1.get("client") or {}
    errors = client.get("errors", 0)
    if server:
        p99, how = server["p99_ms"], "server-side (access-log timer)"
    else:  # no server times (--plain): the client's p99 on loopback, an upper bound
        p99, how = client.get("p99_ms"), "client-side (upper bound; --plain)"
    out["latency"] = {"measured_ms": p99, "target_ms": TARGET_P99_MS, "how": how,
                      "client_p99_ms": client.get("p99_ms"), "errors": errors,
                      "met": None if p99 is None else (p99 < TARGET_P99_MS and errors == 0)}
    conc = results.get("concurrent", {})
    g, b = (conc.get("gateway") or {}).get("client"), (conc.get("baseline") or {}).get("client")
    ratio = cpu_ratio = None
    slices = []
    if g and b and g.get("req_per_s") and b.get("req_per_s"):
        ratio = g["req_per_s"] / b["req_per_s"]
        slices = [x / y if y else None for x, y in zip(g["slices_req_per_s"],
                                                       b["slices_req_per_s"], strict=False)]
        if g.get("server_cpu_ms_per_req") and b.get("server_cpu_ms_per_req"):
            cpu_ratio = b["server_cpu_ms_per_req"] / g["server_cpu_ms_per_req"]
    errors = (g or {}).get("errors", 0)
    out["throughput"] = {"measured": None if ratio is None else round(ratio, 4),
                         "target": TARGET_RATIO, "by_cpu": None if cpu_ratio is None
                         else round(cpu_ratio, 4), "slices": slices, "errors": errors,
                         "gateway_req_per_s": (g or {}).get("req_per_s"),
                         "baseline_req_per_s": (b or {}).get("req_per_s"),
                         "met": None if ratio is None else (ratio >= TARGET_RATIO
                                                            and errors == 0)}
    return out


def table(results: dict, concurrency: int) -> str:
    header = ("phase", "target", "requests", "client p50", "client p99", "server p50",
              "server p99", "server max", "req/s", "cpu ms/req", "sys %", "ctx sw/req",
              "client cpu ms/req", "errors")

    def kernel(entry: dict) -> tuple[str, str]:
        k = entry.get("kernel") or {}
        share = k.get("system_share")
        return ("-" if share is None else f"{share:.0%}", fmt(k.get("switches_per_req"), 1))

    rows = []
    for key, entry in results.get("single", {}).items():
        target, alg = key.split("-")
        c, s = entry["client"], entry["server"] or {}
        rows.append((f"c=1 ({alg})" if target == "gateway" else "c=1", target, c["requests"],
                     fmt(c["p50_ms"], 3), fmt(c["p99_ms"], 3), fmt(s.get("p50_ms"), 3),
                     fmt(s.get("p99_ms"), 3), fmt(s.get("max_ms"), 3), fmt(c["req_per_s"], 0),
                     fmt(c["server_cpu_ms_per_req"], 3), *kernel(entry),
                     fmt(c["client_cpu_ms_per_req"], 3), c["errors"]))
    for target, entry in results.get("concurrent", {}).items():
        c, s = entry["client"], entry["server"] or {}
        rows.append((f"c={concurrency} (RS256)" if target == "gateway" else f"c={concurrency}",
                     target, c["requests"], fmt(c["p50_ms"], 3), fmt(c["p99_ms"], 3),
                     fmt(s.get("p50_ms"), 3), fmt(s.get("p99_ms"), 3), fmt(s.get("max_ms"), 3),
                     fmt(c["req_per_s"], 0), fmt(c["server_cpu_ms_per_req"], 3), *kernel(entry),
                     fmt(c["client_cpu_ms_per_req"], 3), c["errors"]))
    return columns(header, rows, left=(0, 1))


# what the profile says: the event loop's time by step of the JIT call -------------------------
# (label, frames that must all be in the stack, frames that must not): a frame is (qualified
# function, a part of its file's path); the share is of the event loop's samples, inclusive
STEPS = (
    ("the handler (login, gateway/jit/app.py), all of it",
     [("login", "gateway/jit/app.py")], []),
    ("  Basic auth of the API client (cached: one HMAC)",
     [("Authenticator.authenticate", "gateway/auth")], []),
    ("  reading the body", [("login", "gateway/jit/app.py"), ("read", "aiohttp/streams")], []),
    ("  JitService.login", [("JitService.login", "gateway/jit/service")], []),
    ("    ID token: OidcVerifier.verify", [("OidcVerifier.verify", "gateway/jit/oidc")], []),
    ("      joserfc jwt.decode", [("decode", "joserfc/jwt.py")], []),
    ("        the signature (cryptography: releases the GIL, waits to re-take it)",
     [("verify", "joserfc/_rfc7518/jws_algs")], []),
    ("      iss/aud/exp checks", [("OidcVerifier._check", "gateway/jit/oidc")], []),
    ("    links.get: handing the SQL read to a thread (loop side)",
     [("JitService.login", "gateway/jit/service"), ("SQLiteRunner.read", "userstores/sql")],
     [("Pipeline.execute", "gateway/pipeline")]),
    ("    GetUser (_existing)", [("JitService._existing", "gateway/jit/service")], []),
    ("    _update: PatchUser (reads the user again, patches, compares; no write)",
     [("Pipeline._patch_user", "gateway/pipeline")], []),
    ("      of which apply_patch", [("apply_patch", "gateway/model/patch")], []),
    ("    _update: _roles (from the user read)", [("JitService._roles", "gateway/jit")], []),
    ("    the store reads of GetUser+PatchUser (_find, loop side)",
     [("Pipeline._find", "gateway/pipeline")], []),
    ("    replay memory", [("Once.use", "gateway/once")], []),
    ("  resource_json (the SCIM user)", [("resource_json", "gateway/scim_common/render")], []),
    ("  _json (orjson.dumps, the Response)", [("_json", "gateway/jit/app")], []),
    ("outside the handler: aiohttp reading requests, writing replies, the loop",
     [], [("login", "gateway/jit/app.py")]),
    ("  of which writing replies (socket send)",
     [("RequestHandler.finish_response", "aiohttp/web_protocol")], []),
    ("  of which waking up on a finished SQL read (self-pipe)",
     [("BaseSelectorEventLoop._read_from_self", "asyncio/selector_events")], []),
)


def _has(frames: set, func: str, part: str) -> bool:
    return any((f == func or f.endswith("." + func)) and part in file for f, file in frames)


def _thread_kind(frames: list[tuple[str, str]]) -> str:
    seen = set(frames)
    if _has(seen, "SQLiteRunner._read", "userstores/sql"):
        if _has(seen, "get", "gateway/jit/links"):
            return "sqlite-read thread: links.get (SQLAlchemy Core execute)"
        if _has(seen, "_groups_of", "userstores/sql"):
            return "sqlite-read thread: the user's groups (get_user, prebuilt statement)"
        if _has(seen, "get_user", "userstores/sql"):
            return "sqlite-read thread: the user row (get_user, prebuilt statement)"
        return "sqlite-read thread: other (" + "/".join(frames[-1]) + ")"
    if _has(seen, "SQLiteRunner._write_group", "userstores/sql"):
        return "sqlite-write thread (" + "/".join(frames[-1]) + ")"
    if _has(seen, "BaseEventLoop.call_soon_threadsafe", "asyncio"):
        return "pool thread: waking the event loop (call_soon_threadsafe)"
    if frames[-1][0] == "_worker":
        return "pool thread: waiting for work / for the GIL (_worker)"
    return "other thread: " + "/".join(frames[-1])


def profile_summary(path: str, top: int = 30, requests: int | None = None,
                    rate_hz: int | None = None) -> str:
    """Shares of samples; with the requests made while sampling and the sampling rate,
    also the milliseconds of each per request (sampled time of that thread)."""
    import collections

    threads: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    steps: collections.Counter = collections.Counter()
    total = loop = 0
    for raw, n in raw_samples(path):
        if raw == [""]:
            continue  # a sample without any frame
        frames = [split_frame(fr) for fr in raw]
        total += n
        if not any(f == "<module>" for f, _ in frames):  # not the event loop's thread
            threads[_thread_kind(frames)] += n
            continue
        loop += n
        seen = set(frames)
        for fr in seen:
            inclusive[fr] += n
        own[frames[-1]] += n
        for label, need, never in STEPS:
            if all(_has(seen, *fr) for fr in need) and not any(
                    _has(seen, *fr) for fr in never):
                steps[label] += n
    if not total or not loop:
        return "(no samples)"

    def ms(count: int) -> str:
        if not requests or not rate_hz:
            return ""
        return f"{count / rate_hz / requests * 1000:6.3f} ms/req  "

    def name(fr):
        return f"{fr[0]} ({fr[1].split('site-packages/')[-1].split('/work/main/')[-1]})"

    lines = [f"{total} samples: {loop} of the event-loop thread ({100 * loop / total:.0f}%), "
             f"{total - loop} of other threads; threads blocked in a system call are not "
             "sampled, a thread waiting for the GIL is (as the frame it waits in)",
             "other threads (% of all samples):"]
    lines += [f"  {100 * v / total:5.1f}%  {ms(v)}{k}" for k, v in threads.most_common(8)]
    lines.append("event-loop thread by step of the call (inclusive, % of the loop's samples):")
    lines.append(f"  100.0%  {ms(loop)}the event-loop thread, all of it")
    lines += [f"  {100 * steps[label] / loop:5.1f}%  {ms(steps[label])}{label}"
              for label, _, _ in STEPS]
    lines.append("event-loop thread, inclusive:")
    lines += [f"  {100 * v / loop:5.1f}%  {name(k)}" for k, v in inclusive.most_common(top)
              if not k[0].startswith(("<module>", "main", "_run_worker", "cmd_serve",
                                      "timed_gateway_main", "_install_timing", "run_app",
                                      "BaseEventLoop.run_"))]
    lines.append("event-loop thread, self:")
    lines += shares(own, loop, 20, name)
    return "\n".join(lines)


# the orchestration ----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["loadgen", "setup"]:
        return setup_main(argv[2:])
    if argv[:2] == ["loadgen", "measure"]:
        return measure_main(argv[2:])
    if argv[:1] == ["timed-gateway"]:
        return timed_gateway_main(argv[1:])
    if argv[:1] == ["baseline"]:
        return baseline_main(argv[1:])

    from common import (
        busiest_others,
        clean_env,
        cleanup,
        cpu_seconds,
        free_port,
        gateway_command,
        health,
        loadavg,
        machine_busy,
        machine_cpu,
        machine_load,
        proc_status,
        process_cpu,
        results_args,
        results_dir,
        run_child,
        save_report,
        serve_args,
        spawn,
        stop,
        wait_http,
    )

    def gw_cpu_now(pid: int) -> float:
        return cpu_seconds(pid) or 0.0

    p = argparse.ArgumentParser(description="just-in-time provisioning benchmark "
                                            "(see bench/README.md)")
    p.add_argument("--users", type=int, default=1000, help="users created by a first login")
    p.add_argument("--seconds", type=float, default=8.0,
                   help="bound of each phase (a throughput phase: of its slices together)")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--rounds", type=int, default=8, help="slices of the throughput phase")
    p.add_argument("--requests-single", type=int, default=2000)
    p.add_argument("--requests-concurrent", type=int, default=12000,
                   help="bound of the gateway's (and baseline's) throughput phase")
    p.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                   help="py-spy the gateway after the measurements: when a target is "
                        "missed (auto), always, never")
    p.add_argument("--profile-seconds", type=float, default=8.0)
    p.add_argument("--profile-flags", default="",
                   help="more py-spy record options, e.g. '--gil' (only the thread holding "
                        "the GIL) or '--native' (C frames; pauses the gateway)")
    p.add_argument("--plain", action="store_true",
                   help="run the gateway script itself (no server-side times)")
    p.add_argument("--what-if", metavar="FILE",
                   help="a Python file run inside the gateway process before it starts "
                        "(monkeypatches trying a change, measured without editing the "
                        "product); the report says so")
    p.add_argument("--max-seconds", type=float, default=280.0, help="bound of the whole run")
    results_args(p, keep="keep the temporary folder")
    args = p.parse_args(argv)
    if args.what_if and (args.plain or not os.path.isfile(args.what_if)):
        p.error("--what-if needs an existing file, and not --plain")
    if not 1 <= args.users <= 50_000:
        p.error("1 <= --users <= 50,000 (first logins are one request each)")
    # the gateway remembers every token until it expires, at most 100,000 (replay memory)
    if args.users + args.requests_single * 2 + args.requests_concurrent * 2 > 90_000:
        p.error("too many tokens for the gateway's replay memory (100,000)")

    run_started = time.perf_counter()
    deadline = run_started + args.max_seconds
    _, outdir = results_dir(args.results, f"jit-{args.users}")
    workdir = tempfile.mkdtemp(prefix="gwbench-jit-")
    db = os.path.join(workdir, "users.db")
    env = clean_env()
    gw_port, bl_port = free_port(), free_port()
    keys, jwks = make_keys(workdir)
    config = os.path.join(outdir, "gateway.toml")
    write_config(config, db, gw_port, jwks)
    shutil.copy(jwks, os.path.join(outdir, "jwks.json"))
    gw_timings, bl_timings = os.path.join(workdir, "t-gateway"), os.path.join(workdir,
                                                                               "t-baseline")
    gateway = baseline = None
    load_before = loadavg()
    me = [sys.executable, os.path.abspath(__file__)]
    try:
        gw_log = os.path.join(outdir, "gateway.log")
        serve = serve_args(config, gw_port, "--workers", "1")
        cmd = (gateway_command() + serve if args.plain
               else me + ["timed-gateway", "--timings", gw_timings]
               + (["--what-if", os.path.abspath(args.what_if)] if args.what_if else [])
               + ["--"] + serve)
        gateway = spawn(cmd, gw_log, env, workdir)
        gw = f"http://127.0.0.1:{gw_port}"
        wait_http(health(gw_port), gateway, 120, gw_log)
        print(f"gateway pid {gateway.pid} on :{gw_port} "
              f"(RSS {proc_status(gateway.pid).get('VmRSS', 0):.1f} MB)"
              + ("" if args.plain else ", server times kept by the access logger"), flush=True)

        def remaining(reserve: float = 0.0) -> float:
            return deadline - time.perf_counter() - reserve

        # setup: the role, N first logins, checks, the reply, signature checks alone
        setup_out, reply = os.path.join(outdir, "setup.json"), os.path.join(outdir, "reply.json")
        print(f"setup: {args.users} first logins, checks, signature checks alone", flush=True)
        t0 = time.perf_counter()
        run_child(me + ["loadgen", "setup", "--gateway", gw, "--keys", keys,
                        "--users", str(args.users), "--reply-out", reply,
                        "--max-seconds", str(max(10, remaining(150))), "--out", setup_out],
                  env, max(20, remaining(140)), what="the setup")
        with open(setup_out) as f:
            setup = json.load(f)
        print(f"setup done in {time.perf_counter() - t0:.0f}s: first logins "
              f"{setup['first_logins']}", flush=True)

        bl_log = os.path.join(outdir, "baseline.log")
        baseline = spawn(me + ["baseline", "--port", str(bl_port), "--reply", reply,
                               "--timings", bl_timings], bl_log, env, workdir)
        bl = f"http://127.0.0.1:{bl_port}"
        wait_http(health(bl_port), baseline, 60, bl_log)

        # the gateway's CPU while idle (background tasks): part of the c=1 CPU per request
        idle0, t_idle = gw_cpu_now(gateway.pid), time.perf_counter()
        time.sleep(3.0)
        idle_cpu = (gw_cpu_now(gateway.pid) - idle0) / (time.perf_counter() - t_idle)
        busy0, procs0, gw_cpu0 = machine_busy(), process_cpu(), gw_cpu_now(gateway.pid)
        raw = os.path.join(outdir, "loadgen.json")
        profile_raw = os.path.join(outdir, "profile-jit.txt")
        budget = max(20.0, remaining(15))
        cmd = me + ["loadgen", "measure", "--gateway", gw, "--baseline", bl, "--keys", keys,
                    "--users", str(args.users), "--concurrency", str(args.concurrency),
                    "--rounds", str(args.rounds), "--seconds", str(args.seconds),
                    "--requests-single", str(args.requests_single),
                    "--requests-concurrent", str(args.requests_concurrent),
                    "--max-seconds", str(budget), "--gateway-pid", str(gateway.pid),
                    "--baseline-pid", str(baseline.pid), "--profile", args.profile,
                    "--profile-seconds", str(args.profile_seconds),
                    "--profile-out", profile_raw, f"--profile-flags={args.profile_flags}",
                    "--out", raw]
        if not args.plain:
            cmd += ["--gateway-timings", gw_timings, "--baseline-timings", bl_timings]
        else:
            cmd += ["--baseline-timings", bl_timings]
        print("measuring (tokens are minted before each phase)", flush=True)
        run_child(cmd, env, budget + 60)
        with open(raw) as f:
            results = json.load(f)
        busy1 = machine_busy()
        gw_cpu = gw_cpu_now(gateway.pid) - gw_cpu0
        others = busiest_others(procs0, process_cpu(),
                                {os.getpid(), gateway.pid, baseline.pid})
        rss = proc_status(gateway.pid)
        alive = gateway.poll() is None
        stop(gateway)
        stop(baseline)

        # report
        verdict = verdicts(results)
        lines = report_lines(args, setup, results, verdict)
        lines.append(f"gateway CPU while idle (before measuring): {idle_cpu * 1000:.1f} ms/s "
                     "(background tasks; at c=1 it adds about that / req/s to cpu ms/req)")
        profiles = []  # (heading, summary)
        for key, prof in (results.get("profile") or {}).items():
            if not prof.get("raw") or not os.path.exists(prof["raw"]):
                profiles.append((f"profile {key}: {prof.get('skipped', 'no samples')}", ""))
                continue
            ph = prof["phase"]
            text = profile_summary(prof["raw"], requests=ph["requests"],
                                   rate_hz=prof["rate_hz"])
            with open(prof["raw"].replace(".txt", "-summary.txt"), "w") as f:
                f.write(text + "\n")
            profiles.append((f"profile at c={prof['concurrency']} (py-spy {prof['rate_hz']} Hz "
                             f"{prof['flags']}; {ph['requests']} requests, {ph['req_per_s']} "
                             f"req/s, client p50 {ph['p50_ms']} ms while sampled; not for the "
                             f"targets):", text))
        machine, wall = machine_cpu(busy0, busy1)
        lines += [
            "",
            f"gateway RSS: {rss.get('VmRSS', 0):.1f} MB, peak (VmHWM) "
            f"{rss.get('VmHWM', 0):.1f} MB; still running at the end: {alive}",
            f"{machine_load(load_before)}; during the "
            f"measurements ({wall:.0f}s) all CPUs were busy {machine:.0f}s, of which the "
            f"gateway {gw_cpu:.0f}s; the rest: the load generator (minting included), the "
            f"baseline, and the machine's other users",
            "busiest other processes (CPU seconds during the measurements):",
            *(others or ["  (none over 0.5s)"]),
        ]
        for heading, text in profiles:
            lines += ["", heading] + ([text] if text else [])
        lines += ["", f"whole run {time.perf_counter() - run_started:.0f}s", f"results: {outdir}"]
        save_report(outdir, lines, {"settings": vars(args), "setup": setup, "results": results,
                                    "targets": verdict, "rss_mb": rss,
                                    "gateway_idle_cpu_ms_per_s": round(idle_cpu * 1000, 2)})
        return 0
    finally:
        stop(gateway)
        stop(baseline)
        cleanup(workdir, args.keep)


def report_lines(args, setup: dict, results: dict, verdict: dict) -> list[str]:
    v_alone = setup.get("verify_alone", {})
    lat, thr = verdict["latency"], verdict["throughput"]
    fl = setup["first_logins"]
    lines = [] if not args.what_if else [
        f"WHAT-IF RUN: the gateway ran with {args.what_if} applied (not the product as it is)"]
    lines += [
        f"JIT benchmark: POST /jit/{PROVIDER} (OIDC, keys from a JWKS file, read once) for "
        f"existing, unchanged users; {args.users} users made by a first login each; SQLite, "
        f"one worker; reference: a bare aiohttp handler answering the gateway's own reply "
        f"({setup['reply_bytes']} B; request {setup['request_bytes']['RS256']} B RS256, "
        f"{setup['request_bytes']['ES256']} B ES256)",
        f"c=1: {args.requests_single} requests or {args.seconds:.0f}s (ES256: half); "
        f"c={args.concurrency}: {args.requests_concurrent} requests or {args.seconds:.0f}s in "
        f"{args.rounds} slices alternating with the baseline's. client = the load "
        f"generator's time from sending to the last byte; server = aiohttp's time from the "
        f"start of handling to the end of writing the reply (an access logger keeping "
        f"durations; '-': not measured); cpu = server CPU per request (all its threads), "
        f"sys % = the system-mode part of it, ctx sw/req = the server's context switches "
        f"per request",
        "",
        table(results, args.concurrency),
        "",
        "targets (measured / target, this run):",
        f"  [{mark(lat['met'])}] latency: p99 {lat['measured_ms']} ms {lat['how']} / target "
        f"< {TARGET_P99_MS} ms (client-side p99 {lat['client_p99_ms']} ms)"
        + ("" if not lat["errors"] else f"; {lat['errors']} errors"),
        f"  [{mark(thr['met'])}] throughput: {thr['gateway_req_per_s']} req/s vs the bare "
        f"handler {thr['baseline_req_per_s']} req/s = "
        f"{'-' if thr['measured'] is None else format(thr['measured'], '.0%')} / target >= "
        f"{TARGET_RATIO:.0%} (by server CPU per request: "
        f"{'-' if thr['by_cpu'] is None else format(thr['by_cpu'], '.0%')})"
        + ("" if not thr["errors"] else f"; {thr['errors']} errors"),
        "         slice by slice: " + " ".join("-" if x is None else f"{x:.0%}"
                                               for x in thr["slices"]),
        "",
        f"first logins (setup, c=4): {fl['users']} users in {fl['seconds']}s = {fl['per_s']}/s,"
        f" p50 {fl['p50_ms']} ms, p99 {fl['p99_ms']} ms",
        "one signature check alone (CPU µs per call, one thread, servers idle; 'contended': "
        "wall µs per cryptography verify while another thread runs Python):",
        "  alg   | joserfc jwt.decode | gateway OidcVerifier.verify | cryptography verify | "
        "contended | mint (jwt.encode)",
    ]
    for alg, row in v_alone.items():
        lines.append(f"  {alg} | {row['joserfc_decode_us']:>18} | "
                     f"{row['gateway_verify_us']:>27} | {row['cryptography_verify_us']:>19} | "
                     f"{row.get('contended_wall_us', '-'):>9} | {row['mint_us']:>17}")
    toks = results.get("gateway_tokens", {})
    lines.append(f"tokens: minted for the gateway's throughput slices {toks.get('minted')}, "
                 f"left {toks.get('left')}" + (" (RAN OUT: slices cut short)"
                                               if toks.get("ran_out") else "")
                 + f"; minting CPU ms/token {results.get('mint_cpu_ms_per_token')}")
    errors = []
    for key, entry in results.get("single", {}).items():
        if entry["client"].get("first_error"):
            errors.append(f"  c=1 {key}: {entry['client']['first_error']}")
    for key, entry in results.get("concurrent", {}).items():
        if entry["client"].get("first_error"):
            errors.append(f"  c={args.concurrency} {key}: {entry['client']['first_error']}")
    if errors:
        lines += ["first error of each phase that had errors:", *errors]
    return lines


if __name__ == "__main__":
    sys.exit(main())
