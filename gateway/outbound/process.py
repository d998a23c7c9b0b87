"""The outbound dispatcher in a process of its own.

Delivering costs CPU (reading entities, HTTP to the targets, recording the
outcome); on the HTTP workers' event loop it would delay every request behind
it. So ``gateway serve`` runs the dispatcher as a separate process next to
its HTTP worker(s) when connectors are configured (``[outbound] dispatcher =
"process"``, the default): the workers only commit changes with their outbox
rows (and deliver to blocking connectors themselves, see
``OutboundService.settle``); the dispatcher process polls the outboxes every
``poll_interval_ms`` and does the rest, at a lower CPU priority
(``dispatcher_nice``) so that requests come first when the CPU is short.

``Supervisor`` (in the ``gateway serve`` process) starts it, starts it again
if it dies, and stops it when the gateway stops (SIGTERM: the dispatcher ends
its round, hands back its claims and exits). If the ``gateway serve`` process
itself dies (``kill -9``), the kernel kills the dispatcher too
(``PR_SET_PDEATHSIG``): nothing keeps delivering for a gateway that is gone,
and its claims come back when their lease runs out. ``gateway dispatch`` runs
the same loop in the foreground, for ``dispatcher = "external"``.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
import threading
import time

from ..config import Config

log = logging.getLogger("gateway.outbound")

PR_SET_PDEATHSIG = 1
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)  # seconds before starting a dead one again
STOP_WAIT = 15.0  # seconds a stopping dispatcher gets before it is killed


def wanted(cfg: Config) -> bool:
    """Whether ``gateway serve`` runs the dispatcher as a process of its own."""
    out = cfg.outbound
    return out.enabled and out.dispatcher == "process" and bool(out.active)


def inline(cfg: Config) -> bool:
    """Whether the HTTP workers run the dispatcher themselves (they still drain the
    outbox when no connector is configured)."""
    return cfg.outbound.dispatcher == "inline" or (
        cfg.outbound.dispatcher == "process" and not wanted(cfg))


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the parent stops it on a clean exit
        return


def run(cfg: Config, nice: int = 0, parent: int | None = None) -> None:
    """The dispatcher's process: runs until SIGTERM or SIGINT. ``parent``: the pid of the
    ``gateway serve`` that supervises it (None: ``gateway dispatch``, on its own)."""
    child = parent is not None
    if child:
        _die_with_parent()
        if os.getppid() != parent:  # the parent died before the line above
            return
    if nice:
        os.nice(nice)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(process)d %(name)s %(message)s")
    # Ctrl+C in a terminal reaches the whole process group: a supervised dispatcher waits
    # for its parent's SIGTERM instead, so that it is not taken for a crash
    signals = (signal.SIGTERM,) if child else (signal.SIGTERM, signal.SIGINT)
    if child:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(_main(cfg, signals))


async def _main(cfg: Config, signals: tuple[int, ...]) -> None:
    from userstores.registry import Stores

    from .. import state
    from ..model.registry import SchemaRegistry
    from .service import OutboundService

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    stores = Stores.from_config(cfg)
    await stores.open()
    home, own_home = state.open_home(cfg.outbound.database, stores)
    service = OutboundService(cfg, stores, SchemaRegistry.build(cfg.extensions), home)
    try:
        await service.start(run_dispatcher=True)
        log.info("outbound dispatcher running (connectors: %s)",
                 ", ".join(service.connectors) or "none")
        await stop.wait()
    finally:
        await service.stop()
        if own_home and home is not None:
            await home.close()
        await stores.close()


class Supervisor:
    """Runs the dispatcher process for ``gateway serve``: starts it, starts it again after
    an unexpected exit (with a growing delay), stops it on ``stop()``."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self._ctx = multiprocessing.get_context("spawn")
        self._proc = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # no new process once stop() began
        self._thread: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _spawn(self):
        proc = self._ctx.Process(target=run, args=(self.cfg, self.cfg.outbound.dispatcher_nice,
                                                   os.getpid()),
                                 name="gateway-dispatcher", daemon=False)
        proc.start()
        return proc

    def start(self) -> None:
        self._proc = self._spawn()
        self._thread = threading.Thread(target=self._watch, name="dispatcher-supervisor",
                                        daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            started = time.monotonic()
            self._proc.join()
            if self._stopping.is_set():
                return
            if time.monotonic() - started > 60:
                failures = 0  # it ran a good while: start again quickly
            delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)]
            failures += 1
            log.error("the outbound dispatcher process exited (code %s); starting it again in "
                      "%g s", self._proc.exitcode, delay)
            if self._stopping.wait(delay):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self._proc = self._spawn()

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
            proc = self._proc
        if proc is None:
            return
        if proc.is_alive():
            proc.terminate()  # SIGTERM: a clean stop
            proc.join(STOP_WAIT)
        if proc.is_alive():
            log.warning("the outbound dispatcher did not stop in %g s: killed", STOP_WAIT)
            proc.kill()
            proc.join()
