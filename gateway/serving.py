"""``gateway serve``: the HTTP workers, their supervision and their TLS.

One worker (``run_worker``) serves until SIGTERM or SIGINT, then stops listening and lets
the requests it has read finish. With ``--workers N``, ``Workers`` starts N of them on
one port (SO_REUSEPORT), starts a dead one again with a growing delay, and stops them
all on SIGTERM. The administrator the environment names is made before any worker
starts (``ensure_chosen_admin``); a random one by the first worker once it listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import ssl
import time
from dataclasses import dataclass

from .config import Config, logs
from .errors import ConfigError

# a process `gateway serve` spawns (a worker) imports this module first: it logs as its
# parent does from its first line on
logs.configure_from_environ()

log = logging.getLogger("gateway.workers")


def tls_context(cfg: Config) -> ssl.SSLContext | None:
    """The server's TLS context (TLS 1.2 or later) when ``[server] cert_file`` and
    ``key_file`` are set, else None; a ConfigError naming them when they do not hold a
    certificate and its key."""
    if not cfg.cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cfg.cert_file, cfg.key_file)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError(f"{cfg.source}: server.cert_file, server.key_file: not a PEM "
                          f"certificate (chain) and its private key ({exc})") from None
    return context


def scheme(cfg: Config) -> str:
    return "https" if cfg.cert_file else "http"


PR_SET_PDEATHSIG = 1  # prctl(2)


def _stop_with_parent(parent: int) -> None:
    """SIGTERM to this worker when ``parent`` (its supervisor) dies, even by ``kill -9``:
    no worker serves on, unsupervised, for a gateway that is gone (Linux; elsewhere the
    parent stops its workers on a clean exit only)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


def run_worker(cfg: Config, reuse_port: bool, access_log: bool, dispatch: bool,
                bootstrap: bool = True, listening_event=None, parent: int | None = None
                ) -> None:
    """One HTTP worker: serves until SIGTERM or SIGINT, then stops listening and lets the
    requests it has read finish (up to ``[server] shutdown_grace_seconds``) before it
    closes its resources and exits 0. ``parent``: the supervisor's pid (``Workers``), whose
    death stops this worker the same way."""
    from aiohttp import web

    from .app import bootstrap_admin_now, create_app
    from .request_context import AccessLog

    if parent is not None:
        _stop_with_parent(parent)
    logs.configure(cfg.logging)
    app = create_app(cfg, bootstrap=False, dispatch=dispatch)
    started = []
    stopping = []

    def stop(signum: int) -> None:
        if stopping:  # a second signal (Ctrl+C reaches the workers and their parent)
            log.info("worker %d: %s again: still finishing the requests in flight",
                     os.getpid(), signal.Signals(signum).name)
            return
        stopping.append(signum)
        log.info("worker %d: %s: no new connections; finishing the requests in flight "
                 "(at most %g s)", os.getpid(), signal.Signals(signum).name,
                 cfg.shutdown_grace_seconds)
        raise web.GracefulExit()

    def listening(_banner: str) -> None:  # run_app calls it once its socket is listening
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):  # instead of aiohttp's: only once
            loop.add_signal_handler(signum, stop, signum)
        print(f"gateway: worker {os.getpid()} listening on {scheme(cfg)}://{cfg.host}:"
              f"{cfg.port}", flush=True)
        if listening_event is not None:
            listening_event.set()
        if bootstrap:  # the administrator only once the server really serves
            started.append(loop.create_task(bootstrap_admin_now(app)))

    web.run_app(app, host=cfg.host,
                port=cfg.port, reuse_port=reuse_port, ssl_context=tls_context(cfg),
                # aiohttp takes 0 for "no limit": 0 here is "do not wait"
                shutdown_timeout=cfg.shutdown_grace_seconds or 0.001,
                access_log=logging.getLogger(logs.ACCESS_LOGGER) if access_log else None,
                access_log_class=AccessLog,
                print=listening, handle_signals=True)


async def ensure_chosen_admin(cfg: Config) -> None:
    from userstores.registry import Stores

    from .app import bootstrap_admin
    from .passwords import Passwords
    from .pipeline import Pipeline

    passwords = Passwords(cfg.passwords)
    stores = Stores.from_config(cfg)
    await stores.open()
    try:
        await bootstrap_admin(Pipeline(cfg, stores, passwords))
    finally:
        await stores.close()
        passwords.close()


def serve(cfg: Config, access_log: bool, dispatch: bool, bootstrap: bool = True) -> int:
    if cfg.workers == 1:
        run_worker(cfg, False, access_log, dispatch, bootstrap)
        return 0
    from . import metrics

    with metrics.run_directory():  # where the workers add up their metrics
        return Workers(cfg, access_log, dispatch, bootstrap).run()


