"""Connections to one directory: a pool of ldap3 connections used from worker threads.

ldap3 is synchronous; every directory call runs in this store's own thread
pool (never on the event loop), on a connection taken from the pool. A
connection that broke (the directory restarted, the network dropped) is
thrown away and the call is tried once more on a new one when that is safe
(the request never reached the directory); otherwise the caller gets
``StoreUnavailable``. Library errors become the gateway's own here.

When the directory stops answering (or answers every call with an error), that is
logged once, and once more when it answers again: not once per request.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import ssl
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import ldap3
from ldap3.core import exceptions as lx

from gateway.config import LdapConfig
from gateway.errors import Conflict, GatewayError, InvalidValue, NotFound, StoreUnavailable

log = logging.getLogger("gateway.store")

# the request never left: trying again on a fresh connection cannot apply it twice
_RESEND = (lx.LDAPSocketOpenError, lx.LDAPSocketSendError, lx.LDAPSessionTerminatedByServerError)


class Directory:
    def __init__(self, domain: str, url: str, cfg: LdapConfig, pool_size: int):
        self.domain = domain
        self.cfg = cfg
        self.url = url
        self._tls = None
        if url.startswith("ldaps://") or cfg.start_tls:
            self._tls = ldap3.Tls(validate=ssl.CERT_REQUIRED if cfg.tls_verify
                                  else ssl.CERT_NONE, ca_certs_file=cfg.ca_file)
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        self._executor = ThreadPoolExecutor(max_workers=max(1, pool_size),
                                            thread_name_prefix=f"ldap-{domain}")
        self._failing: str | None = None  # how it failed last (None: it answers)

    # its state, logged when it changes -------------------------------------------------
    def _answered(self) -> None:
        if self._failing is not None:
            self._failing = None
            log.info("user store %s: the directory answers again", self.domain)

    def _failed(self, error: GatewayError, exc: BaseException) -> GatewayError:
        """``error`` (raised from ``exc``), after logging it if the directory was not
        already failing this way."""
        if not isinstance(error, StoreUnavailable):  # an answer: the directory is up
            self._answered()
            return error
        if error.detail != self._failing:  # "is unavailable", or "failed: <its answer>"
            self._failing = error.detail
            why = _describe(exc) if isinstance(exc, lx.LDAPException) else str(exc)
            log.warning("%s (%s: %s); logged again only when this changes",
                        error.detail, type(exc).__name__, why)
        return error

    # connections ---------------------------------------------------------------------
    def connect(self, user: str | None = None, password: str | None = None) -> ldap3.Connection:
        # a Server of its own each time: ldap3 remembers an address that failed as
        # unusable, which would outlast a directory's restart
        server = ldap3.Server(self.url, get_info=ldap3.NONE, tls=self._tls,
                              connect_timeout=self.cfg.timeout_seconds)
        conn = ldap3.Connection(
            server, user=self.cfg.bind_dn if user is None else user,
            password=self.cfg.bind_password if password is None else password,
            auto_bind=ldap3.AUTO_BIND_NONE, raise_exceptions=True,
            receive_timeout=max(1, round(self.cfg.timeout_seconds)), read_only=False)
        conn.open()
        if self.cfg.start_tls:
            conn.start_tls()
        conn.bind()
        return conn

    def _take(self) -> ldap3.Connection:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return self.connect()

    def _call(self, fn, read: bool):
        conn = self._take()
        for attempt in (1, 2):
            try:
                result = fn(conn)
            except (lx.LDAPCommunicationError, lx.LDAPSessionTerminatedByServerError,
                    lx.LDAPSocketOpenError) as exc:
                _drop(conn)
                resend = isinstance(exc, _RESEND) or (read and isinstance(
                    exc, lx.LDAPSocketReceiveError))
                if attempt == 2 or not resend:
                    raise
                conn = self.connect()
                continue
            except BaseException:
                self._idle.put(conn)  # the connection itself is fine
                raise
            self._idle.put(conn)
            return result
        raise AssertionError("unreachable")

    async def run(self, fn, *args, read: bool = True):
        """``fn(connection, *args)`` in a worker thread; errors as the gateway's own."""
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._executor, self._call,
                                                partial(_apply, fn, args), read)
        except GatewayError:
            self._answered()
            raise
        except lx.LDAPException as exc:
            raise self._failed(self.wrap(exc), exc) from exc
        except (OSError, ssl.SSLError) as exc:
            raise self._failed(StoreUnavailable(f"user store {self.domain} is unavailable"),
                               exc) from exc
        self._answered()
        return result

    async def bind_as(self, dn: str, password: str) -> bool:
        """Whether ``dn`` binds with ``password`` (on a connection of its own)."""
        def check() -> bool:
            try:
                conn = self.connect(dn, password)
            except lx.LDAPInvalidCredentialsResult:
                return False
            _drop(conn)
            return True

        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._executor, check)
        except lx.LDAPException as exc:
            raise self._failed(self.wrap(exc), exc) from exc
        except OSError as exc:
            raise self._failed(StoreUnavailable(f"user store {self.domain} is unavailable"),
                               exc) from exc
        self._answered()
        return result

    def wrap(self, exc: lx.LDAPException) -> GatewayError:
        text = _describe(exc)
        if isinstance(exc, lx.LDAPEntryAlreadyExistsResult):
            return Conflict("A resource with this name already exists")
        if isinstance(exc, lx.LDAPNoSuchObjectResult):
            return NotFound(f"Not found in {self.domain}")
        if isinstance(exc, lx.LDAPCommunicationError | lx.LDAPSocketOpenError
                      | lx.LDAPSessionTerminatedByServerError | lx.LDAPServerPoolError):
            return StoreUnavailable(f"user store {self.domain} is unavailable")
        if isinstance(exc, lx.LDAPObjectClassViolationResult | lx.LDAPConstraintViolationResult
                      | lx.LDAPInvalidAttributeSyntaxResult | lx.LDAPUndefinedAttributeTypeResult
                      | lx.LDAPInvalidDNSyntaxResult | lx.LDAPNamingViolationResult
                      | lx.LDAPAttributeOrValueExistsResult):
            return InvalidValue(f"The directory of {self.domain} refused the value: {text}")
        if isinstance(exc, lx.LDAPInsufficientAccessRightsResult | lx.LDAPUnwillingToPerformResult):
            return InvalidValue(f"The directory of {self.domain} refused the change: {text}")
        return StoreUnavailable(f"user store {self.domain} failed: {text}")

    def close(self) -> None:
        while True:
            try:
                _drop(self._idle.get_nowait())
            except queue.Empty:
                break
        self._executor.shutdown(wait=False, cancel_futures=True)


def _apply(fn, args, conn):
    return fn(conn, *args)


def _drop(conn: ldap3.Connection) -> None:
    try:
        conn.unbind()
    except Exception:  # noqa: BLE001, S110 - it is being thrown away
        pass


def _describe(exc: lx.LDAPException) -> str:
    message = getattr(exc, "message", None) or getattr(exc, "description", None) or str(exc)
    return (str(message).splitlines() or [type(exc).__name__])[0][:200]