# a worker that died is started again after 0.5 s, then 1, 2, 4 ... up to 30 s while it
# keeps dying; once one has served for STEADY_SECONDS, its next death waits 0.5 s again
RESTART_FIRST_SECONDS = 0.5
RESTART_MAX_SECONDS = 30.0
STEADY_SECONDS = 60.0
# how long the workers may take to stop beyond the grace period (closing stores, pools)
STOP_SLACK_SECONDS = 15.0
TICK_SECONDS = 0.2


def _how(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"was killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


@dataclass
class _Slot:
    number: int  # 1..N, as the log names it
    proc: multiprocessing.process.BaseProcess | None = None
    listening: object = None  # the Event the worker sets once it listens
    started: float = 0.0
    restarts: int = 0  # how many times it was started again
    failures: int = 0  # consecutive short lives: the next delay doubles
    restart_at: float | None = None


class Workers:
    """``gateway serve --workers N``: N worker processes sharing the port, each started
    again (with a growing delay) when it dies; SIGTERM or SIGINT stops them all, each
    finishing the requests it has read (``[server] shutdown_grace_seconds``)."""

    def __init__(self, cfg: Config, access_log: bool, dispatch: bool, bootstrap: bool = True):
        self.cfg = cfg
        self.access_log = access_log
        self.dispatch = dispatch
        self.bootstrap = bootstrap  # whether the first worker makes the administrator
        self.ctx = multiprocessing.get_context("spawn")
        self.slots = [_Slot(i + 1) for i in range(cfg.workers)]
        self.signals: list[int] = []

    def _start(self, slot: _Slot, bootstrap: bool) -> None:
        slot.listening = self.ctx.Event()
        slot.proc = self.ctx.Process(
            target=run_worker, name=f"gateway-worker-{slot.number}", daemon=False,
            args=(self.cfg, True, self.access_log, self.dispatch, bootstrap, slot.listening,
                  os.getpid()))
        slot.proc.start()
        slot.started = time.monotonic()
        slot.restart_at = None

    def _signalled(self, signum, _frame) -> None:
        if not self.signals:
            self.signals.append(signum)

    def run(self) -> int:
        previous = {s: signal.signal(s, self._signalled) for s in (signal.SIGTERM,
                                                                    signal.SIGINT)}
        try:
            for slot in self.slots:
                # the first worker makes the bootstrap administrator once it listens; a
                # worker started again never does
                self._start(slot, bootstrap=self.bootstrap and slot.number == 1)
            code = self._watch()
            self._stop()
            return code
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _watch(self) -> int:
        """Until a signal: start again the workers that die. 1 when the start failed."""
        while not self.signals:
            now = time.monotonic()
            for slot in self.slots:
                if slot.restart_at is not None:
                    if now >= slot.restart_at:
                        slot.restarts += 1
                        self._start(slot, bootstrap=False)
                        log.warning("worker %d started again as process %d", slot.number,
                                    slot.proc.pid)
                    continue
                if slot.proc.is_alive():
                    continue
                pid, code = slot.proc.pid, slot.proc.exitcode
                if slot.restarts == 0 and not slot.listening.is_set():
                    log.error("worker %d (process %d) %s before it listened: the gateway "
                              "could not start", slot.number, pid, _how(code))
                    return 1
                lived = now - slot.started
                if lived >= STEADY_SECONDS:
                    slot.failures = 0
                delay = min(RESTART_FIRST_SECONDS * 2 ** slot.failures, RESTART_MAX_SECONDS)
                slot.failures += 1
                slot.restart_at = now + delay
                log.error("worker %d (process %d) %s after %.1f s; starting it again in "
                          "%g s", slot.number, pid, _how(code), lived, delay)
            waits = [s.restart_at - now for s in self.slots if s.restart_at is not None]
            sentinels = [s.proc.sentinel for s in self.slots
                         if s.restart_at is None and s.proc is not None]
            multiprocessing.connection.wait(
                sentinels, timeout=max(0.0, min([TICK_SECONDS, *waits])))
        return 0

    def _stop(self) -> None:
        """SIGTERM to each worker, then wait for each to finish its requests and exit."""
        why = signal.Signals(self.signals[0]).name if self.signals else "stop"
        alive = [s for s in self.slots if s.restart_at is None and s.proc is not None
                 and s.proc.is_alive()]
        log.info("%s: stopping %d worker(s); each finishes the requests it has read "
                 "(at most %g s)", why, len(alive), self.cfg.shutdown_grace_seconds)
        for slot in alive:
            with contextlib.suppress(OSError):
                slot.proc.terminate()
        deadline = time.monotonic() + self.cfg.shutdown_grace_seconds + STOP_SLACK_SECONDS
        for slot in alive:
            slot.proc.join(max(0.0, deadline - time.monotonic()))
            if slot.proc.is_alive():
                log.warning("worker %d (process %d) did not stop in time: killed",
                            slot.number, slot.proc.pid)
                slot.proc.kill()
                slot.proc.join(5)
